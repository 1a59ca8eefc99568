"""``autoloss report RUN_DIR``: a Markdown report of a search run, with its plots.

It writes into ``--out`` (default ``RUN_DIR/report``):

* ``report.md``: the best loss of each branch (LaTeX, infix, the authors' prefix) with its CPV verdict,
  MOS and proxy scores, the branch's hall of fame and its Pareto front (complexity against proxy AP,
  PySR's score and choice of "best": ``autoloss.pareto``); the search progress per generation; the
  filter funnel; and the final AP table (the paper's columns, with the difference to the baseline), or
  why there is none;
* ``progress-BRANCH.png``, ``funnel.png``, ``loss-BRANCH.png`` (the best loss beside its form's
  baselines) and ``pareto-BRANCH.png`` (the front), linked from report.md by relative paths.

The run is read with ``SearchResult.load``, so a run that stopped early (killed, or still running) gets
the report of what it holds so far.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autoloss.cli_contract import UsageError
from autoloss.export import write_output
from autoloss.final_comparison import PAPER_COLUMNS, Comparison, schedule_caveat, trained_seeds
from autoloss.markdown import code, mean_std, percent, signed, table
from autoloss.pareto import BEST_LOSS_FACTOR, ParetoFront
from autoloss.plots import plot_funnel, plot_loss, plot_pareto, plot_search_progress
from autoloss.search_result import SearchResult

REPORT_FILE = "report.md"
HALL_OF_FAME_ROWS = 10
FUNNEL_ROWS = (("generated", "generated"), ("unique", "unique (after dedup)"), ("cpv", "passed CPV"),
               ("mos", "passed MOS"), ("proxy", "trained on the proxy task"), ("proxy_failed", "failed the proxy task"))


def draw_plots(result: SearchResult, out_dir: Path) -> dict[str, str]:
    """Write the report's PNG files into ``out_dir``; {what: file name} of those drawn."""
    images = {}
    for branch, part in result.summary["branches"].items():
        if part["generations"]:
            images[f"progress-{branch}"] = f"progress-{branch}.png"
            plot_search_progress(part["generations"], path=str(out_dir / images[f"progress-{branch}"]))
    if result.funnel.get("generated"):
        images["funnel"] = "funnel.png"
        plot_funnel(result.funnel, path=str(out_dir / images["funnel"]))
    for branch, loss in result.winners.items():
        images[f"loss-{branch}"] = f"loss-{branch}.png"
        plot_loss(loss.candidate, path=str(out_dir / images[f"loss-{branch}"]))
    for branch, front in result.pareto.items():
        if front.candidates:
            images[f"pareto-{branch}"] = f"pareto-{branch}.png"
            plot_pareto(front, path=str(out_dir / images[f"pareto-{branch}"]))
    return images


def _header(result: SearchResult) -> list[str]:
    config, seconds = result.config, result.seconds
    state = "finished" if result.finished else (
        f"**stopped before the end**; continue it with `autoloss search --resume {result.run_dir}`")
    lines = [f"# Search report: {result.run_dir.name}", "",
             f"Method `{config.method}`, detector `{config.detector}`, branch `{config.branch}`, data `{config.data}`, "
             f"seed {config.seed}: {config.generations} generation{'s' * (config.generations != 1)} of "
             f"M = {config.population} candidates, "
             f"K = {config.top_k} trained on the proxy task ({config.proxy_steps} steps), P = {config.parents} "
             f"parents.", "", f"Status: {state}."]
    if seconds.get("total"):
        parts = ", ".join(f"{name} {seconds[name]:.0f} s" for name in ("breed", "mos", "proxy", "final")
                          if name in seconds)
        lines[-1] += f" Time: {seconds['total'] / 60:.1f} min ({parts})."
    return lines


def _cpv_text(entry: dict) -> str:
    cpv = entry["cpv"]
    if cpv is None:
        return "not checked (this method skips CPV)"
    parts = [f"{status}: {', '.join(cpv[status])}" for status in ("proved", "sampled", "failed") if cpv[status]]
    return f"{entry['cpv_summary']}; " + "; ".join(parts)


def _best_losses(result: SearchResult, images: dict[str, str]) -> list[str]:
    lines = ["", "## Best losses"]
    for branch in result.config.branches:
        lines += ["", f"### {branch} branch ({result.config.form_of(branch)} form)", ""]
        entries = result.summary["branches"].get(branch, {}).get("hall_of_fame", [])
        if not entries:
            lines.append("No candidate of this branch has finished the proxy task yet.")
            continue
        best = entries[0]
        baseline = (result.summary["mos_baseline"].get(branch) or {}).get("score")
        mos = percent(best["mos_score"], 2) + (f" (the default loss: {percent(baseline, 2)})" if baseline else "")
        if result.config.method != "cse":
            mos = f"not simulated (method {result.config.method})"
        lines += [f"$$ {best['latex']} $$", "",
                  f"- infix: `{best['infix']}`",
                  f"- authors' prefix: `{best['prefix']}`",
                  f"- CPV: {_cpv_text(best)}",
                  f"- MOS score (AP % on the verification images): {mos}",
                  f"- proxy AP %: {percent(best['proxy_ap'], 2)} "
                  f"(AP50 {percent(best['proxy_metrics'].get('AP50'), 2)})",
                  f"- size {best['size']}, found in generation {best['generation'] + 1} ({best['origin']})"]
        if f"loss-{branch}" in images:
            lines += ["", f"![the best {branch} loss beside its baselines]({images[f'loss-{branch}']})"]
        rows = [[str(e["rank"]), percent(e["proxy_ap"], 2), percent(e["mos_score"], 2), str(e["size"]),
                 e["cpv_summary"], code(e["infix"])] for e in entries[:HALL_OF_FAME_ROWS]]
        lines += ["", f"Hall of fame ({len(rows)} of {len(entries)}):", ""]
        lines += table(["rank", "proxy AP %", "MOS %", "size", "CPV", "formula"], rows, text_columns=(4, 5))
        lines += pareto_section(result.pareto.get(branch), images.get(f"pareto-{branch}"), branch)
    return lines


def pareto_section(front: ParetoFront | None, image: str | None, branch: str) -> list[str]:
    """Markdown lines of a branch's Pareto front: a table (simplest first, the best marked) and its plot."""
    if front is None or not front.front:
        return ["", "Pareto front: no candidate with a proxy AP above 0 yet."]
    rows = [[f"{e.point.complexity:g}", percent(e.point.ap, 2), f"{e.score:.4f}", "**best**" if e.point.key ==
             front.best else "", code(e.point.formula or e.point.key)] for e in front.front]
    lines = ["", f"Pareto front ({len(rows)} of {len(front.candidates)} proxy-trained candidates; complexity: "
             f"{front.measure}): no simpler candidate reaches an entry's AP. Score as in PySR, −Δlog(loss)/Δcomplexity "
             f"with loss = 1/AP; best as PySR's default: the highest score among entries with AP ≥ the highest AP / "
             f"{BEST_LOSS_FACTOR:g}.", ""]
    lines += table(["complexity", "proxy AP %", "score", "", "formula"], rows, text_columns=(3, 4))
    if image:
        lines += ["", f"![proxy AP against complexity, {branch} branch]({image})"]
    return lines


def _progress(result: SearchResult, images: dict[str, str]) -> list[str]:
    lines = ["", "## Search progress"]
    for branch in result.config.branches:
        lines += ["", f"### {branch} branch", ""]
        generations = result.summary["branches"].get(branch, {}).get("generations", [])
        if not generations:
            lines.append("No generation has finished yet.")
            continue
        rows = [[str(g["generation"] + 1), f"{g['generated']:,}", f"{g['unique']:,}", str(g["cpv"]), str(g["mos"]),
                 str(g["proxy"]), percent(g["best"], 2), percent(g["median"], 2)] for g in generations]
        lines += table(["generation", "generated", "unique", "CPV", "MOS", "proxy", "best AP %", "median AP %"], rows,
                       text_columns=())
        lines += ["", f"![proxy AP per generation, {branch} branch]({images[f'progress-{branch}']})"]
    return lines


def _funnel(result: SearchResult, images: dict[str, str]) -> list[str]:
    funnel = result.funnel
    lines = ["", "## Funnel", ""]
    if not funnel.get("generated"):
        return lines + ["No candidate has been generated yet."]
    rows = [[f"{funnel[key]:,}", percent(funnel[key] / funnel["generated"], 2), label] for key, label in FUNNEL_ROWS]
    lines += ["Candidates at each stage, over all generations and branches (CSE-Autoloss, Sec. 3: CPV and MOS "
              "filter most of them out before the proxy task).", ""]
    return lines + table(["candidates", "% of generated", "stage"], rows) + ["", f"![the funnel]({images['funnel']})"]


def failures_section(result: SearchResult) -> list[str]:
    """Markdown lines of the proxy trainings that failed, with why (nothing when none did)."""
    failed = result.summary.get("failed_trainings") or []
    if not failed:
        return []
    rows = [[f["branch"], str(f["generation"] + 1), code(f["infix"]), f["reason"] or "-", str(f.get("attempts") or 1)]
            for f in failed]
    lines = ["", "## Failed trainings", "", f"{len(failed)} proxy training{'s' * (len(failed) != 1)} failed; "
             "each counts as the worst result and the search went on.", ""]
    return lines + table(["branch", "generation", "formula", "reason", "attempts"], rows, text_columns=(0, 2, 3))


def final_section(result: SearchResult) -> list[str]:
    """Markdown lines of the final evaluation: the AP table with differences to the baseline, or why there is none."""
    config, final = result.config, result.final
    lines = ["", "## Final evaluation", ""]
    if not final:
        if result.finished and config.final_steps == 0:
            return lines + ["Skipped: the run was configured with `final_steps = 0`."]
        if result.finished:
            return lines + ["The run finished without final evaluation rows."]
        return lines + ["**Not evaluated yet.** The run stopped before its final evaluation, so there is no final AP "
                        f"table. Continue it with `autoloss search --resume {result.run_dir}`, then run "
                        "`autoloss report` again."]
    if not result.finished:
        lines += ["**Incomplete.** The run stopped during its final evaluation; the rows below are those that "
                  f"finished. Continue it with `autoloss search --resume {result.run_dir}`.", ""]
    seeds = trained_seeds(final)
    lines += [f"Each row trained for {config.final_steps} steps (batch {config.final_batch_size}) on the train split "
              f"with seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds)) or '-'} (up to "
              f"{config.final_max_seeds} while a found row is within the seed spread of the baseline); AP % on "
              "`final_val`, which the search never saw: mean ± standard deviation over the seeds.", ""]
    rows, legend, verdicts = [], [], []
    for name, row in final.items():
        if row.get("status") != "ok":
            rows.append([name, *["-"] * len(PAPER_COLUMNS)])
            legend.append(f"- {name}: failed ({row.get('reason')})")
            continue
        std = row.get("std") or {}
        rows.append([name, *(mean_std(row["metrics"].get(c), std.get(c)) for c in PAPER_COLUMNS)])
        if row.get("delta"):
            rows.append([f"Δ {name} vs baseline", *(signed(row["delta"][c]) for c in PAPER_COLUMNS)])
        if row.get("comparison"):
            verdicts.append(f"- {name} vs baseline: {Comparison.from_dict(row['comparison']).text()}")
        legend.append(f"- {name}: cls {code(row['losses']['cls'])}, reg {code(row['losses']['reg'])}")
    lines += table(["row", *PAPER_COLUMNS], rows, text_columns=(0,))
    if verdicts:
        lines += ["", "AP difference against the seed spread (beyond it: better or worse; within it: more seeds or "
                  "a longer schedule would be needed to tell):", "", *verdicts]
    caveat = schedule_caveat(config.detector, config.final_steps)
    if caveat:
        lines += ["", f"**Note.** {caveat}"]
    return lines + ["", "Losses:", "", *legend]


def report_markdown(result: SearchResult, images: dict[str, str]) -> str:
    """The text of report.md for ``result``, linking the ``images`` (relative file names)."""
    sections = [_header(result), _best_losses(result, images), _progress(result, images), _funnel(result, images),
                failures_section(result), final_section(result)]
    return "\n".join(line for section in sections for line in section) + "\n"


def write_report(run_dir, out_dir=None) -> dict:
    """Write report.md and its plots for the run in ``run_dir`` into ``out_dir`` (default RUN_DIR/report)."""
    result = SearchResult.load(run_dir)  # RunDirectoryError (a ValueError) if it is not a run directory
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the report directory {out}: {error.strerror or error}", where="--out",
                         hint="choose another --out") from None
    images = draw_plots(result, out)
    write_output(out / REPORT_FILE, report_markdown(result, images))
    return {"run_dir": str(run_dir), "out_dir": str(out), "report": str(out / REPORT_FILE),
            "images": [str(out / name) for name in images.values()], "finished": result.finished,
            "final_evaluated": bool(result.final),
            "pareto": {branch: {key: value for key, value in front.to_dict().items() if key != "candidates"}
                       for branch, front in result.pareto.items()}}


def run_report(args: argparse.Namespace) -> dict:
    """``autoloss report RUN_DIR [--out DIR]``: write the run's report; what was written."""
    return write_report(args.run_dir, args.out)


def format_report_written(report: dict) -> str:
    """Text report of ``report``: where report.md and its images went."""
    note = "" if report["finished"] else " (the run is unfinished; the report says what it holds so far)"
    return f"wrote {report['report']} and {len(report['images'])} image(s) to {report['out_dir']}{note}"


REPORT_COMMANDS = {"report": (run_report, format_report_written)}


def add_report_parser(sub, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``report`` subcommand to the CLI's subparsers."""
    report = sub.add_parser("report", parents=[json_flag], help="a Markdown report (report.md and PNG plots) of a "
                            "search run: best losses, Pareto front, progress, funnel and final AP table")
    report.add_argument("run_dir", metavar="RUN_DIR", help="the run directory of a search (finished or not)")
    report.add_argument("--out", metavar="DIR", help="folder to write into (default RUN_DIR/report)")
