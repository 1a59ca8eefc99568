"""The ``autoloss`` command line.

Every command prints a human-readable report, or with ``--json`` exactly one JSON object on
stdout and nothing else there. Errors in what the user typed (a formula, a form, a flag)
go to stderr as one message with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from autoloss.detector_commands import DETECTOR_COMMANDS, add_detector_commands
from autoloss.export import EXPORT_COMMANDS, add_export_parser
from autoloss.plots import PLOT_COMMANDS, add_plot_parser
from autoloss.report_command import REPORT_COMMANDS, add_report_parser
from autoloss.search_command import SEARCH_COMMANDS, add_search_parser
from autoloss.simulate_command import SIMULATE_COMMANDS, add_simulate_parser
from detection.training import TrainingDiverged
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv import DEFAULT_TIME_BUDGET, Verdict, format_verdict, verify
from symbolic.forms import FORMS
from symbolic.parser import ParseError
from symbolic.zoo import KNOWN_LOSSES

USAGE_ERRORS = (ParseError, InvalidCandidate, ValueError, TrainingDiverged)


def describe(candidate: Candidate) -> dict:
    """The JSON-ready description of a candidate: its printed forms and identity."""
    return {
        "form": candidate.form.name,
        "infix": candidate.infix(),
        "prefix": candidate.prefix(),
        "latex": candidate.latex(),
        "key": candidate.key,
        "fingerprint": candidate.fingerprint,
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
COMMANDS: dict[str, Command] = {
    "show": (run_show, format_show),
    "verify": (run_verify, format_verify),
    "zoo": (run_zoo, format_zoo),
    **DETECTOR_COMMANDS,
    **EXPORT_COMMANDS,
    **PLOT_COMMANDS,
    **REPORT_COMMANDS,
    **SEARCH_COMMANDS,
    **SIMULATE_COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="autoloss", description="Search and inspect loss functions "
                                     "for object detection (CSE-Autoloss).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    show = sub.add_parser("show", parents=[json_flag], help="canonical form, LaTeX, prefix and key of a formula")
    show.add_argument("expr", help="infix math (-log(sigmoid(x))) or the authors' prefix format (Neg(Log(Sig(X))))")
    show.add_argument("--form", required=True, choices=sorted(FORMS), help="the loss form the formula belongs to")

    check = sub.add_parser("verify", parents=[json_flag], help="convergence property verification of a formula")
    check.add_argument("expr", help="the formula, as for show")
    check.add_argument("--form", required=True, choices=sorted(FORMS), help="the loss form the formula belongs to")
    check.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="SECONDS",
                       help=f"time for proof attempts (default {DEFAULT_TIME_BUDGET:g}); unproved properties are "
                       "reported as sampled")

    sub.add_parser("zoo", parents=[json_flag],
                   help="the known losses (baselines and published CSE-Autoloss losses) with their CPV verdicts")
    add_detector_commands(sub, json_flag)
    add_export_parser(sub, json_flag)
    add_plot_parser(sub, json_flag)
    add_report_parser(sub, json_flag)
    add_search_parser(sub, json_flag)
    add_simulate_parser(sub, json_flag)
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    options = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                options |= _option_strings(subparser)
    return options


def protect_formulas(argv: Sequence[str], options: set[str]) -> list[str]:
    """Let formulas that start with '-' (``-log(sigmoid(x))``) through argparse as positionals.

    argparse takes any token starting with '-' for an option; a leading space (which the
    formula grammar ignores) makes it a positional without changing its meaning or order.
    """
    protected, after_double_dash = [], False
    for token in argv:
        after_double_dash = after_double_dash or token == "--"
        is_formula = not after_double_dash and token.startswith("-") and token.split("=")[0] not in options
        protected.append(f" {token}" if is_formula else token)
    return protected


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(protect_formulas(argv, _option_strings(parser)))
    run, format_text = COMMANDS[args.command]
    try:
        report = run(args)
    except USAGE_ERRORS as error:
        print(f"autoloss {args.command}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else format_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
