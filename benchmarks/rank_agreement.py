"""How well a cheap score ranks candidates like the trained schedule: rank correlations and what a search picks.

Scores are ``{candidate: value}`` dicts (higher is better); a statistic uses the candidates both sides
have, and says how many (``n``). Spearman's rho and Kendall's tau-b come from ``scipy.stats``; the 95%
intervals are seeded percentile bootstraps over candidates (pairs resampled together), so with the ten or
so candidates a study can afford they are wide, and say so.

Also here: the ranking successive halving would leave (all candidates at the first rung, the better half
at the next, ...), the trend score of two proxy lengths, and how often the candidate a score picks from a
pool beats the baseline at the trained schedule.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import kendalltau, spearmanr

RESAMPLES = 2000


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Rank agreement of a score with the trained APs over ``n`` candidates (nan when n < 3)."""

    n: int
    spearman: float
    kendall: float
    kendall_low: float  # 95% bootstrap interval of tau
    kendall_high: float


def common(*scores: Mapping[str, float]) -> list[str]:
    """The candidates every score has a finite value for, sorted."""
    names = set.intersection(*(set(s) for s in scores)) if scores else set()
    return sorted(n for n in names if all(s[n] is not None and math.isfinite(s[n]) for s in scores))


def _tau(a, b) -> float:
    return kendalltau(a, b).statistic


def _interval(data: tuple, statistic, seed: int) -> tuple[float, float]:
    """95% percentile interval of ``statistic`` over resamples of the candidates (rows resampled together).

    Resamples in which a column is constant have no tau (nan) and are left out; ``scipy.stats.bootstrap``
    would turn the whole interval into nan, which with five candidates happens in about one run in three.
    """
    if len(data[0]) < 4:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(data[0]), size=(RESAMPLES, len(data[0])))
    values = np.array([statistic(*(column[r] for column in data)) for r in rows])
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def agreement(scores: Mapping[str, float], trained: Mapping[str, float], *, seed: int = 0) -> Agreement:
    """Spearman's rho and Kendall's tau (with its bootstrap interval) of ``scores`` against ``trained``."""
    names = common(scores, trained)
    if len(names) < 3:
        return Agreement(len(names), math.nan, math.nan, math.nan, math.nan)
    a, b = np.array([scores[n] for n in names]), np.array([trained[n] for n in names])
    low, high = _interval((a, b), _tau, seed)
    return Agreement(len(names), float(spearmanr(a, b).statistic), float(_tau(a, b)), low, high)


def kendall_gain(base: Mapping[str, float], variant: Mapping[str, float], trained: Mapping[str, float], *,
                 seed: int = 0) -> tuple[int, float, float, float]:
    """(n, tau(variant) - tau(base), 95% interval) against ``trained`` on the candidates all three have."""
    names = common(base, variant, trained)
    if len(names) < 3:
        return len(names), math.nan, math.nan, math.nan
    columns = tuple(np.array([s[n] for n in names]) for s in (base, variant, trained))

    def gain(b, v, t):
        return _tau(v, t) - _tau(b, t)

    low, high = _interval(columns, gain, seed)
    return len(names), float(gain(*columns)), low, high


def same_order(a: Mapping[str, float], b: Mapping[str, float], margin: float = 0.0) -> bool:
    """True when ``b`` orders every pair of their common candidates that ``a`` separates by more than ``margin``
    as ``a`` does (with no margin: every pair, ties included)."""
    names = common(a, b)
    if margin > 0:
        return all((a[x] > a[y]) == (b[x] > b[y]) for x, y in itertools.combinations(names, 2)
                   if abs(a[x] - a[y]) > margin)
    return all((a[x] > a[y]) == (b[x] > b[y]) and (a[x] == a[y]) == (b[x] == b[y])
               for x, y in itertools.combinations(names, 2))


def trend(short: Mapping[str, float], long: Mapping[str, float]) -> dict[str, float]:
    """AP extrapolated one step further: ``long + (long - short)``, for the candidates both have."""
    return {n: 2 * long[n] - short[n] for n in common(short, long)}


def best_of(*scores: Mapping[str, float]) -> dict[str, float]:
    """The best value of each candidate over ``scores`` (those every score has)."""
    return {n: max(s[n] for s in scores) for n in common(*scores)}


def successive_halving(rungs: Sequence[Mapping[str, float]], costs: Sequence[Mapping[str, float]], *,
                       eta: int = 2) -> tuple[dict[str, float], float] | None:
    """(scores, total cost) of successive halving over ``rungs`` (APs per rung, budgets growing by ``eta``).

    Every candidate of ``rungs[0]`` runs the first rung; the best ``ceil(n / eta)`` of a rung run the next.
    A candidate's score orders by the last rung it reached, then by its AP there (``rung + AP``; APs are in
    [0, 1]). None when a candidate lacks the result of a rung it reached.
    """
    alive = common(rungs[0])
    scores: dict[str, float] = {}
    total = 0.0
    for rung, (aps, cost) in enumerate(zip(rungs, costs, strict=True)):
        if any(n not in aps or aps[n] is None or n not in cost for n in alive):
            return None
        total += sum(cost[n] for n in alive)
        for n in alive:
            scores[n] = rung + aps[n]
        if rung + 1 < len(rungs):
            alive = sorted(alive, key=lambda n: (-aps[n], n))[: math.ceil(len(alive) / eta)]
    return scores, total


@dataclasses.dataclass(frozen=True)
class Picks:
    """What a search that picks by a score would get from pools of ``pool`` candidates."""

    pools: int  # pools evaluated
    pool: int  # candidates per pool
    beats_baseline: float  # share of pools whose pick trains better than the baseline
    mean_trained: float  # mean trained AP of the pick
    mean_regret: float  # mean (best trained AP in the pool - the pick's)


def picks(scores: Mapping[str, float], trained: Mapping[str, float], baseline: float, pool: int, *,
          exclude: tuple[str, ...] = (), seed: int = 0, most: int = 5000) -> Picks | None:
    """The score's pick (its highest) in every pool of ``pool`` candidates (a seeded sample of ``most`` pools
    when there are more), against the baseline's trained AP; None without candidates."""
    names = [n for n in common(scores, trained) if n not in exclude]
    if not names or not math.isfinite(baseline):
        return None
    size = min(pool, len(names))
    if math.comb(len(names), size) <= most:
        pools = list(itertools.combinations(names, size))
    else:
        rng = random.Random(seed)
        pools = [tuple(rng.sample(names, size)) for _ in range(most)]
    chosen = [max(p, key=lambda n: (scores[n], n)) for p in pools]
    return Picks(
        pools=len(pools), pool=size,
        beats_baseline=float(np.mean([trained[n] > baseline for n in chosen])),
        mean_trained=float(np.mean([trained[n] for n in chosen])),
        mean_regret=float(np.mean([max(trained[n] for n in p) - trained[c] for p, c in zip(pools, chosen,
                                                                                            strict=True)])))


def seeds_needed(spread: float, difference: float, z: float = 2.0) -> int | None:
    """Seeds per loss for a mean difference of ``difference`` to be ``z`` standard errors, given the
    per-seed standard deviation ``spread`` of one loss: ``ceil(2 (z spread / difference)^2)``, at least 1."""
    if not (math.isfinite(spread) and math.isfinite(difference)) or difference == 0:
        return None
    return max(1, math.ceil(2 * (z * spread / abs(difference)) ** 2))
