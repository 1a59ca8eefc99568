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

A softmax whose argument is free of every logit (softmax(y), softmax(w·y)) is written
rational in n, e^(a_k)/(Σ_c e^(a_c) + n·e^(a_o)), so that a cancellation as n → ∞ stays exact.

After differentiation in the varied logit (the shares q_o and the others' logits do not
depend on it), each remaining sum over the n ≥ 1 other classes is rewritten so that a sign
proved on the resulting box holds for every number of classes and every other logit:

* **per other class**, where the derivative D is affine in the sum (it is reached through
  sums and products only): D = A + c·Σ_o q_o·K(o) = Σ_o q_o·(A + c·K(o)), as the shares sum
  to 1, so D has a sign if the bracket has it for every single other class o. The bracket
  is written in o's own softmax argument a_o and d_o = −log q_o ≥ 0 with ρ = a_o + d_o
  (exact: q_o = e^(a_o − ρ)), x_o = a_o where the argument is x_o itself, and a_o over the
  enclosure of a(x_o) on all real x_o: the others' terms stay coupled to the specials'
  logits, to ρ, and to their own share.
* **elsewhere**, Σ_o q_o·K(o) lies in the convex hull of K's values and Σ_o R(o) in n·(hull
  of R): an ``intervals.Hull`` node, enclosed on each sub-box of the branch and bound (x_o
  = ρ + log q_o ≤ ρ where the argument is x_o), not once for the whole box; each such sum is
  also a box variable s_k over its hull on the whole box, met with the sub-box hull
  (``intervals.Meet``), so that bisection can narrow a sum that appears non-monotonically.

Every step is an identity for each configuration of classes or an enclosure of the true
value, and the box contains every configuration: ρ ≥ min a_o and every (a_o, d_o) pair in
the box is allowed. The non-target's two-class case (no other class, n = 0) is reduced
exactly (``reduce_loss(..., others=False)``) and proved on its own; every other case has
n ≥ 1. A sign so proved (w over [0, 1]) holds for every number of classes, every value of
the other logits and every IoU: a reduction that covers COCO's 81 classes (80 and
background) as well as two. Losses outside it (two different softmax arguments that vary
with the other logits, or a softmax of a dot) raise ``OutsideReduction``, and only their
sampled verdict (on three classes) stands.
"""

from __future__ import annotations

import dataclasses
import math

import sympy

from symbolic.cpv.intervals import Hull, IntervalUnsupported, Meet, interval_bounds
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
X_H = sympy.Symbol("x_h", real=True)  # the same, bound inside a ``Hull``
A_O = sympy.Symbol("a_o", real=True)  # one other class o's softmax argument a_o(x_o)
D_O = sympy.Symbol("d_o", nonnegative=True)  # −log of its share: ρ = a_o + d_o
Q_H = sympy.Symbol("q_h", positive=True)
RHO = sympy.Symbol("rho", real=True)  # log of the others' softmax mass (log-sum-exp of their arguments)
N = sympy.Symbol("n", positive=True)  # how many other classes (at least one where they appear)
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
    def __init__(self, specials: tuple[Special, ...], others: bool):
        self.specials = specials
        self.others = others  # False: the specials are all the classes
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
        mass, varies = self._others_log_mass(a) if self.others else (None, False)
        if self.others and not varies and not any(e.has(*(s.logit for s in self.specials)) for e in a.special):
            return self._label_only_softmax(a, log)
        special = []
        for k, a_k in enumerate(a.special):
            others = [mass - a_k] if self.others else []
            rest = _lse([a_c - a_k for c, a_c in enumerate(a.special) if c != k] + others)
            special.append(-Softplus(rest) if log else Sigmoid(-rest))
        if not self.others:
            return Entries(tuple(special), X_O)  # no other class: its entry is never read
        if log:
            others_log_share = -Softplus(_lse(list(a.special)) - mass)
            other = (sympy.log(Q_O) if varies else -sympy.log(N)) + others_log_share
        else:
            # the others' total share as 1 − Σ (specials' shares): terms that sum the softmax cancel exactly
            others_share = 1 - sympy.Add(*special)
            other = Q_O * others_share if varies else others_share / N
        return Entries(tuple(special), other)

    def _label_only_softmax(self, a: Entries, log: bool) -> Entries:
        """A softmax of a vector free of the logits, rational in n: n → ∞ stays exact for cancellation."""
        total = sympy.Add(*(sympy.exp(a_k) for a_k in a.special)) + N * sympy.exp(a.other)
        if log:
            return Entries(tuple(a_k - sympy.log(total) for a_k in a.special), a.other - sympy.log(total))
        return Entries(tuple(sympy.exp(a_k) / total for a_k in a.special), sympy.exp(a.other) / total)

    def _dot(self, a: Entries, b: Entries) -> Entries:
        if a.scalar and b.scalar:
            raise OutsideReduction("dot of two per-sample values")
        # distributed, so that a class's share counted among the specials and in "1 − Σ shares" cancels
        others = others_sum(a.other * b.other) if self.others else sympy.S.Zero
        total = sympy.expand_mul(sympy.Add(*(p * q for p, q in zip(a.special, b.special, strict=True))) + others)
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


def reduce_loss(expr: sympy.Expr, specials: tuple[Special, ...], others: bool = True) -> Reduced:
    """``expr`` at a one-hot label, reduced to the special classes and sums over the others (any C).

    ``others=False``: exactly the special classes, no other one (C = len(specials)).
    """
    expander = _Expander(specials, others)
    entries = expander.expand(expr)
    if not entries.scalar:
        raise OutsideReduction("the loss is a vector over classes")
    return Reduced(entries.other, expander.others_mass_of)


@dataclasses.dataclass(frozen=True)
class Relaxed:
    """An expression with every sum over the other classes written per other class or bounded by a ``Hull``."""

    expr: sympy.Expr
    box: dict[sympy.Symbol, tuple[float, float]]  # the range of every variable of ``expr``
    notes: tuple[str, ...]


def _convex_part(term: sympy.Expr) -> sympy.Expr | None:
    """K when ``term`` = q_o·K: Σ_o q_o·K is then a convex combination of values of K."""
    weight = sympy.powsimp(term / Q_O)
    return weight if not weight.has(1 / Q_O) and sympy.expand(term - Q_O * weight) == 0 else None


@dataclasses.dataclass(frozen=True)
class _SplitSum:
    """Σ_o T(o) = Σ_o q_o·shared(o) + Σ_o plain(o) + n·constant, T's terms sorted by their form."""

    shared: sympy.Expr
    plain: sympy.Expr
    constant: sympy.Expr


def _split(node: OthersSum) -> _SplitSum:
    """The terms of an ``OthersSum`` sorted into share-weighted, plain and constant ones (expanded only if need be)."""
    shared, plain, constant = [], [], []
    for term in sympy.Add.make_args(node.args[0]):
        weight = _convex_part(term) if term.has(Q_O) else None
        if weight is not None:
            shared.append(weight)
            continue
        for part in sympy.Add.make_args(sympy.expand(term, deep=False)) if term.has(Q_O) else [term]:
            weight = _convex_part(part) if part.has(Q_O) else None
            if weight is not None:
                shared.append(weight)
            else:
                (plain if part.has(X_O, Q_O) else constant).append(part)
    return _SplitSum(sympy.Add(*shared), sympy.Add(*plain), sympy.Add(*constant))


class _Relaxer:
    """Rewrites the sums over the n ≥ 1 other classes of one derivative (see the module docstring)."""

    def __init__(self, coupled: bool):
        self.coupled = coupled  # the others' softmax argument is x_o itself: x_o = ρ + log q_o
        self.pointwise = self.hulls = False
        self.met: dict[sympy.Symbol, sympy.Expr] = {}  # a box variable per sum outside the affine part: its hull

    def _generic(self, expr: sympy.Expr, x: sympy.Symbol, q: sympy.Symbol) -> sympy.Expr:
        """``expr`` in one other class's symbols (x, q): x = ρ + log q where coupled."""
        return expr.xreplace({X_O: RHO + sympy.log(q) if self.coupled else x, Q_O: q})

    def _hull(self, expr: sympy.Expr) -> sympy.Expr:
        """A value in the hull of ``expr`` over every other class (its logit and share free)."""
        if expr == 0:
            return sympy.S.Zero
        self.hulls = True
        inner = self._generic(expr, X_H, Q_H)
        bounds = [b for b in [(X_H, -sympy.oo, sympy.oo), (Q_H, 0, 1)] if inner.has(b[0])]
        return Hull(inner, *bounds) if bounds else inner

    def bounded(self, node: OthersSum) -> sympy.Expr:
        """The sum as hull values: Σ_o q_o·K in the hull of K (the shares sum to 1), Σ_o R in n·(hull of R)."""
        parts = _split(node)
        bounded = self._hull(parts.shared) + N * (self._hull(parts.plain) + parts.constant)
        if not bounded.has(Hull):
            return bounded
        # also a variable of the box (one per sum), so that bisection narrows it where the hull alone cannot
        symbol = next((s for s, b in self.met.items() if b == bounded), sympy.Symbol(f"s_{len(self.met)}", real=True))
        self.met[symbol] = bounded
        return Meet(symbol, bounded)

    def per_class(self, node: OthersSum) -> sympy.Expr:
        """The sum's share-weighted part as its term K(o) of one other class o; the rest as hull values."""
        parts = _split(node)
        if parts.shared != 0:
            self.pointwise = True
        return parts.shared + N * (self._hull(parts.plain) + parts.constant)

    def rewrite(self, node: sympy.Expr, affine: bool) -> sympy.Expr:
        """``node`` with its sums per class where it is affine in them (``affine``), else as hull values."""
        if isinstance(node, OthersSum):
            return self.per_class(node) if affine else self.bounded(node)
        if not node.has(OthersSum):
            return node
        if node.is_Add:
            return sympy.Add(*(self.rewrite(arg, affine) for arg in node.args))
        if node.is_Mul:  # affine in one factor's sums at most: the others' are then constants
            carrier = next((k for k, arg in enumerate(node.args) if _has_affine_sum(arg)), None) if affine else None
            return sympy.Mul(*(self.rewrite(arg, k == carrier) for k, arg in enumerate(node.args)))
        return node.func(*(self.rewrite(arg, False) for arg in node.args))


def _has_affine_sum(node: sympy.Expr) -> bool:
    """Whether ``node`` is affine in some ``OthersSum`` it holds (reached through sums and products only)."""
    if isinstance(node, OthersSum):
        return True
    return (node.is_Add or node.is_Mul) and any(_has_affine_sum(arg) for arg in node.args)


def _argument_range(others_argument: sympy.Expr | None) -> tuple[float, float]:
    """An enclosure of the others' softmax argument a_o(x_o) over all real x_o."""
    if others_argument is None:
        return -INF, INF
    try:
        return interval_bounds(others_argument, {X_O: (-INF, INF)})
    except IntervalUnsupported:
        return -INF, INF


def relax(derivative: sympy.Expr, others_argument: sympy.Expr | None,
          box: dict[sympy.Symbol, tuple[float, float]]) -> Relaxed:
    """``derivative`` (in a special logit) with its sums over the n ≥ 1 other classes per class or bounded.

    ``box``: the ranges of the other variables (logits, ρ, n, w); the result's box holds every variable.
    """
    relaxer = _Relaxer(others_argument == X_O)
    expr = relaxer.rewrite(derivative, True)
    lo, hi = _argument_range(others_argument)
    box, notes, rho = {**box, RHO: (max(lo, box[RHO][0]), box[RHO][1])}, [], {}  # ρ ≥ a_o for each other o
    if relaxer.pointwise:
        # one other class o: its argument a_o and share q_o = e^(a_o − ρ) ≤ 1, a box in (a_o, d_o = −log q_o)
        rho = {RHO: A_O + D_O, Q_O: sympy.exp(-D_O), **({X_O: A_O} if relaxer.coupled else {})}
        expr = expr.xreplace(rho)
        box = {**box, A_O: (lo, hi), D_O: (0.0, INF), X_O: (-INF, INF)}
        notes.append("a mean over the other classes o, weighted by their shares q_o = exp(-d_o), of a term in "
                     "their softmax argument a_o, rho = a_o + d_o" + (" and x_o" if expr.has(X_O) else ""))
    for symbol, bounded in relaxer.met.items():
        bounded = bounded.xreplace(rho)
        try:
            box[symbol] = interval_bounds(bounded, {v: box[v] for v in bounded.free_symbols})
        except (IntervalUnsupported, KeyError):
            expr = expr.xreplace({Meet(symbol, bounded): bounded})
    if relaxer.hulls:
        notes.append("other sums over the other classes bounded on each sub-box")
    box = {s: bounds for s, bounds in box.items() if s in expr.free_symbols}
    return Relaxed(expr, box, tuple(notes))
