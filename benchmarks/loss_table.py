"""The loss tables' shared surface: found losses as rows, mean ± std cells, the command line and the section.

``benchmarks.loss_combination`` and ``benchmarks.transfer`` differ only in their rows; both call
:func:`main_of` with a function building them. AP columns are percent, mean ± sample standard
deviation over the seeds that finished (an AP_S/M/L column is "-" when final_val has no object of
that size). "vs ref" is the mean difference in AP to the row marked "ref" on the same detector and
data over the seeds both finished, with a verdict: beyond the seed spread (the two rows' standard
deviations added) or within it, the rule of the search's final evaluation (``autoloss.final_comparison``),
and the two-sided paired t-test's p over those seeds (a seed fixes the initial weights and the batch order,
so the rows' trainings pair by seed).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autoloss.final_comparison import PAPER_COLUMNS, compare
from autoloss.search_result import SearchResult
from benchmarks.loss_rows import DETECTOR_ORDER, PRESETS, Loss, Row, Schedule, run_rows
from benchmarks.results_file import RESULTS, command_line, machine_line, publish, records_folder
from detection.detectors import get_detector

RowBuilder = Callable[[argparse.Namespace, dict[str, Loss] | None, str | None], list[Row]]


def found_losses(run_dir: str) -> tuple[str, dict[str, Loss]]:
    """(detector searched, {branch: Loss}) of the best losses of the search run in ``run_dir``."""
    result = SearchResult.load(run_dir)
    losses = {branch: Loss(f"found {branch}: `{_short(found.infix())}`", prefix=found.prefix(), form=found.form)
              for branch, found in sorted(result.winners.items())}
    if not losses:
        raise ValueError(f"{run_dir} holds no found loss yet (its hall of fame is empty)")
    return result.config.detector, losses


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def found_rows(found: dict[str, Loss], source: str, detector: str, data: str, *, show_unfit: bool) -> list[Row]:
    """Rows of a search's found losses on ``detector``: cls with the default reg, reg with the default cls, both.

    A found classification loss of another form than the detector's is a row saying so when
    ``show_unfit``, and left out otherwise.
    """
    spec = get_detector(detector)
    default_cls, default_reg = Loss.named(spec.default_cls_loss), Loss.named(spec.default_reg_loss)
    cls, reg = found.get("cls"), found.get("reg")
    fits = cls is not None and cls.form == spec.cls_form
    unfit = (f"a {cls.form}-form loss cannot train the {spec.cls_form} classifier of {detector}"
             if cls is not None and not fits else None)
    rows = []
    if cls is not None and (fits or show_unfit):
        rows.append(Row(detector, f"found cls ({source} search) + default reg", cls, default_reg, data,
                        not_applicable=unfit))
    if reg is not None:
        rows.append(Row(detector, f"default cls + found reg ({source} search)", default_cls, reg, data))
    if reg is not None and cls is not None and (fits or show_unfit):
        rows.append(Row(detector, f"found pair ({source} search)", cls, reg, data, not_applicable=unfit))
    return rows


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of the finite values; NaN where undefined."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
    return float(np.mean(finite)), std, len(finite)


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.1f}" if math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def summarize(results: list[dict]) -> dict:
    """AP columns (percent) as (mean, std, n), minutes per trained run, reused runs and failures of one row."""
    ok = [r for r in results if r["status"] == "ok"]
    # a run re-evaluated from the work folder has no final loss; a recorded one keeps its training's time
    trained = [r for r in ok if r.get("final_loss") is not None or "recorded" in r]
    return {
        "columns": {c: mean_std([100 * v for r in ok if (v := r["metrics"].get(c)) is not None])
                    for c in PAPER_COLUMNS},
        "minutes": float(np.mean([r["train_seconds"] for r in trained])) / 60 if trained else math.nan,
        "reused": len(ok) - len(trained),
        "recorded": sum("recorded" in r for r in results),
        "failures": [r["reason"] for r in results if r["status"] == "failed"],
        "missing": sum(r["status"] == "missing" for r in results),
        "seeds": len(results),
        "ap_by_seed": {seed: r["metrics"]["AP"] for seed, r in enumerate(results)  # results come in seed order
                       if r["status"] == "ok" and r["metrics"].get("AP") is not None},
    }


def _comparison(summary: dict, reference: dict | None) -> tuple[str, str | None]:
    """The "vs ref" cell and the verdict word (better, worse, within, or None when there is nothing to say)."""
    if reference is None:
        return "-", None
    comparison = compare(summary["ap_by_seed"], reference["ap_by_seed"])  # the search's final rule, paired
    if comparison.delta is None:
        return "-", None
    if comparison.verdict == "one seed":
        return f"{100 * comparison.delta:+.1f} (1 seed)", None
    verdict = "within" if comparison.verdict == "within the seed spread" else comparison.verdict
    test = "" if comparison.p_value is None else f"; p = {comparison.p_value:.2f}"
    return f"{100 * comparison.delta:+.1f} ({'within spread' if verdict == 'within' else verdict}{test})", verdict


def format_table(rows: list[Row], summaries: dict[Row, dict]) -> tuple[list[str], list[str]]:
    """(markdown table lines, one verdict line per detector and dataset) of the rows."""
    head = ["detector", "data", "row", "cls loss", "reg loss", *PAPER_COLUMNS, "vs ref (AP)", "min/run", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reference_rows = {(r.detector, r.data): r for r in rows if r.reference}
    verdicts: dict[tuple[str, str], dict[str, list[str]]] = {}
    for row in rows:
        group = (row.detector, row.data)
        reference = reference_rows.get(group)
        same_as_reference = reference is not None and (row.cls, row.reg) == (reference.cls, reference.reg)
        name = row.role + (" (ref)" if row.reference else " (the ref's runs)" if same_as_reference else "")
        if row.not_applicable:
            cells, compare, minutes = ["n/a"] * len(PAPER_COLUMNS), "n/a", "-"
            note = f"not trained: {row.not_applicable}"
        else:
            summary = summaries[row]
            cells = [_cell(*summary["columns"][c][:2]) for c in PAPER_COLUMNS]
            compare, verdict = (("ref", None) if same_as_reference or row.reference
                                else _comparison(summary, summaries.get(reference)))
            if verdict:
                verdicts.setdefault(group, {}).setdefault(verdict, []).append(row.role)
            minutes = "-" if math.isnan(summary["minutes"]) else f"{summary['minutes']:.1f}"
            note = _note(summary)
        lines.append("| " + " | ".join([row.detector, row.data, name, row.cls.label, row.reg.label, *cells,
                                         compare, minutes, note]) + " |")
    said = []
    for (detector, data), found in verdicts.items():
        parts = [f"{heading}: {'; '.join(found[word])}" for word, heading in (
            ("better", "better than the ref beyond the seed spread"),
            ("worse", "worse than the ref beyond the seed spread"),
            ("within", "within the spread")) if found.get(word)]
        said.append(f"* {detector} on {data}. " + ". ".join(part[0].upper() + part[1:] for part in parts) + ".")
    return lines, said


def _note(summary: dict) -> str:
    notes = []
    if summary["missing"]:
        notes.append(f"{summary['missing']} of {summary['seeds']} seeds not trained yet")
    if summary["failures"]:
        notes.append(f"{len(summary['failures'])} of {summary['seeds']} seeds failed ({summary['failures'][0]})")
    if summary["reused"]:
        notes.append(f"{summary['reused']} run(s) reused from the work folder")
    if summary["recorded"]:
        notes.append(f"{summary['recorded']} of {summary['seeds']} from the records")
    return "; ".join(notes)


def parser_of(description: str, *, detectors: bool) -> argparse.ArgumentParser:
    """The command line both tables take (``--detectors`` only where the rows allow choosing)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", choices=list(PRESETS), default="demo", help="schedule and datasets (default demo)")
    if detectors:
        parser.add_argument("--detectors", default=",".join(DETECTOR_ORDER),
                            help=f"comma-separated, of {', '.join(DETECTOR_ORDER)} (default both)")
    parser.add_argument("--seeds", type=int, help="seeds per row (default: the preset's)")
    parser.add_argument("--found", metavar="RUN_DIR", help="also rows with the best losses of this search run")
    parser.add_argument("--only", metavar="TEXT", help="only the rows whose detector, role or losses contain TEXT")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="keep the run directories here (finished runs are reused); default: a temporary folder")
    parser.add_argument("--records", metavar="DIR", type=records_folder,
                        help="read finished (row, seed) results from here and write new ones (commit it to keep a "
                        "long study); default: none")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the table of what --records holds (a study in progress)")
    parser.add_argument("--workers", type=int, default=0, help="local worker processes (default 0: this process)")
    parser.add_argument("--dask-scheduler", metavar="ADDRESS", help="run each (row, seed) as a Dask task there")
    parser.add_argument("--write", action="store_true", help="replace this table's section of the results file")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="results file for --write (default benchmarks/RESULTS.md)")
    return parser


def _selected(parser, args, rows: list[Row]) -> list[Row]:
    if not args.only:
        return rows
    text = args.only.lower()
    kept = [r for r in rows if text in " ".join((r.detector, r.role, r.cls.label, r.reg.label)).lower()]
    if not kept:
        parser.error(f"--only {args.only!r} matches no row; rows: {'; '.join(sorted({r.role for r in rows}))}")
    return kept


def main_of(module: str, title: str, description: str, build_rows: RowBuilder, *, detectors: bool,
            argv: list[str] | None = None) -> str:
    """Parse ``argv``, train the rows, print (and with --write store) the section; return it."""
    parser = parser_of(description, detectors=detectors)
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.report_only and not args.records:
        parser.error("--report-only reads the finished runs of --records DIR; give that folder")
    if args.workers < 0:
        parser.error(f"--workers must be 0 (this process) or more, got {args.workers}")
    if detectors:
        args.detectors = [name.strip() for name in args.detectors.split(",") if name.strip()]
        unknown = [name for name in args.detectors if name not in DETECTOR_ORDER]
        if unknown or not args.detectors:
            parser.error(f"--detectors takes a comma-separated list of {', '.join(DETECTOR_ORDER)}, "
                         f"got {','.join(unknown) or 'none'}")
    found, source = None, None
    if args.found:
        if not Path(args.found).is_dir():
            parser.error(f"--found {args.found}: not a directory; give the run directory of `autoloss search`")
        try:
            source, found = found_losses(args.found)
        except (FileNotFoundError, ValueError, KeyError) as error:
            parser.error(f"--found {args.found}: cannot read the search run ({error})")
    schedule = PRESETS[args.preset]
    if args.seeds is not None:
        schedule = Schedule(**{**schedule.__dict__, "seeds": args.seeds})
    rows = _selected(parser, args, build_rows(args, found, source))
    machine, load_before, started = machine_line(), os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loss-table-") as scratch:
        work_dir = Path(args.work_dir) if args.work_dir else Path(scratch)
        try:
            results = run_rows(rows, schedule, work_dir=work_dir, records=args.records,
                               train=not args.report_only, workers=args.workers, dask_scheduler=args.dask_scheduler,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
        except ValueError as error:  # a record that does not match its task
            parser.error(f"--records {args.records}: {error}")
    minutes = (time.perf_counter() - started) / 60
    table, verdicts = format_table(rows, {row: summarize(found) for row, found in results.items()})
    shared = max(os.getloadavg()[0], load_before) > 0.75 * (os.cpu_count() or 1)
    used = sorted({row.data for row in rows}, key=list(schedule.datasets).index)
    if args.report_only:  # the table of a study's records: how to continue it, and what its trainings cost
        command = command_line(module, [a for a in (sys.argv[1:] if argv is None else argv)
                                        if a not in ("--report-only", "--write")])
        trained = [r for found in results.values() for r in found if "recorded" in r and r.get("train_seconds")]
        run_line = (f"Command: `{command}` (resumable: it trains what the records folder lacks; this table was "
                    f"written from the records with `--report-only`); {len(trained)} recorded trainings, "
                    f"{sum(r['train_seconds'] for r in trained) / 3600:.1f} hours of training in all.")
    else:
        command = command_line(module, argv)
        run_line = (f"Command: `{command}`; wall time {minutes:.1f} min"
                    + (" (the cores were shared with other work, so times are inflated)." if shared else "."))
    lines = [
        f"## {title} ({args.preset} preset)", "",
        f"Machine: {machine}; after the run {os.getloadavg()[0]:.1f}.",
        run_line,
        f"Schedule: {schedule.describe()}; " + (f"seeds 0-{schedule.seeds - 1}." if schedule.seeds > 1 else "seed 0."),
        "Data: " + "; ".join(f"{label} = `{schedule.datasets[label]}`" for label in used) + ".",
        "", *table, "",
        "AP columns: percent on final_val, mean ± sample standard deviation over the seeds; \"vs ref\": mean AP minus "
        "the ref row's on the same detector and data, \"within spread\" when smaller than the two rows' standard "
        "deviations added, p: two-sided paired t-test over the seeds; min/run: training minutes per run, compilation "
        "included, evaluation not.", "",
        *verdicts, *([""] if verdicts else []), schedule.caveat,
    ]
    return publish("\n".join(lines).rstrip("\n") + "\n", args.write, args.results)

