"""What a search prints: live progress on stderr (bars, a line per running training and per generation)
and the final text report."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm

from autoloss.final_comparison import PAPER_COLUMNS, Comparison, schedule_caveat, trained_seeds
from autoloss.markdown import mean_std, percent


def generation_line(branch: str, summary: dict, generations: int) -> str:
    """One generation's funnel: generated → unique → passed CPV → passed MOS → proxy AP best/median (percent)."""
    return (f"[{branch}] generation {summary['generation'] + 1}/{generations}: generated {summary['generated']:,} → "
            f"unique {summary['unique']:,} → CPV {summary['cpv']:,} → MOS {summary['mos']:,} → proxy "
            f"{summary['proxy']}: AP best {percent(summary['best'], 2)} median {percent(summary['median'], 2)}"
            + (f" ({summary['proxy_failed']} failed)" if summary.get("proxy_failed") else ""))


class SearchProgress:
    """Progress of a running search on ``stream`` (stderr): a bar per stage, below it a line per running
    training (``autoloss.training_progress``), and one line per generation."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._bar = None
        self._name = ""
        self._lines: list = []
        self._shown: list[str] = []
        self._drawn = 0.0
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self._interval = 1.0 if interactive else 60.0  # a log file gets the training lines once a minute

    def message(self, text: str) -> None:
        """Print one line (above any bar)."""
        if self.enabled:
            tqdm.write(text, file=self.stream)

    def stage(self, description: str, total: int, *, done: int = 0, unit: str = "cand") -> None:
        """Show the bar of a stage (kept if it is already shown), ``done`` of ``total`` finished."""
        if self._bar is not None and self._name == description:
            return
        self.close()
        if self.enabled:
            self._name = description
            self._bar = tqdm(total=total, initial=done, desc=description, unit=unit, file=self.stream, leave=False,
                             dynamic_ncols=True)

    def advance(self, count: int = 1, **postfix) -> None:
        """Move the bar on by ``count``."""
        if self._bar is not None:
            self._bar.update(count)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)

    def breeding(self, counts: dict) -> None:
        """Evolution's progress callback: CPV-passing candidates of the target, raw trees generated."""
        self.stage(f"gen {counts['generation'] + 1} breed+CPV", counts["target"])
        if self._bar is not None:
            self._bar.n = counts["passed"]
            self._bar.set_postfix(generated=f"{counts['generated']:,}", refresh=False)
            self._bar.refresh()

    def trainings(self, lines: list[str]) -> None:
        """Show ``lines`` (one per running training) under the stage's bar."""
        if not self.enabled:
            return
        now = time.monotonic()
        if len(lines) == len(self._lines) and (lines == self._shown or now - self._drawn < self._interval):
            return
        while len(self._lines) > len(lines):
            self._lines.pop().close()
        while len(self._lines) < len(lines):
            self._lines.append(tqdm(total=0, position=len(self._lines) + 1, bar_format="{desc}", leave=False,
                                    file=self.stream, dynamic_ncols=True))
        for line, text in zip(self._lines, lines, strict=True):
            line.set_description_str(text, refresh=True)
        self._shown, self._drawn = list(lines), now

    def close(self) -> None:
        """Close the open bar and the training lines."""
        while self._lines:
            self._lines.pop().close()
        self._shown = []
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if k in right else cell.ljust(w) for k, (cell, w) in
                      enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


def format_report(report: dict) -> str:
    """The text report of a search (result.json's content plus ``run_dir``)."""
    config = report["config"]
    funnel = report["funnel"]
    lines = [f"search {'finished' if report['finished'] else 'stopped'}: method {config['method']}, "
             f"{config['detector']}, branch {config['branch']}, seed {config['seed']}; run directory "
             f"{report['run_dir']}",
             f"candidates: generated {funnel['generated']:,}, unique {funnel['unique']:,}, rejected by CPV "
             f"{funnel['rejected_by_cpv']:,} (invalid {funnel['invalid']:,}), rejected by MOS "
             f"{funnel['rejected_by_mos']:,}, proxy-trained {funnel['proxy']:,} (failed {funnel['proxy_failed']})"]
    for branch, part in report["branches"].items():
        rows = [["gen", "generated", "unique", "CPV", "MOS", "proxy", "best AP", "median AP"]]
        rows += [[str(g["generation"] + 1), f"{g['generated']:,}", f"{g['unique']:,}", str(g["cpv"]), str(g["mos"]),
                  str(g["proxy"]), percent(g["best"], 2), percent(g["median"], 2)] for g in part["generations"]]
        lines += ["", f"{branch} branch ({part['form']} form), per generation (proxy AP in %):"]
        lines += _table(rows, set(range(8)))
        rows = [["rank", "proxy AP", "MOS", "size", "CPV", "formula"]]
        rows += [[str(e["rank"]), percent(e["proxy_ap"], 2), percent(e["mos_score"], 2), str(e["size"]),
                  e["cpv_summary"], e["infix"]] for e in part["hall_of_fame"][:5]]
        lines += ["", f"hall of fame, {branch} (top {min(5, len(part['hall_of_fame']))}):"]
        lines += _table(rows, {0, 1, 2, 3}) if len(rows) > 1 else ["  (no candidate finished the proxy task)"]
        lines += pareto_lines(branch, part.get("pareto"))
    failed = report.get("failed_trainings") or []
    if failed:
        lines += ["", f"failed proxy trainings ({len(failed)}):"]
        lines += [f"  [{f['branch']}] generation {f['generation'] + 1}: {f['infix']}: {f['reason']}"
                  + (f" (after {f['attempts']} attempts)" if (f.get("attempts") or 1) > 1 else "") for f in failed]
    lines += format_final(report)
    seconds = report.get("seconds", {})
    if seconds:
        parts = ", ".join(f"{name} {seconds[name]:.0f} s" for name in ("breed", "mos", "proxy", "final")
                          if name in seconds)
        lines += ["", f"time: {seconds.get('total', 0.0) / 60:.1f} min ({parts})"]
    return "\n".join(lines)


def pareto_lines(branch: str, pareto: dict | None) -> list[str]:
    """Lines of a branch's Pareto front (``autoloss.pareto.ParetoFront.to_dict()``), the chosen best marked ``*``."""
    if not pareto or not pareto["front"]:
        return []
    rows = [["", "complexity", "proxy AP", "score", "formula"]]
    rows += [["*" if e["key"] == pareto["best"] else "", f"{e['complexity']:g}", percent(e["proxy_ap"], 2),
              f"{e['score']:.4f}", e["formula"] or e["key"]] for e in pareto["front"]]
    return ["", f"Pareto front, {branch} (complexity: {pareto['complexity_measure']}; score as PySR's; * = best):",
            *_table(rows, {1, 2, 3})]


def format_final(report: dict) -> list[str]:
    """Lines of the final evaluation: the paper's AP columns per row and each row's difference to the baseline."""
    final, config = report.get("final") or {}, report["config"]
    if not final:
        return []
    seeds = trained_seeds(final)
    lines = ["", f"final evaluation: {config['final_steps']} steps (batch {config['final_batch_size']}) on the train "
             f"split, seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds)) or '-'}; AP (%) on final_val, which "
             "the search never saw (mean ± std over the seeds):"]
    rows = [["row", *PAPER_COLUMNS]]
    legend, verdicts = [], []
    for name, row in final.items():
        if row.get("status") != "ok":
            rows.append([name, *["-"] * len(PAPER_COLUMNS)])
            legend.append(f"  {name}: failed ({row.get('reason')})")
            continue
        std = row.get("std") or {}
        rows.append([name, *(mean_std(row["metrics"].get(c), std.get(c)) for c in PAPER_COLUMNS)])
        if row.get("delta"):
            rows.append(["  vs baseline", *(_signed(row["delta"][c]) for c in PAPER_COLUMNS)])
        if row.get("comparison"):
            verdicts.append(f"  {name} vs baseline: {Comparison.from_dict(row['comparison']).text()}")
        legend.append(f"  {name}: cls {row['losses']['cls']}, reg {row['losses']['reg']}")
    caveat = schedule_caveat(config["detector"], config["final_steps"])
    return (lines + _table(rows, set(range(1, len(PAPER_COLUMNS) + 1))) + verdicts + ["losses:", *legend]
            + ([f"note: {caveat}"] if caveat else []))


def _signed(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}"
