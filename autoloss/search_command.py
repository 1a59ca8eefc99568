"""``autoloss search``: run CSE-Autoloss (or a baseline) from the command line, or continue a run.

Settings come from ``--preset`` (demo, the default; small; paper), then ``--config FILE.toml``, then
one flag per setting (``--generations 5``, ``--zoo-seeds focal,bce``; see ``autoloss search --help``).
``--resume RUN_DIR`` continues a run with its stored settings; settings given with it must match
them, except the execution ones (``--workers``, ``--dask-scheduler``). Progress goes to stderr; the
report (or with ``--json`` one JSON object) to stdout. Bad settings, run directories and schedulers
are usage errors (exit code 2, :mod:`autoloss.cli_contract`); Ctrl-C ends with how to resume.
"""

from __future__ import annotations

import argparse

from autoloss.cli_contract import Interrupted, UsageError
from autoloss.run_store import RunStore
from autoloss.search_config import PRESETS, SETTINGS, allowed, from_mapping, load_config, parse_flag_value
from autoloss.search_report import format_report
from detection.plan import format_plan

SETTING_PREFIX = "setting_"


def run_search(args: argparse.Namespace) -> dict:
    """``autoloss search``: run or resume a search; the report as a dict."""
    from autoloss.search_driver import search

    overrides = {name[len(SETTING_PREFIX):]: parse_flag_value(name[len(SETTING_PREFIX):], value)
                 for name, value in vars(args).items() if name.startswith(SETTING_PREFIX) and value is not None}
    if args.resume:
        if args.out:
            raise UsageError("both --out and --resume were given", where="--out",
                             hint="give either --out (a new run) or --resume (an existing one), not both")
        if args.preset or args.config:
            config = load_config(preset=args.preset, path=args.config, overrides=overrides)
        elif overrides:
            stored = RunStore.open(args.resume).config().to_dict()
            config = from_mapping({**stored, **overrides}, source="command line")
        else:
            config = None
        run_dir, resume = args.resume, True
    else:
        config = load_config(preset=args.preset, path=args.config, overrides=overrides)
        run_dir, resume = args.out, False
    if args.dry_run:
        return dry_run(config or RunStore.open(run_dir).config(), None if resume else run_dir)
    try:
        result = search(config, run_dir=run_dir, resume=resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        hint = f"continue with autoloss search --resume {run_dir}" if run_dir else \
            "continue with autoloss search --resume RUN_DIR (the newest folder in runs/)"
        raise Interrupted("interrupted", where=str(run_dir) if run_dir else None, hint=hint) from None
    return result.to_dict()


def dry_run(config, run_dir) -> dict:
    """``autoloss search --dry-run``: UsageError listing every problem, else the plan of the trainings."""
    from autoloss.search_plan import search_plan, search_problems

    problems = search_problems(config, run_dir)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise UsageError(f"{len(problems)} problem(s), nothing was run:\n{listed}")
    return {"command": "search", "dry_run": True, "plan": [stage.to_dict() for stage in search_plan(config)]}


def format_search(report: dict) -> str:
    """Text report of ``search``: funnel, per-generation table, hall of fame, final AP table (or a dry run's plan)."""
    if report.get("dry_run"):
        return format_plan(report["plan"])
    return format_report(report)


def add_search_parser(sub: argparse._SubParsersAction, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``search`` subparser: presets, config file, run directory, and one flag per setting."""
    parser = sub.add_parser(
        "search", parents=[json_flag], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="search loss functions (CSE-Autoloss: evolution with CPV, MOS and the proxy task)",
        description="Search loss functions with CSE-Autoloss and evaluate the best against the default losses. "
        "Without arguments: the demo preset (FCOS classification branch on the built-in dataset, about "
        "11 minutes on two CPU cores).",
        epilog="A TOML file (--config) sets any setting by name, an optional preset = \"small\" picks the base, "
        "and a [mos] table holds MOS settings (simulate.SimulationConfig fields).")
    parser.add_argument("--preset", help=f"base settings: {', '.join(PRESETS)} (default demo)")
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of settings (flags override it)")
    parser.add_argument("--out", metavar="RUN_DIR", help="new run directory (default runs/search-TIMESTAMP)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (e.g. after a kill)")
    parser.add_argument("--dry-run", action="store_true", help="check every path and setting (data, weights, run "
                        "folder, MOS settings, Dask workers), report every problem (exit 2) or the plan of the "
                        "proxy and final trainings with their estimated time; nothing is searched (the built-in "
                        "dataset is generated if missing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars and lines on stderr")
    group = parser.add_argument_group("settings (defaults of the demo preset)")
    for name, field in SETTINGS.items():
        if field.metadata["kind"] == "table":
            continue
        default = field.default
        notes = [allowed(field)] if field.metadata["kind"] in ("int", "float") else []
        if default not in (None, ()):
            notes.append(f"default {','.join(default) if isinstance(default, tuple) else default}")
        group.add_argument(f"--{name.replace('_', '-')}", dest=SETTING_PREFIX + name, metavar=_metavar(field),
                           help=field.metadata["help"] + "".join(f"; {note}" for note in notes))


def _metavar(field) -> str:
    kind = field.metadata["kind"]
    if kind == "choice":
        return "{" + ",".join(field.metadata["choices"]) + "}"
    if kind == "names":
        return "NAME[,NAME...]"
    return {"int": "N", "float": "X"}.get(kind, "TEXT")


SEARCH_COMMANDS = {"search": (run_search, format_search)}
