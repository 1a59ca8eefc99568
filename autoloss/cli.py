"""The ``autoloss`` command line.

Every command prints a human-readable report, or with ``--json`` exactly one JSON object on
stdout and nothing else there, errors included. Exit codes (:mod:`autoloss.cli_contract`): 0 ok,
1 a failed check (``verify`` of a formula that fails CPV) or an internal error (with a traceback
and a request for a bug report), 2 bad input (one message naming where and how to fix it, never a
traceback), 130 interrupted. Wherever a formula is expected, a zoo name (``autoloss zoo``) is too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence

from autoloss.cli_contract import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    UsageError,
    error_object,
    is_usage_error,
)
from autoloss.detector_commands import DETECTOR_COMMANDS, add_detector_commands
from autoloss.export import EXPORT_COMMANDS, add_export_parser
from autoloss.plots import PLOT_COMMANDS, add_plot_parser
from autoloss.refine_command import REFINE_COMMANDS, add_refine_parser
from autoloss.report_command import REPORT_COMMANDS, add_report_parser
from autoloss.search_command import SEARCH_COMMANDS, add_search_parser
from autoloss.simulate_command import SIMULATE_COMMANDS, add_simulate_parser
from autoloss.split_command import SPLIT_COMMANDS, add_split_parser
from symbolic.candidate import Candidate
from symbolic.cpv import DEFAULT_TIME_BUDGET, Verdict, format_verdict, verify
from symbolic.forms import FORMS
from symbolic.zoo import KNOWN_LOSSES


def describe(candidate: Candidate) -> dict:
    """The JSON-ready description of a candidate: its printed forms and identities (value and gradient)."""
    return {
        "form": candidate.form.name,
        "infix": candidate.infix(),
        "prefix": candidate.prefix(),
        "latex": candidate.latex(),
        "key": candidate.key,
        "fingerprint": candidate.fingerprint,
        "gradient_key": candidate.gradient_key,  # None when the symbolic derivative is not cheap
        "gradient_fingerprint": candidate.gradient_fingerprint,
        "size": candidate.size,
        "depth": candidate.depth,
    }


def run_show(args: argparse.Namespace) -> dict:
    """``autoloss show EXPR --form F``: the canonical candidate of a formula."""
    return describe(Candidate.parse(args.expr, args.form))


def format_show(report: dict) -> str:
    """Text report of ``show``."""
    width = max(map(len, report))
    return "\n".join(f"{name:<{width}}  {value}" for name, value in report.items())


def run_verify(args: argparse.Namespace) -> dict:
    """``autoloss verify EXPR --form F``: the convergence-property verdict of a formula."""
    if not math.isfinite(args.time_budget) or args.time_budget < 0:
        raise UsageError(f"--time-budget must be a finite number of seconds >= 0, got {args.time_budget}",
                         where="--time-budget", hint="give e.g. 5 (0 skips the proofs)")
    candidate = Candidate.parse(args.expr, args.form)
    return {"candidate": describe(candidate), "verdict": verify(candidate, time_budget=args.time_budget).to_dict()}


def format_verify(report: dict) -> str:
    """Text report of ``verify``: the verdict, one line per property."""
    return format_verdict(Verdict.from_json(report["verdict"]))


def _cpv_summary(verdict: dict) -> str:
    return Verdict.from_json(verdict).summary().text()


def run_zoo(args: argparse.Namespace) -> dict:
    """``autoloss zoo``: the known losses with their canonical forms and CPV verdicts."""
    losses = []
    for loss in KNOWN_LOSSES.values():
        losses.append({"name": loss.name, "description": loss.description, "source": loss.source,
                       **describe(loss.candidate), "verdict": verify(loss.candidate).to_dict()})
    return {"losses": losses}


def format_zoo(report: dict) -> str:
    """Text table of ``zoo``: name, form, size, CPV verdict and canonical formula of every known loss."""
    rows = [("name", "form", "size", "CPV", "formula")]
    rows += [(loss["name"], loss["form"], str(loss["size"]), _cpv_summary(loss["verdict"]), loss["infix"])
             for loss in report["losses"]]
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:<{widths[3]}}  {e}" for a, b, c, d, e in rows]
    lines.insert(1, "-" * max(map(len, lines)))
    return "\n".join(lines)


Command = tuple[Callable[[argparse.Namespace], dict], Callable[[dict], str]]
# A command whose report is a verdict: exit 1 when it is negative.
CHECKS: dict[str, Callable[[dict], bool]] = {"verify": lambda report: report["verdict"]["passed"]}
# EXPR may be a zoo name (simulate and train resolve theirs)
FORMULA_COMMANDS = ("show", "verify", "export", "plot", "refine")
COMMANDS: dict[str, Command] = {
    "show": (run_show, format_show),
    "verify": (run_verify, format_verify),
    "zoo": (run_zoo, format_zoo),
    **DETECTOR_COMMANDS,
    **EXPORT_COMMANDS,
    **PLOT_COMMANDS,
    **REFINE_COMMANDS,
    **REPORT_COMMANDS,
    **SEARCH_COMMANDS,
    **SIMULATE_COMMANDS,
    **SPLIT_COMMANDS,
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises a UsageError (naming the argument) instead of exiting, so --json can answer in JSON."""

    def error(self, message: str):
        argument = message.partition(": ")[0].removeprefix("argument ") if message.startswith("argument ") else None
        error = UsageError(message, where=argument, hint=f"see {self.prog} --help")
        error.usage, error.prog = self.format_usage(), self.prog
        raise error


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = ArgumentParser(prog="autoloss", description="Search and inspect loss functions "
                            "for object detection (CSE-Autoloss).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    json_flag = ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    show = sub.add_parser("show", parents=[json_flag], help="canonical form, LaTeX, prefix and key of a formula")
    show.add_argument("expr", help="infix math (-log(sigmoid(x))), the authors' prefix format (Neg(Log(Sig(X)))) "
                      "or a zoo name (focal)")
    show.add_argument("--form", choices=sorted(FORMS), help="the loss form the formula belongs to (not needed "
                      "for a zoo name)")

    check = sub.add_parser("verify", parents=[json_flag], help="convergence property verification of a formula "
                           "(exit code 1 when it fails)")
    check.add_argument("expr", help="the formula or zoo name, as for show")
    check.add_argument("--form", choices=sorted(FORMS), help="the loss form the formula belongs to (not needed "
                       "for a zoo name)")
    check.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="SECONDS",
                       help=f"time for proof attempts (default {DEFAULT_TIME_BUDGET:g}); unproved properties are "
                       "reported as sampled")

    sub.add_parser("zoo", parents=[json_flag],
                   help="the known losses (baselines and published CSE-Autoloss losses) with their CPV verdicts")
    add_detector_commands(sub, json_flag)
    add_export_parser(sub, json_flag)
    add_plot_parser(sub, json_flag)
    add_refine_parser(sub, json_flag)
    add_report_parser(sub, json_flag)
    add_search_parser(sub, json_flag)
    add_simulate_parser(sub, json_flag)
    add_split_parser(sub, json_flag)
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    options = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                options |= _option_strings(subparser)
    return options


def protect_formulas(argv: Sequence[str], options: set[str]) -> tuple[list[str], dict[str, str]]:
    """Let values that start with '-' (``-log(sigmoid(x))``, ``--out -rep``) through argparse.

    argparse takes any token starting with '-' for an option; a leading space makes it a value without
    changing its meaning or order (a ``--word`` that is no option is left for argparse to refuse).
    Returns the protected tokens and {protected: original}, with which :func:`restore_values` gives
    each value back exactly as typed.
    """
    protected, originals, after_double_dash = [], {}, False
    for token in argv:
        after_double_dash = after_double_dash or token == "--"
        name = token.split("=")[0]
        misspelt_option = re.fullmatch(r"--[A-Za-z][\w-]*", name) is not None  # left for argparse to name
        if not after_double_dash and token.startswith("-") and name not in options and not misspelt_option:
            originals[f" {token}"] = token
            token = f" {token}"
        protected.append(token)
    return protected, originals


def restore_values(args: argparse.Namespace, originals: dict[str, str]) -> None:
    """Undo :func:`protect_formulas` in the parsed ``args`` (strings and lists of strings)."""
    for name, value in vars(args).items():
        if isinstance(value, str) and value in originals:
            setattr(args, name, originals[value])
        elif isinstance(value, list):
            setattr(args, name, [originals.get(item, item) if isinstance(item, str) else item for item in value])


def expand_zoo_name(args: argparse.Namespace) -> None:
    """A zoo name given as the formula of show, verify, export, plot or refine: its formula, and its form if none."""
    if args.command not in FORMULA_COMMANDS:
        return
    known = KNOWN_LOSSES.get(args.expr.strip())
    if known is not None and not os.path.isdir(args.expr):
        if args.form not in (None, known.form):
            raise UsageError(f"{args.expr.strip()!r} is a {known.form}-form loss, not {args.form}", where="EXPR",
                             hint=f"leave out --form or use --form {known.form}")
        args.expr, args.form = known.candidate.prefix(), known.form
    elif args.form is None and args.command in ("show", "verify"):
        raise UsageError("the loss form of the formula is missing", where="--form",
                         hint=f"give --form {'|'.join(sorted(FORMS))} (a zoo name needs none)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed check or internal error, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    parser = build_parser()
    command = "autoloss"
    try:
        tokens, originals = protect_formulas(argv, _option_strings(parser))
        args = parser.parse_args(tokens)
        restore_values(args, originals)
        command = f"autoloss {args.command}"
        expand_zoo_name(args)
        run, format_text = COMMANDS[args.command]
        report = run(args)
    except (KeyboardInterrupt, Interrupted) as error:
        error = error if isinstance(error, Interrupted) else Interrupted()
        return _fail(command, error, "interrupted", as_json, EXIT_INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - every outcome gets an answer; which one is decided here
        if is_usage_error(error):
            return _fail(command, error, "usage", as_json, EXIT_USAGE)
        traceback.print_exc(file=sys.stderr)
        return _fail(command, error, "internal", as_json, EXIT_FAILED)
    print(json.dumps(report) if args.json else format_text(report))
    passed = CHECKS.get(args.command)
    return EXIT_OK if passed is None or passed(report) else EXIT_FAILED


def _fail(command: str, error: BaseException, kind: str, as_json: bool, code: int) -> int:
    """Report ``error`` (stderr, and a JSON error object on stdout with --json); return ``code``."""
    report = error_object(error, kind)
    if kind == "usage" and getattr(error, "usage", None):  # argparse's own errors, as argparse shows them
        print(error.usage, end="", file=sys.stderr)
        command = error.prog
    if kind == "usage":
        print(f"{command}: error: {error}", file=sys.stderr)
    elif kind == "internal":
        print(f"{command}: {report['message']}\n{report['hint']}", file=sys.stderr)
    else:
        print(f"\n{command}: interrupted" + (f"; {report['hint']}" if report["hint"] else ""), file=sys.stderr)
    if as_json:
        print(json.dumps({"error": report}))
    return code


if __name__ == "__main__":
    sys.exit(main())
