"""The default search end to end (``autoloss search``, demo preset): wall time, filter counts, found vs baseline.

Runs one search per method (``cse`` by default; ``--methods cse,cpv-only,vanilla,random`` adds the
paper's ablation baselines under the same proxy budget) and prints a Markdown section: the machine,
the command, wall minutes with the time of each stage, the funnel (generated, unique, rejected by CPV,
rejected by MOS, proxy-trained), the best found loss, and the final-val AP table of the found loss
against the baseline losses. ``--trained-steps N`` then trains the found classification loss and the baseline at
N steps with the detector's default learning rate, seeds as the final stage chooses them, and adds that table
(``benchmarks.schedule_check``: does the verdict of the short final schedule hold at a longer one?);
``--reuse-records`` reads trainings already recorded there (the proxy-fidelity study's, same preset and seed).
``--write`` replaces that section of ``benchmarks/RESULTS.md``.

Usage: python benchmarks/search_demo.py [--preset demo] [--methods cse] [--out runs/bench]
       [--trained-steps 3000 [--reuse-records DIR]] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoloss.final_comparison import PAPER_COLUMNS, Comparison  # noqa: E402
from autoloss.markdown import mean_std, percent  # noqa: E402
from autoloss.search_config import METHODS, SearchConfig  # noqa: E402
from autoloss.search_driver import search  # noqa: E402
from benchmarks.results_file import command_line, machine_line, publish  # noqa: E402
from benchmarks.schedule_check import check_found  # noqa: E402
from detection.detectors import get_detector  # noqa: E402

SECTION = "## Search, demo preset (autoloss search)"


def final_rows(final: dict[str, dict]) -> list[str]:
    """The Markdown table of final rows (mean ± std and the difference to the baseline) and their verdicts."""
    lines = ["| row | losses | " + " | ".join(PAPER_COLUMNS) + " |", "|---|---|" + "---|" * len(PAPER_COLUMNS)]
    for name, row in final.items():
        losses = f"cls `{row['losses']['cls']}`, reg `{row['losses']['reg']}`"
        if row.get("status") != "ok":
            lines.append(f"| {name} | {losses} | failed: {row.get('reason')} |")
            continue
        cells = []
        for column in PAPER_COLUMNS:
            delta = (row.get("delta") or {}).get(column)
            cells.append(mean_std(row["metrics"].get(column), (row.get("std") or {}).get(column))
                         + ("" if delta is None else f" ({100 * delta:+.1f})"))
        lines.append(f"| {name} | {losses} | " + " | ".join(cells) + " |")
    verdicts = [f"* {name} vs baseline: {Comparison.from_dict(row['comparison']).text()}"
                for name, row in final.items() if row.get("comparison")]
    return lines + ([""] + verdicts if verdicts else []) + [""]


def method_rows(method: str, result) -> list[str]:
    """Markdown rows of one method: its funnel and time, and its final rows."""
    funnel, seconds = result.funnel, result.seconds
    stages = ", ".join(f"{name} {seconds.get(name, 0.0):.0f} s" for name in ("breed", "mos", "proxy", "final"))
    minutes = seconds.get("total", 0.0) / 60
    lines = [f"### method `{method}`", "",
             f"Wall time **{minutes:.1f} min** ({stages}); run directory `{result.run_dir}`.", "",
             "| generated | unique | rejected by CPV | passed CPV | rejected by MOS | passed MOS | proxy-trained "
             "| proxy failed |", "|---|---|---|---|---|---|---|---|",
             f"| {funnel['generated']:,} | {funnel['unique']:,} | {funnel['rejected_by_cpv']:,} | {funnel['cpv']:,} | "
             f"{funnel['rejected_by_mos']:,} | {funnel['mos']:,} | {funnel['proxy']} | {funnel['proxy_failed']} |", ""]
    best = result.best
    if best is not None:
        lines += [f"Best found: `{best.infix()}` (proxy AP {percent(best.proxy_ap)}, size {best.size}, CPV "
                  f"{best.cpv}; prefix `{best.prefix()}`).", ""]
    return lines + final_rows(result.final)


def trained_rows(config: SearchConfig, result, steps: int, work_dir: Path, reuse: Path | None) -> list[str]:
    """The found classification loss against the baseline at ``steps`` (``benchmarks.schedule_check``)."""
    best = result.best
    if best is None or best.branch != "cls":
        return [f"No found classification loss to train at {steps} steps.", ""]
    started = time.perf_counter()
    table = check_found(config, {"prefix": best.prefix(), "form": best.form}, best.infix(), steps, work_dir, reuse)
    read = f", those already recorded in `{reuse}` read from there" if reuse is not None else ""
    return [f"The found loss and the baseline at {steps} steps (learning rate "
            f"{get_detector(config.detector).default_optimizer.learning_rate:g}, from scratch, final_val; "
            f"{(time.perf_counter() - started) / 60:.1f} min; trainings recorded in `{work_dir}`{read}):", ""
            ] + final_rows(table)


def _steps(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of training steps; write e.g. 3000 (0: none)")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--methods", default="cse", help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument("--out", default=f"runs/bench-{datetime.datetime.now():%Y%m%d-%H%M%S}",
                        help="folder of the run directories (one per method)")
    parser.add_argument("--trained-steps", type=_steps, default=0,
                        help="also train the found loss and the baseline at this many steps (0: not)")
    parser.add_argument("--reuse-records", type=Path, default=None,
                        help="folder of recorded trainings to read instead of training again (the same preset and "
                             "seed's proxy-fidelity records)")
    parser.add_argument("--write", action="store_true", help="replace our section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.reuse_records is not None and not (args.reuse_records / "trainings").is_dir():
        parser.error(f"--reuse-records {args.reuse_records}: no trainings/ folder of recorded trainings there; give "
                     "a study's records folder, e.g. benchmarks/records/proxy_fidelity/demo-seed0")
    command = command_line("benchmarks.search_demo", argv)
    lines = [SECTION, "", f"Machine: {machine_line()}. Command: `{command}` "
             f"(the default run is `autoloss search`).", "",
             "Final rows: AP (%) on final_val, which the search never saw, mean ± std over the final seeds; in "
             "parentheses the difference to the baseline row, and below the difference against the seed spread.",
             ""]
    for method in args.methods.split(","):
        config = SearchConfig.preset(args.preset, method=method)
        result = search(config, run_dir=Path(args.out) / method)
        lines += method_rows(method, result)
        if args.trained_steps:
            lines += trained_rows(config, result, args.trained_steps, Path(args.out) / method / "trained",
                                  args.reuse_records)
    lines.append(f"Load average after: {os.getloadavg()[0]:.1f}.")
    publish("\n".join(lines) + "\n", args.write)


if __name__ == "__main__":
    main()
