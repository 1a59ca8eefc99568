"""The Pareto hall of fame: complexity against proxy AP, PySR's score and choice of "best", and the complexity
penalty of parent selection.

A hall of fame ranked by AP alone hides the trade a user of an expression search wants to see: how much AP each
extra node buys. As in PySR, the candidates that no simpler candidate matches in AP form the *front*; each front
entry gets a *score*, the negated slope of the log-loss against complexity, and one entry is chosen as *best*.

**Complexity** (``COMPLEXITY_MEASURES``) is the tree size (``size``: every operator, input and constant counts 1,
PySR's default) or a per-operator weight (``weighted``, :data:`OPERATOR_WEIGHTS`; PySR's ``complexity_of_operators``
does the same): arithmetic and the class-axis ``dot`` every loss needs count 1; the nonlinearities of the standard
losses (log, exp, σ, softmax, softplus, tanh, relu, |x|, √x, division: cross-entropy, focal, IoU losses are made of
them) count 2; the search space's exotic curves (the scaled S-curves gd, alf, erf, erfc, and sin, cos, which are not
monotone) count 3, because a reader must work harder to see what they do to the gradient. Inputs and constants
count 1.

**Loss.** PySR's score needs a loss that is positive and falls as the candidate gets better; here it is
``1 / AP``, so ``score = −Δlog(1/AP)/Δcomplexity = Δlog(AP)/Δcomplexity``: the relative AP gain per unit of
complexity. Why not ``1 − AP``: proxy APs are small (a short training of a small detector: a few percent to a few
tens of percent), and there ``1 − AP`` barely moves, so PySR's "within 1.5× of the best loss" would admit the whole
front whenever the best AP is below 1/3 and "best" would no longer look at accuracy at all. With ``1/AP`` the
window reads "AP at least 2/3 of the best AP", which means the same at every AP scale. A candidate with AP = 0 (the
detector learned nothing) has an infinite loss: it is kept off the front (it trades no accuracy for its
simplicity) but stays among the plotted candidates; a front therefore never holds an infinite or undefined score.

**Front.** A candidate is on the front when every simpler candidate (strictly lower complexity) has a strictly
lower AP. Of candidates with equal complexity only the one with the highest AP can be on it (ties: the smaller tree,
then the smaller key), so consecutive front entries differ in complexity and the score is always defined; an entry
with the same AP as a simpler one is dominated. As in PySR, the simplest front entry scores 0.

**Best.** PySR's default ``model_selection="best"`` "selects the candidate model with the highest score among
expressions with a loss better than at least 1.5x the most accurate model" (PySRRegressor docstring, since PySR
0.10, MilesCranmer/PySR#177; PySR's ``idx_model_selection``: ``threshold = 1.5 * equations["loss"].min()``, then
the highest score among rows with ``loss <= threshold``, the first, i.e. simplest, on a tie). PySR's score is 0
for its simplest entry and ``-log(loss / previous loss) / (complexity - previous complexity)`` for the others.
Here: the highest score among front entries with ``1/AP <= 1.5 / max AP``, that is ``AP >= max AP / 1.5``; on a
tie the simpler entry.

**Penalty.** Parent selection (the best P proxy-trained candidates breed) can rank by ``AP − penalty·complexity``
instead of AP (in the spirit of PySR's ``parsimony``, which punishes complexity in its selection); ties go to the
smaller tree, then the key. A penalty of 0 gives exactly the AP ranking of the hall of fame.

Everything but :func:`points_of` and :func:`rank_parents` works on :class:`Point`, which holds only what these
rules need; those two read the search's candidate records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from symbolic.tree import Tree, tree_size

if TYPE_CHECKING:
    from autoloss.records import CandidateRecord

COMPLEXITY_MEASURES = ("size", "weighted")
BEST_LOSS_FACTOR = 1.5  # PySR's model_selection="best": loss <= 1.5 * the smallest loss
LEAF_WEIGHT = 1
_ARITHMETIC = {"neg": 1, "add": 1, "sub": 1, "mul": 1, "dot": 1}
_STANDARD = {name: 2 for name in ("div", "log", "exp", "sqrt", "abs", "relu", "sigmoid", "softmax", "softplus", "tanh")}
_EXOTIC = {name: 3 for name in ("gd_s", "alf_s", "erf_s", "erfc_s", "sin", "cos")}
OPERATOR_WEIGHTS: dict[str, int] = {**_ARITHMETIC, **_STANDARD, **_EXOTIC}  # every operator of symbolic.operators


@dataclasses.dataclass(frozen=True)
class Point:
    """One proxy-trained candidate as the front sees it: key, complexity, proxy AP (a fraction), tree size, formula."""

    key: str
    complexity: float
    ap: float
    size: int
    formula: str = ""

    def to_dict(self) -> dict:
        """The point as a JSON-ready dict."""
        return {
            "key": self.key,
            "complexity": self.complexity,
            "proxy_ap": self.ap,
            "size": self.size,
            "formula": self.formula,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Point:
        """The point of a :meth:`to_dict` dict."""
        return cls(data["key"], data["complexity"], data["proxy_ap"], data["size"], data.get("formula", ""))


@dataclasses.dataclass(frozen=True)
class FrontEntry:
    """A front entry: its point and its score (Δlog AP / Δcomplexity to the previous entry; 0 for the first)."""

    point: Point
    score: float

    def to_dict(self) -> dict:
        """The entry as a JSON-ready dict (the point's fields and ``score``)."""
        return {**self.point.to_dict(), "score": self.score}


@dataclasses.dataclass(frozen=True)
class ParetoFront:
    """A branch's Pareto hall of fame: every candidate, the front (simplest first) and the key of the chosen best."""

    measure: str
    candidates: tuple[Point, ...]
    front: tuple[FrontEntry, ...]
    best: str | None

    @property
    def best_entry(self) -> FrontEntry | None:
        """The chosen front entry, or None for an empty front."""
        return next((entry for entry in self.front if entry.point.key == self.best), None)

    def to_dict(self) -> dict:
        """The front as a JSON-ready dict (every number finite)."""
        return {
            "complexity_measure": self.measure,
            "best": self.best,
            "front": [entry.to_dict() for entry in self.front],
            "candidates": [point.to_dict() for point in self.candidates],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ParetoFront:
        """The front of a :meth:`to_dict` dict."""
        front = tuple(FrontEntry(Point.from_dict(entry), entry["score"]) for entry in data["front"])
        return cls(
            data["complexity_measure"], tuple(Point.from_dict(p) for p in data["candidates"]), front, data["best"]
        )


def tree_complexity(tree: Tree, measure: str = "size") -> float:
    """The complexity of a light tree: its size, or the sum of :data:`OPERATOR_WEIGHTS` over its nodes."""
    if measure == "size":
        return tree_size(tree)
    if measure != "weighted":
        raise ValueError(f"unknown complexity measure {measure!r}; choose one of {', '.join(COMPLEXITY_MEASURES)}")
    if isinstance(tree, tuple):
        return OPERATOR_WEIGHTS[tree[0]] + sum(tree_complexity(child, measure) for child in tree[1:])
    return LEAF_WEIGHT


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no simpler point matches in AP, simplest first (one per complexity; AP = 0 left out)."""
    ranked = sorted(
        (p for p in points if math.isfinite(p.ap) and p.ap > 0), key=lambda p: (p.complexity, -p.ap, p.size, p.key)
    )
    front: list[Point] = []
    for point in ranked:
        if not front or (point.complexity > front[-1].complexity and point.ap > front[-1].ap):
            front.append(point)
    return front


def scored(front: Sequence[Point]) -> list[FrontEntry]:
    """PySR's score of each front entry: −Δlog(loss)/Δcomplexity with loss = 1/AP, 0 for the simplest."""
    entries = []
    for k, point in enumerate(front):
        if k == 0:
            entries.append(FrontEntry(point, 0.0))
            continue
        previous = front[k - 1]
        if not (point.complexity > previous.complexity and point.ap > previous.ap > 0):
            raise ValueError(
                f"not a front: {point.key} (complexity {point.complexity}, AP {point.ap}) follows "
                f"{previous.key} (complexity {previous.complexity}, AP {previous.ap}); use pareto_front"
            )
        entries.append(FrontEntry(point, math.log(point.ap / previous.ap) / (point.complexity - previous.complexity)))
    return entries


def choose_best(entries: Sequence[FrontEntry]) -> FrontEntry | None:
    """PySR's ``model_selection="best"``: the highest score among entries with AP >= max AP / 1.5 (simplest on ties)."""
    if not entries:
        return None
    threshold = max(entry.point.ap for entry in entries) / BEST_LOSS_FACTOR  # 1/AP <= 1.5 · min(1/AP)
    eligible = [entry for entry in entries if entry.point.ap >= threshold]
    return max(eligible, key=lambda entry: (entry.score, -entry.point.complexity))


def pareto_hall_of_fame(points: Iterable[Point], measure: str = "size") -> ParetoFront:
    """The :class:`ParetoFront` of ``points`` (their complexities measured by ``measure``)."""
    candidates = tuple(sorted(points, key=lambda p: (p.complexity, -p.ap, p.size, p.key)))
    front = scored(pareto_front(candidates))
    best = choose_best(front)
    return ParetoFront(measure, candidates, tuple(front), None if best is None else best.point.key)


def penalized_order(points: Iterable[Point], penalty: float) -> list[Point]:
    """``points`` by ``AP − penalty·complexity``, highest first, then smaller trees, then key."""
    if not (isinstance(penalty, int | float) and math.isfinite(penalty) and penalty >= 0):
        raise ValueError(f"the complexity penalty must be a finite number >= 0, got {penalty!r}")
    return sorted(points, key=lambda p: (-(p.ap - penalty * p.complexity), p.size, p.key))


# --- the search's candidate records -------------------------------------------------------------------------------


def points_of(records: Iterable[CandidateRecord], *, measure: str = "size") -> list[Point]:
    """The points of the search's proxy-trained records with a finite AP."""
    points = []
    for record in records:
        proxy = record.proxy
        if proxy is None or proxy.status != "ok" or proxy.ap is None or not math.isfinite(proxy.ap):
            continue
        complexity = record.size if measure == "size" else tree_complexity(record.candidate.tree, measure)
        points.append(Point(record.key, complexity, proxy.ap, record.size, record.infix))
    return points


def rank_parents(records: Sequence[CandidateRecord], count: int, *, penalty: float,
                 measure: str = "size") -> list[CandidateRecord]:
    """The ``count`` records that breed: by proxy AP less ``penalty`` per unit of complexity (see the module)."""
    by_key = {record.key: record for record in records}
    measure = "size" if penalty == 0 else measure  # no penalty: the complexity does not matter, so parse nothing
    return [by_key[p.key] for p in penalized_order(points_of(records, measure=measure), penalty)][:count]
