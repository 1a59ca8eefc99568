"""A derivative's sign from a simpler expression: differences of one monotone function, and factors of known sign.

Softmax-form derivatives often come out as k·f(u) − k·f(v): the same monotone function at two
arguments, e.g. e^(1/(n + e^w)) − e^(e^w/(n + e^w)) from the target's and the other classes' softmax
shares. Interval arithmetic bounds the two terms apart and loses their order (near n → ∞ both
tend to 1), while the order of the arguments decides the sign exactly. :func:`sign_reduction`
rewrites the expression so that a sign proved for the result implies the same sign for the
original at every point of the box:

* **factors of known sign**: in a product P·R with P ≥ 0 on the whole box (by its interval
  bound there), R ≤ 0 implies P·R ≤ 0 and R ≥ 0 implies P·R ≥ 0; with P ≤ 0 the claim flips.
* **monotone differences**: for f non-decreasing (exp, log, tanh, atan, sinh, asinh, erf, the
  S-curves σ, erf_s, gd_s, alf_s, softplus, relu, square root), k·(u − v) ≤ 0 at a point implies
  k·(f(u) − f(v)) ≤ 0 there (where k > 0, u ≤ v gives f(u) ≤ f(v); where k < 0 the reverse), and
  likewise for ≥ 0; a non-increasing f (e^(−·) is written as exp of a negated argument, so only
  the arguments' order matters) swaps u and v; and c + k·e^u with numbers c, k of opposite sign has
  the sign of u − log(−c/k) when k > 0 (of the negation when k < 0): the comparison with a level
  that rounding would blur (1 − e^w on w ≥ 0 bounds to [1 − e, 2e−15], not ≤ 0); likewise
  k·s(u) − k/2 for an S-curve s has the sign of k·u (s(0) = 1/2).

Only non-strict signs are reduced (a dropped factor may vanish). The result is an implication,
not an equivalence: a point where the reduced expression has the wrong sign says nothing about
the original, so callers use the reduction only to prove and fall back to the original otherwise.
The rewrites are structural (``factor_terms``, ``together``, ``rewrite_complements``), cheap next
to a branch and bound.
"""

from __future__ import annotations

import sympy

from symbolic.cpv.intervals import IntervalUnsupported, interval_bounds
from symbolic.functions import S_CURVES, Relu, Softplus

NONDECREASING = (sympy.exp, sympy.log, sympy.tanh, sympy.atan, sympy.sinh, sympy.asinh, sympy.erf, Softplus, Relu,
                 *S_CURVES)
MAX_DEPTH = 6  # nested differences (a softmax of a softmax of a sigmoid ...) reduced one level each
MAX_OPS = 400  # larger expressions are left to the branch and bound (the rewrites would cost seconds)
FLIP = {"nonpositive": "nonnegative", "nonnegative": "nonpositive"}


def _sign_on(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]]) -> int:
    """+1 where ``expr`` ≥ 0 on all of ``box`` by its interval bound, −1 where ≤ 0, else 0."""
    if expr.is_number:
        return 0 if not expr.is_extended_real else 1 if expr >= 0 else -1
    try:
        lo, hi = interval_bounds(expr, {v: box[v] for v in expr.free_symbols})
    except (IntervalUnsupported, KeyError):
        return 0
    return 1 if lo >= 0 else -1 if hi <= 0 else 0


def _monotone_head(node: sympy.Expr) -> bool:
    if isinstance(node, NONDECREASING):
        return True
    return node.is_Pow and node.exp == sympy.Rational(1, 2)  # sqrt, non-decreasing where defined


def _argument(node: sympy.Expr) -> sympy.Expr:
    return node.base if node.is_Pow else node.args[0]


def _level(add: sympy.Add) -> sympy.Expr | None:
    """The sign-equal comparison of c + k·f(u) (numbers c, k) with f's level: for e^u, u − log(−c/k) times the
    sign of k (c, k of opposite signs); for an S-curve s, k·u when c = −k/2 (s(0) = 1/2); else None."""
    constant, term = add.args
    k, rest = term.as_coeff_Mul()
    if not constant.is_Number or k == 0:
        return None
    if isinstance(rest, sympy.exp) and constant * k < 0:
        level = sympy.log(-constant / k)
        return rest.args[0] - level if k > 0 else level - rest.args[0]
    if isinstance(rest, S_CURVES) and constant == -k / 2:
        return k * rest.args[0]
    return None


def _difference(add: sympy.Add) -> sympy.Expr | None:
    """k·(u − v) for a sum k·f(u) − k·f(v) of one non-decreasing f; u − log(−c/k) for c + k·e^u; else None."""
    if len(add.args) != 2:
        return None
    level = _level(add)
    if level is not None:
        return level
    first, second = add.args
    for fu in sympy.Mul.make_args(first):
        if not _monotone_head(fu):
            continue
        for fv in sympy.Mul.make_args(second):
            if fv is fu or type(fv) is not type(fu) or not _monotone_head(fv) or (fu.is_Pow and fv.exp != fu.exp):
                continue
            k = first / fu
            if sympy.expand(k + second / fv) == 0:
                return k * (_argument(fu) - _argument(fv))
    return None


def _reduce(expr: sympy.Expr, box, sign: str, depth: int) -> tuple[sympy.Expr, str, bool]:
    """(reduced expression, the sign to prove for it, whether a monotone difference was reduced)."""
    if depth > MAX_DEPTH or expr.is_number or sympy.count_ops(expr) > MAX_OPS:
        return expr, sign, False
    from symbolic.cpv.sign_proofs import rewrite_complements  # sign_proofs uses this module

    expr = sympy.factor_terms(sympy.together(rewrite_complements(expr)))
    if expr.is_Mul:
        kept, flipped = [], False
        for factor in expr.args:
            known = _sign_on(factor, box)
            if known == 0:
                kept.append(factor)
            elif known < 0:
                flipped = not flipped
        rest = sympy.Mul(*kept)
        if len(kept) == 1 and rest.is_Add:
            reduced, rest_sign, changed = _reduce(rest, box, FLIP[sign] if flipped else sign, depth + 1)
            return reduced, rest_sign, changed
        return rest, FLIP[sign] if flipped else sign, False
    if expr.is_Add:
        difference = _difference(expr)
        if difference is not None:
            reduced, reduced_sign, _ = _reduce(difference, box, sign, depth + 1)
            return reduced, reduced_sign, True
    return expr, sign, False


def sign_reduction(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]],
                   sign: str) -> tuple[sympy.Expr, str] | None:
    """(expression, sign) whose proof on ``box`` implies ``expr``'s ``sign`` there; None when nothing reduced.

    Only a reduction through at least one monotone difference is returned: dropping factors of
    known sign alone is what the interval bound of the product already does.
    """
    if sign not in FLIP:
        return None
    reduced, reduced_sign, changed = _reduce(expr, box, sign, 0)
    return (reduced, reduced_sign) if changed else None
