"""The final evaluation across seeds: each row's mean and spread, its difference to the baseline, and whether
that difference is beyond the seed spread, so whether more seeds could settle it.

A short schedule can reverse at a longer one, and the seed alone moves AP by points (focal + GIoU at the demo's
1000-step final: 12.8 ± 2.0 AP over two seeds, RESULTS.md "Search, demo preset"), so a single pair of trainings
cannot say whether a found loss beats the baseline. The search trains every final row with ``final_seeds`` seeds
(``seed``, ``seed + 1``, ...) and, while a found row's difference to the baseline is within the seed spread,
one more seed of both, up to ``final_max_seeds`` (:func:`seeds_wanted`).

The rule (:class:`Comparison`): the difference Δ is the mean over the seeds both rows trained of found AP −
baseline AP (same seed: same initialization and data order, so paired); the seed spread is the sum of the two
rows' standard deviations over those seeds (ddof 1). Δ beyond the spread is ``better`` or ``worse``; else
``within the seed spread``; one seed cannot say (``one seed``). The paired t-test's p-value (scipy) is
reported beside it, not used for the verdict: at two or three seeds it has almost no power, while the spread
rule says plainly whether the seeds overlap. ``benchmarks.loss_table`` applies the same rule.

Each training is one entry of the search state's ``final``: key ``ROW`` for the first seed (its model in
``final/ROW``, which ``autoloss evaluate`` reads) and ``ROW-seedS`` for seed S after it; :func:`final_table`
groups them into rows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

from detection.detectors import get_detector

PAPER_COLUMNS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")  # CSE-Autoloss, Tables 2-4
BASELINE = "baseline"
VERDICTS = ("better", "worse", "within the seed spread", "one seed", "not comparable")


def training_key(row: str, seed: int, first_seed: int) -> str:
    """The state key of ``row``'s final training with ``seed`` (the row's name for the first seed)."""
    return row if seed == first_seed else f"{row}-seed{seed}"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A found row against the baseline over the seeds both trained (fractions of AP, not percent)."""

    seeds: tuple[int, ...]
    delta: float | None  # mean paired AP difference, found - baseline
    spread: float | None  # sum of the two rows' standard deviations over those seeds (None below two seeds)
    p_value: float | None  # paired t-test, two-sided (None below two seeds or with identical differences)
    verdict: str

    @property
    def settled(self) -> bool:
        """Whether the difference is beyond the seed spread (more seeds are not needed to say which is better)."""
        return self.verdict in ("better", "worse")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {**dataclasses.asdict(self), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, values: dict) -> Comparison:
        """The comparison of :meth:`to_dict`'s output."""
        return cls(**{**values, "seeds": tuple(values["seeds"])})

    def text(self) -> str:
        """One line: Δ, spread, seeds, p-value and verdict, in AP points."""
        if self.delta is None:
            return "not comparable (no seed where both trained)"
        n = len(self.seeds)
        parts = [f"{100 * self.delta:+.1f} AP over {n} seed{'s' * (n != 1)}"]
        if self.spread is not None:
            parts.append(f"seed spread {100 * self.spread:.1f}")
        if self.p_value is not None:
            parts.append(f"paired t-test p = {self.p_value:.2f}")
        return f"{', '.join(parts)}: {self.verdict}"


def compare(found: dict[int, float], baseline: dict[int, float]) -> Comparison:
    """The comparison of ``found`` with ``baseline`` ({seed: AP}) over their common seeds."""
    seeds = tuple(sorted(set(found) & set(baseline)))
    if not seeds:
        return Comparison((), None, None, None, "not comparable")
    a, b = np.array([found[s] for s in seeds]), np.array([baseline[s] for s in seeds])
    delta = float(np.mean(a - b))
    if len(seeds) < 2:
        return Comparison(seeds, delta, None, None, "one seed")
    spread = float(np.std(a, ddof=1) + np.std(b, ddof=1))
    differences = a - b
    p_value = None
    if np.ptp(differences) > 1e-12:  # identical differences: the t statistic is undefined
        p_value = float(stats.ttest_rel(a, b).pvalue)
    verdict = ("better" if delta > 0 else "worse") if abs(delta) > spread else "within the seed spread"
    return Comparison(seeds, delta, spread, p_value, verdict)


def schedule_caveat(detector: str, steps: int) -> str | None:
    """A warning when the final schedule is shorter than the detector's default one (None when it is not)."""
    default = get_detector(detector)
    if steps >= default.default_steps:
        return None
    return (f"The final schedule ({steps} steps) is shorter than the {detector} default ({default.default_steps} "
            f"steps at learning rate {default.default_optimizer.learning_rate:g}); a verdict at a short schedule can "
            "reverse at the default one (benchmarks/RESULTS.md, \"Proxy fidelity\"). Search with `--final-steps "
            f"{default.default_steps} --final-learning-rate {default.default_optimizer.learning_rate:g}`, or train "
            "the winner and the baseline with `autoloss train` at the default schedule, before relying on it.")


def final_table(trainings: dict[str, dict]) -> dict[str, dict]:
    """The final rows of the state's trainings: per row its losses, the mean (``metrics``) and standard deviation
    (``std``) of each AP column over the seeds that trained, AP per seed, failures, and for a found row its
    difference to the baseline per column (``delta``, paired) and the :class:`Comparison` (``comparison``)."""
    grouped: dict[str, list[dict]] = {}
    for key, entry in trainings.items():
        grouped.setdefault(entry.get("row", key), []).append(entry)
    by_seed = {name: {e.get("seed", 0): e.get("metrics") or {} for e in entries if e.get("status") == "ok"}
               for name, entries in grouped.items()}
    reference = by_seed.get(BASELINE, {})
    table = {}
    for name in sorted(grouped, key=lambda n: (n != BASELINE, n)):
        row = table[name] = _row(grouped[name], by_seed[name])
        if name == BASELINE:
            row.update(delta=None, comparison=None)
            continue
        found = by_seed[name]
        common = sorted(set(found) & set(reference))
        row["delta"] = {c: _mean_difference([found[s].get(c) for s in common], [reference[s].get(c) for s in common])
                        for c in PAPER_COLUMNS}
        ap = {s: found[s]["AP"] for s in common if _finite(found[s].get("AP")) and _finite(reference[s].get("AP"))}
        row["comparison"] = compare(ap, {s: reference[s]["AP"] for s in ap}).to_dict()
    return table


def trained_seeds(table: dict[str, dict]) -> list[int]:
    """Every seed a row of :func:`final_table` trained (finished or failed), in order."""
    return sorted({int(seed) for row in table.values() for seed in (*row.get("seeds", {}), *row.get("failed", {}))})


def seeds_wanted(table: dict[str, dict], rows, first_seed: int, final_seeds: int, max_seeds: int) -> dict[str, list]:
    """{row: seeds to train}: ``final_seeds`` each; a found row whose trained seeds all finished with a difference
    within the seed spread gets the next seed (the baseline too), up to ``max_seeds``."""
    count = {row: final_seeds for row in rows}
    baseline = table.get(BASELINE)
    baseline_trained = 0 if baseline is None else len(baseline["seeds"]) + len(baseline["failed"])
    for row in rows:
        entry = table.get(row)
        if row == BASELINE or entry is None:
            continue
        trained = len(entry["seeds"]) + len(entry["failed"])
        comparison = entry.get("comparison") or {}
        unsettled = comparison.get("verdict") in ("within the seed spread", "one seed")
        count[row] = max(final_seeds, trained)  # never fewer than it has
        if unsettled and min(trained, baseline_trained) >= count[row] and trained < max_seeds:
            count[row] = trained + 1
    if BASELINE in count:
        count[BASELINE] = max(count.values())
    return {row: [first_seed + k for k in range(n)] for row, n in count.items()}


def round_plan(trainings: dict[str, dict], rows, first_seed: int, final_seeds: int,
               max_seeds: int) -> dict[str, tuple[str, int]]:
    """{state key: (row, seed)} of every training the next round wants, given the trainings so far (those not yet
    in ``trainings`` are what it must train; none means the comparison is done)."""
    wanted = seeds_wanted(final_table(trainings), rows, first_seed, final_seeds, max_seeds)
    return {training_key(row, seed, first_seed): (row, seed) for row, seeds in wanted.items() for seed in seeds}


def _row(entries: list[dict], by_seed: dict[int, dict]) -> dict:
    """One row of :func:`final_table` from its trainings and the metrics of those that finished, by seed."""
    failed = [e for e in entries if e.get("status") != "ok"]
    metrics = {c: _mean([m.get(c) for m in by_seed.values()]) for c in PAPER_COLUMNS}
    std = {c: _std([m.get(c) for m in by_seed.values()]) for c in PAPER_COLUMNS}
    first = min(entries, key=lambda e: e.get("seed", 0))
    return {
        "status": "ok" if by_seed else first.get("status"),
        "reason": None if by_seed else first.get("reason"),
        "losses": first.get("losses"),
        "metrics": metrics, "std": std,
        "seeds": {str(seed): m.get("AP") for seed, m in sorted(by_seed.items())},
        "failed": {str(e.get("seed", 0)): e.get("reason") for e in failed},
        "seconds": sum(e.get("seconds") or 0.0 for e in entries),
        "out_dir": first.get("out_dir"),
    }


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _mean(values) -> float | None:
    values = [v for v in values if _finite(v)]
    return float(np.mean(values)) if values else None


def _std(values) -> float | None:
    values = [v for v in values if _finite(v)]
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def _mean_difference(values, references) -> float | None:
    pairs = [(v, r) for v, r in zip(values, references, strict=True) if _finite(v) and _finite(r)]
    return float(np.mean([v - r for v, r in pairs])) if pairs else None
