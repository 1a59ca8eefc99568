"""Plots of a search run: best and median proxy AP per generation, the filter funnel and the Pareto front.

They read plain data that a search writes (lists and dicts, JSON-ready):

* ``generations``: one dict per generation, in any order —
  ``{"generation": 3, "proxy_aps": [0.312, 0.298, nan, ...]}``, the proxy AP of every candidate
  trained on the proxy task that generation (NaN for a failed evaluation; an empty list if none
  reached the proxy). Other keys are ignored.
* ``funnel``: how many candidates reached each stage, summed over the run —
  ``{"generated": 12000, "cpv": 900, "mos": 150, "proxy": 40}`` (CSE-Autoloss, Sec. 3: CPV and MOS
  filter out most candidates before the proxy task).
* ``front``: a branch's ``autoloss.pareto.ParetoFront``, or its ``to_dict()`` as in the summary's
  ``branches[branch]["pareto"]``.
* ``curves``: per search method, one list per seed of the proxy APs in evaluation order (None or
  NaN for a failed evaluation), as ``benchmarks.search_efficiency`` records them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from autoloss.pareto import ParetoFront
from autoloss.plots_losses import save_figure

FUNNEL_STAGES = ("generated", "cpv", "mos", "proxy")
FUNNEL_COLORS = ("#7570b3", "#1b9e77", "#d95f02", "#e7298a")
FUNNEL_LABELS = {"generated": "generated", "cpv": "passed CPV", "mos": "passed MOS", "proxy": "trained on proxy"}


def _proxy_aps(record: Mapping, position: int) -> tuple[int, np.ndarray]:
    missing = [key for key in ("generation", "proxy_aps") if key not in record]
    if missing:
        raise ValueError(f"generation record {position} lacks {', '.join(missing)}: "
                         "each needs 'generation' (int) and 'proxy_aps' (list of floats)")
    return int(record["generation"]), np.asarray(list(record["proxy_aps"]), dtype=np.float64)


def plot_search_progress(generations: Sequence[Mapping], *, path: str | None = None) -> Figure:
    """Best and median proxy AP per generation, over every candidate's AP as a dot."""
    records = sorted((_proxy_aps(record, k) for k, record in enumerate(generations)), key=lambda r: r[0])
    if not records:
        raise ValueError("no generations to plot")
    numbers = np.array([number for number, _ in records])
    best, median = [], []
    for _, aps in records:
        finite = aps[np.isfinite(aps)]
        best.append(finite.max() if finite.size else math.nan)
        median.append(np.median(finite) if finite.size else math.nan)

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    dots = [(number, ap) for number, aps in records for ap in aps if np.isfinite(ap)]
    if dots:
        ax.scatter(*zip(*dots, strict=True), s=10, color="lightgray", label="candidates", zorder=1)
    ax.plot(numbers, best, marker="o", color="#d95f02", label="best", zorder=3)
    ax.plot(numbers, median, marker="s", color="#1b9e77", label="median", zorder=2)
    ax.set(xlabel="generation", ylabel="proxy AP", title="Search progress: proxy AP per generation")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_funnel(funnel: Mapping[str, int], *, path: str | None = None) -> Figure:
    """How many candidates reached each stage (generated → CPV → MOS → proxy), on a log scale."""
    missing = [stage for stage in FUNNEL_STAGES if stage not in funnel]
    if missing:
        raise ValueError(f"the funnel lacks {', '.join(missing)}; it needs counts for {', '.join(FUNNEL_STAGES)}")
    counts = [int(funnel[stage]) for stage in FUNNEL_STAGES]
    if min(counts) < 0:
        raise ValueError(f"funnel counts must be non-negative, got {dict(zip(FUNNEL_STAGES, counts, strict=True))}")

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for position, (stage, count, color) in enumerate(zip(FUNNEL_STAGES, counts, FUNNEL_COLORS, strict=True)):
        share = f" ({100 * count / counts[0]:.2g}% of generated)" if counts[0] and position else ""
        # A log axis cannot show 0; such a bar is drawn at 1 (its label still says 0).
        ax.bar(position, max(count, 1), color=color, label=f"{FUNNEL_LABELS[stage]}: {count}{share}")
        ax.annotate(str(count), (position, max(count, 1)), ha="center", va="bottom", fontsize="small")
    ax.set_yscale("log")
    ax.set_xticks(range(len(FUNNEL_STAGES)), [FUNNEL_LABELS[stage] for stage in FUNNEL_STAGES])
    ax.set(ylabel="candidates (log scale)", title="Filter funnel: candidates left after each stage")
    ax.set_ylim(0.5, max(counts + [1]) * 4)
    ax.legend(fontsize="small")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_pareto(front: ParetoFront | Mapping, *, path: str | None = None) -> Figure:
    """Complexity against proxy AP: every candidate faint, the Pareto front as a step line, the chosen best marked."""
    if isinstance(front, Mapping):
        front = ParetoFront.from_dict(front)
    if not front.candidates:
        raise ValueError("no proxy-trained candidates to plot")
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.scatter([p.complexity for p in front.candidates], [p.ap for p in front.candidates], s=14, color="lightgray",
               label=f"candidates ({len(front.candidates)})", zorder=1)
    if front.front:
        xs, ys = [e.point.complexity for e in front.front], [e.point.ap for e in front.front]
        # a front entry holds its AP until the next, more complex one: a step after each point
        ax.step(xs + [max(p.complexity for p in front.candidates)], ys + ys[-1:], where="post", color="#1b9e77",
                zorder=2)
        ax.scatter(xs, ys, s=24, color="#1b9e77", label=f"Pareto front ({len(xs)})", zorder=3)
    best = front.best_entry
    if best is not None:
        ax.scatter([best.point.complexity], [best.point.ap], s=160, marker="*", color="#d95f02", zorder=4,
                   label=f"best (score {best.score:.3g}): {_shorten(best.point.formula or best.point.key)}")
    ax.set(xlabel=f"complexity ({front.measure})", ylabel="proxy AP",
           title="Pareto front: proxy AP against complexity")
    ax.legend(fontsize="small")
    if path is not None:
        save_figure(figure, path)
    return figure


def best_so_far(aps: Sequence[float | None]) -> np.ndarray:
    """The best proxy AP after each evaluation (NaN until the first that succeeded)."""
    values = np.array([math.nan if ap is None else float(ap) for ap in aps], dtype=np.float64)
    return np.fmax.accumulate(values) if values.size else values


def plot_best_so_far(curves: Mapping[str, Sequence[Sequence[float | None]]], *, baseline: float | None = None,
                     path: str | None = None) -> Figure:
    """Best proxy AP reached against proxy evaluations, per method: each seed thin, the mean over seeds bold."""
    if not any(len(run) for runs in curves.values() for run in runs):
        raise ValueError("no proxy evaluations to plot")
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for (method, runs), color in zip(curves.items(), FUNNEL_COLORS * 2, strict=False):
        lines = [best_so_far(run) for run in runs if len(run)]
        for line in lines:
            ax.plot(np.arange(1, len(line) + 1), line, color=color, alpha=0.35, linewidth=1)
        length = min(len(line) for line in lines)
        with np.errstate(all="ignore"):  # a column of NaN (no success yet in any seed) stays NaN
            mean = np.nanmean(np.stack([line[:length] for line in lines]), axis=0) if length else []
        seeds = f"{len(lines)} seed{'s' * (len(lines) > 1)}"
        ax.plot(np.arange(1, length + 1), mean, color=color, linewidth=2.2, label=f"{method} ({seeds})")
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label="baseline's proxy AP (mean over seeds)")
    ax.set(xlabel="proxy evaluations", ylabel="best proxy AP so far",
           title="Search efficiency: best proxy AP against proxy evaluations")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
    if path is not None:
        save_figure(figure, path)
    return figure


def _shorten(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
