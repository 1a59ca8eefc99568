"""Softmax-form losses for every number of classes: the reduction to a few scalar variables.

Every operator of the ``softmax`` form treats the classes alike (elementwise operators,
softmax over the class axis, dot as the sum over it), and w is one value per sample. So at
a one-hot label the loss depends on the classes only through a few *special* classes —
the target (y = 1) and, for a negative's property, the varied non-target logit (y = 0) —
and through sums over all *other* classes (y = 0). This module writes the loss in those
terms, for every number of classes at once (two or more, background included):

* a softmax divides by the specials' exponentials plus the others' mass. Written in the
  log of that mass, ρ (any real: it is the log-sum-exp of the other logits), every special
  entry is an S-curve, e.g. softmax_t = σ(a_t − ρ) with one special class, and log softmax
  is the matching −softplus, stable for intervals; an other class's entry is its share q
  of the others' mass (q ∈ (0, 1], the shares summing to 1) times the others' total share.
  Where the softmax argument is the same for all other classes (a label-only vector such
  as softmax(y)), the others' mass is n·e^(a_o), n their number.
* dot(a, b) is the specials' terms plus Σ over the others of a_o·b_o: n·a_o·b_o when that
  is the same for every other class; the others' total softmax share when it is linear in
  q; else a sum kept whole (``OthersSum``) and differentiated term by term.

After differentiation in the varied logit, each remaining sum over the others is replaced
by a bounded variable that holds for every number of classes and every other logit:
Σ q_o·K(x_o) — a convex combination, as the shares sum to 1 — lies in the hull of K; any
other sum lies in n·[min, max] of its term (with n ≥ 1, or n ≥ 0). A sign proved on the
resulting box (ρ, n and the hull variables free, w over [0, 1]) holds for every number of
classes, every value of the other logits and every IoU: a reduction that covers COCO's 81
classes (80 and background) as well as two. Losses outside it (two different softmax
arguments that vary with the other logits, or a softmax of a dot) raise
``OutsideReduction``, and only their sampled verdict (on three classes) stands.
"""

from __future__ import annotations

import dataclasses
import math

import sympy

from symbolic.cpv.intervals import IntervalUnsupported, interval_bounds
from symbolic.cpv.substitution import substitute
from symbolic.forms import w as W
from symbolic.forms import x as X
from symbolic.forms import y as Y
from symbolic.functions import Sigmoid, Softplus
from symbolic.vector_ops import Dot, Softmax

X_T = sympy.Symbol("x_t", real=True)  # the target's logit
X_J = sympy.Symbol("x_j", real=True)  # a non-target logit (varied for the negative's property)
X_O = sympy.Symbol("x_o", real=True)  # a generic other class's logit (bound inside OthersSum)
Q_O = sympy.Symbol("q_o", positive=True)  # its share of the others' softmax mass, in (0, 1]
RHO = sympy.Symbol("rho", real=True)  # log of the others' softmax mass (log-sum-exp of their arguments)
N = sympy.Symbol("n", nonnegative=True)  # how many other classes
INF = math.inf


class OutsideReduction(ValueError):
    """The loss is not of a shape the reduction covers."""


class OthersSum(sympy.Function):
    """Σ over the other classes of an entry written in the generic other class's symbols (x_o, q_o)."""

    nargs = 1

    @classmethod
    def eval(cls, term):
        if term == 0:
            return sympy.S.Zero
        return None

    def _eval_derivative(self, s):
        return OthersSum(sympy.diff(self.args[0], s))

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real


@dataclasses.dataclass(frozen=True)
class Special:
    """A class with its own logit symbol and label."""

    logit: sympy.Symbol
    label: int


@dataclasses.dataclass(frozen=True)
class Entries:
    """A subexpression's value per special class and for a generic other class, or one value (a scalar)."""

    special: tuple[sympy.Expr, ...]
    other: sympy.Expr
    scalar: bool = False


def _lse(terms: list[sympy.Expr]) -> sympy.Expr:
    """log Σ e^(term), written with softplus so that intervals stay tight (a term that may be −∞ last)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + Softplus(term - total)
    return total


class _Expander:
    def __init__(self, specials: tuple[Special, ...]):
        self.specials = specials
        self.others_mass_of: sympy.Expr | None = None  # the one softmax argument whose others vary
        self.memo: dict[sympy.Expr, Entries] = {}

    def _labelled(self, entries: Entries) -> Entries:
        """Each class's label substituted, constants the formula leaves undefined taking the guarded value."""
        if entries.scalar:
            return entries
        special = tuple(substitute(e, {Y: s.label}) if e.has(Y) else e for e, s in zip(entries.special,
                                                                                         self.specials, strict=True))
        other = substitute(entries.other, {Y: 0}) if entries.other.has(Y) else entries.other
        return Entries(special, other)

    def expand(self, node: sympy.Expr) -> Entries:
        if node not in self.memo:
            self.memo[node] = self._expand(node)
        return self.memo[node]

    def _expand(self, node: sympy.Expr) -> Entries:
        if node == X:
            return Entries(tuple(s.logit for s in self.specials), X_O)
        if node in (Y, W):
            return Entries((node,) * len(self.specials), node)
        if not node.args:
            return Entries((node,) * len(self.specials), node, scalar=True)
        if isinstance(node, sympy.log) and isinstance(node.args[0], Softmax):
            return self._softmax(self._labelled(self.expand(node.args[0].args[0])), log=True)
        if isinstance(node, Softmax):
            return self._softmax(self._labelled(self.expand(node.args[0])), log=False)
        if isinstance(node, Dot):
            return self._dot(*(self._labelled(self.expand(arg)) for arg in node.args))
        args = [self.expand(arg) for arg in node.args]
        if all(a.scalar for a in args):
            value = node.func(*(a.other for a in args))
            return Entries((value,) * len(self.specials), value, scalar=True)
        special = tuple(node.func(*(a.special[k] for a in args)) for k in range(len(self.specials)))
        return Entries(special, node.func(*(a.other for a in args)))

    def _others_log_mass(self, argument: Entries) -> tuple[sympy.Expr, bool]:
        """(log of the others' mass e^(a_o) summed, whether it varies with the other logits)."""
        if not argument.other.has(X_O, Q_O):
            return sympy.log(N) + argument.other, False
        if argument.other.has(Q_O) or any(isinstance(n, OthersSum) for n in sympy.preorder_traversal(argument.other)):
            raise OutsideReduction("a softmax of a value that depends on a sum over classes")
        if self.others_mass_of is not None and self.others_mass_of != argument.other:
            raise OutsideReduction("two different softmax arguments vary with the other logits")
        self.others_mass_of = argument.other
        return RHO, True

    def _softmax(self, a: Entries, log: bool) -> Entries:
        if a.scalar:
            raise OutsideReduction("softmax of one value per sample")
        mass, varies = self._others_log_mass(a)
        special = []
        for k, a_k in enumerate(a.special):
            rest = _lse([a_c - a_k for c, a_c in enumerate(a.special) if c != k] + [mass - a_k])
            special.append(-Softplus(rest) if log else Sigmoid(-rest))
        if log:
            others_log_share = -Softplus(_lse(list(a.special)) - mass)
            other = (sympy.log(Q_O) if varies else -sympy.log(N)) + others_log_share
        else:
            # the others' total share as 1 − Σ (specials' shares): terms that sum the softmax cancel exactly
            others_share = 1 - sympy.Add(*special)
            other = Q_O * others_share if varies else others_share / N
        return Entries(tuple(special), other)

    def _dot(self, a: Entries, b: Entries) -> Entries:
        if a.scalar and b.scalar:
            raise OutsideReduction("dot of two per-sample values")
        # distributed, so that a class's share counted among the specials and in "1 − Σ shares" cancels
        total = sympy.expand_mul(sympy.Add(*(p * q for p, q in zip(a.special, b.special, strict=True)))
                                 + others_sum(a.other * b.other))
        return Entries((total,) * len(self.specials), total, scalar=True)


def others_sum(term: sympy.Expr) -> sympy.Expr:
    """Σ over the other classes of ``term``: exact where it can be, else an ``OthersSum``."""
    if term == 0:
        return sympy.S.Zero
    if not term.has(X_O, Q_O):
        return N * term
    share = sympy.diff(term, Q_O)
    if not share.has(Q_O, X_O) and sympy.expand(term - Q_O * share) == 0:
        return share  # the shares q_o sum to 1 over the others
    return OthersSum(term)


@dataclasses.dataclass(frozen=True)
class Reduced:
    """The loss as one scalar expression in the specials' logits, w, ρ, n and ``OthersSum`` terms."""

    expr: sympy.Expr
    others_argument: sympy.Expr | None  # a_o(x_o): ρ = log Σ_o e^(a_o) over the other classes, if ρ appears


def reduce_loss(expr: sympy.Expr, specials: tuple[Special, ...]) -> Reduced:
    """``expr`` at a one-hot label, reduced to the special classes and sums over the others (any C)."""
    expander = _Expander(specials)
    entries = expander.expand(expr)
    if not entries.scalar:
        raise OutsideReduction("the loss is a vector over classes")
    return Reduced(entries.other, expander.others_mass_of)


@dataclasses.dataclass(frozen=True)
class Relaxed:
    """An expression with every sum over the other classes replaced by a bounded variable."""

    expr: sympy.Expr
    box: dict[sympy.Symbol, tuple[float, float]]  # the relaxation variables' ranges
    notes: tuple[str, ...]


def _convex_part(term: sympy.Expr) -> sympy.Expr | None:
    """K when ``term`` = q_o·K: Σ_o q_o·K is then a convex combination of values of K."""
    weight = sympy.powsimp(term / Q_O)
    return weight if not weight.has(1 / Q_O) and sympy.expand(term - Q_O * weight) == 0 else None


def relax(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]], n_min: float) -> Relaxed:
    """``expr`` with each ``OthersSum`` bounded for every number of classes (n ≥ ``n_min``) and other logits."""
    replacements, ranges, notes = {}, {}, []
    inner_box = {**box, X_O: (-INF, INF), Q_O: (0.0, 1.0)}
    for node in sorted(expr.atoms(OthersSum), key=sympy.default_sort_key):
        parts = []
        for term in sympy.Add.make_args(sympy.expand(node.args[0], deep=False)):
            if not term.has(X_O, Q_O):
                parts.append(N * term)
                continue
            weight = _convex_part(term)
            bounded = term if weight is None else weight
            try:
                lo, hi = interval_bounds(bounded, {v: inner_box[v] for v in bounded.free_symbols})
            except (IntervalUnsupported, KeyError) as error:
                raise OutsideReduction(f"no bound on a sum over the other classes: {error}") from None
            k = len(ranges)
            if weight is not None:
                if not (math.isfinite(lo) and math.isfinite(hi)):
                    raise OutsideReduction("a share-weighted sum over the other classes is unbounded")
                symbol = sympy.Symbol(f"mu_{k}", real=True, finite=True)
                notes.append(f"mu_{k}: a share-weighted mean over the other classes, in [{lo:.3g}, {hi:.3g}]")
            else:
                lo = lo * n_min if lo >= 0 else -INF
                hi = hi * n_min if hi <= 0 else INF
                symbol = sympy.Symbol(f"s_{k}", real=True)
                notes.append(f"s_{k}: a sum over the other classes, in [{lo:.3g}, {hi:.3g}] for any number of them")
            ranges[symbol] = (lo, hi)
            parts.append(symbol)
        replacements[node] = sympy.Add(*parts)
    return Relaxed(expr.xreplace(replacements), ranges, tuple(notes))
