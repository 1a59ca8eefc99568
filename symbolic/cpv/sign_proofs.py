"""Deciding the sign of an expression on a box: SymPy's assumptions, then branch and bound.

``prove_sign(expr, box, sign)`` tries to show ``expr ≤ 0`` ("nonpositive"), ``expr ≥ 0``
("nonnegative") or ``expr > 0`` ("positive") for every point of ``box``:

1. ``prepare`` rewrites the expression so that intervals stay tight: for every S-curve s
   (σ, erf_s, gd_s, alf_s), c − k·s(a) with c ≥ k becomes (c − k) + k·s(−a) and
   −c + k·s(a) becomes −(c − k) − k·s(−a) (all of them satisfy s(−a) = 1 − s(a)), which
   removes the catastrophic cancellation of 1 − σ(x) at large x (likewise 1 − tanh(a)² is
   written 4σ(2a)σ(−2a)); ``factor_terms`` then
   pulls common factors out of sums, and both forms are bounded, their intersection kept.
2. Branch and bound (``intervals.IntervalProgram``): bound the expression on a batch of
   boxes, drop the decided ones, bisect the undecided ones along their widest dimension
   (geometrically for variables marked ``log_scale``), until every box is decided, a box
   lies wholly on the wrong side (its midpoint is then a counterexample: a rigorous one),
   or the box limit or the deadline is reached (the deadline is checked between rounds,
   never with signals, so it is safe in worker threads).

SymPy's own assumption system (``assumption_sign``) is tried first by the callers where it
is cheap; it decides for *all* real inputs, not only on the box.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np
import sympy

from symbolic.cpv.intervals import IntervalProgram, IntervalUnsupported
from symbolic.functions import S_CURVES, Sigmoid

SIGNS = ("nonpositive", "nonnegative", "positive")
MAX_BOXES = 4096  # undecided boxes carried from one round to the next
MAX_ROUNDS = 40
PREPARE_MAX_NODES = 250  # distinct subexpressions; beyond it factor_terms/together can take seconds
FACTOR_MAX_OPS = 120  # polynomial factorization stays in milliseconds below this size
ASSUMPTION_MAX_OPS = 60  # SymPy's assumption queries get slow on larger expressions


@dataclasses.dataclass(frozen=True)
class SignProof:
    """The outcome of a sign proof: "proved", "refuted" (with a counterexample) or "undecided"."""

    status: str
    detail: str
    counterexample: dict[str, float] | None = None
    boxes: int = 0  # boxes bounded in total


def _absorb_complements(node: sympy.Add) -> sympy.Expr:
    constant, terms = node.as_coeff_add()
    if constant == 0:
        return node
    new_terms, changed = [], False
    for term in terms:
        coeff, rest = term.as_coeff_Mul()
        fits = coeff != 0 and abs(coeff) <= abs(constant) and (coeff < 0) == (constant > 0)
        if fits and isinstance(rest, S_CURVES):
            constant += coeff
            new_terms.append(-coeff * rest.func(-rest.args[0]))
            changed = True
        elif fits and rest.is_Pow and rest.exp == 2 and isinstance(rest.base, sympy.tanh):
            # 1 − tanh(a)² = 4σ(2a)σ(−2a): the left side cancels to 0 in floats for |a| ≳ 19
            a = rest.base.args[0]
            constant += coeff
            new_terms.append(-4 * coeff * Sigmoid(2 * a) * Sigmoid(-2 * a))
            changed = True
        else:
            new_terms.append(term)
    return sympy.Add(constant, *new_terms) if changed else node


def rewrite_complements(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with c ∓ k·s(a) written as (c − k) ± k·s(−a) for every S-curve s (exact)."""
    if not expr.args:
        return expr
    args = tuple(rewrite_complements(arg) for arg in expr.args)
    node = expr if args == expr.args else expr.func(*args)
    return _absorb_complements(node) if node.is_Add else node


def prepare(expr: sympy.Expr, deadline: float = float("inf")) -> list[sympy.Expr]:
    """Equivalent forms of ``expr`` to bound; each is an enclosure, so their intersection is too.

    The rewritten expression; its common factors pulled out (``factor_terms``); its terms
    over one denominator with common factors pulled out (``together``), which cancels the
    dependency between terms such as A/(A + At) − A(A + At − 2)/(A + At)²; and, for small
    rational functions, ``factor``, which exposes sign-carrying factors such as (1 − t).
    """
    rewritten = rewrite_complements(expr)
    forms = [rewritten]
    for candidate in _equivalents(rewritten):
        if time.perf_counter() > deadline:
            break
        if candidate not in forms and not candidate.has(sympy.nan, sympy.zoo):
            forms.append(candidate)
    return forms


def _equivalents(expr: sympy.Expr):
    yield sympy.factor_terms(expr)
    combined = sympy.factor_terms(sympy.together(expr))
    yield combined
    if not expr.atoms(sympy.Function) and sympy.count_ops(combined) <= FACTOR_MAX_OPS:
        yield sympy.factor(combined)


def assumption_sign(expr: sympy.Expr, sign: str) -> bool:
    """True when SymPy's assumptions decide the sign for all real inputs (cheap cases only)."""
    if sympy.count_ops(expr) > ASSUMPTION_MAX_OPS:
        return False
    query = {"nonpositive": "is_nonpositive", "nonnegative": "is_nonnegative", "positive": "is_positive"}[sign]
    try:
        return getattr(rewrite_complements(expr), query) is True
    except Exception:  # noqa: BLE001 - an assumption query that breaks decides nothing
        return False


def _decided(lo, hi, sign):
    if sign == "nonpositive":
        return hi <= 0, lo > 0
    if sign == "nonnegative":
        return lo >= 0, hi < 0
    return lo > 0, hi <= 0  # positive: a box with hi ≤ 0 has no positive point


def _bisect(lo, hi, initial_lo, initial_hi, geometric_columns):
    """Split every box in two along its relatively widest dimension."""
    relative = (hi - lo) / np.maximum(initial_hi - initial_lo, 1e-300)
    geometric = np.zeros_like(lo, dtype=bool)
    for col in geometric_columns:
        if initial_lo[col] > 0:
            geometric[:, col] = True
            relative[:, col] = np.log(hi[:, col] / lo[:, col]) / np.log(initial_hi[col] / initial_lo[col])
    rows = np.arange(len(lo))
    axis = np.argmax(relative, axis=1)
    a, b = lo[rows, axis], hi[rows, axis]
    with np.errstate(invalid="ignore"):
        middle = np.where(geometric[rows, axis], np.sqrt(a * b), 0.5 * (a + b))
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[rows, axis] = middle
    right_lo[rows, axis] = middle
    return np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi])


def prove_sign(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]], sign: str, *,
               deadline: float, log_scale: tuple[sympy.Symbol, ...] = (),
               max_boxes: int = MAX_BOXES) -> SignProof:
    """Decide ``expr`` ≤ 0 / ≥ 0 / > 0 on ``box`` by interval branch and bound, before ``deadline``."""
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}")
    variables = tuple(box)
    try:
        # compiling the raw expression first fails fast on heads without a rule (re, im, atan2 ...)
        programs = [IntervalProgram(rewrite_complements(expr), variables)]
    except IntervalUnsupported as error:
        return SignProof("undecided", f"no interval enclosure: {error}")
    prepared = len(programs[0].instructions) > PREPARE_MAX_NODES  # too large for cheap SymPy rewrites
    lo = np.array([[box[v][0] for v in variables]], dtype=np.float64)
    hi = np.array([[box[v][1] for v in variables]], dtype=np.float64)
    initial_lo, initial_hi = lo[0].copy(), hi[0].copy()
    geometric_columns = tuple(variables.index(v) for v in log_scale if v in variables)
    total = 0
    for _ in range(MAX_ROUNDS):
        bounds = [program(lo, hi) for program in programs]
        total += len(lo)
        b_lo = np.maximum.reduce([b[0] for b in bounds])
        b_hi = np.minimum.reduce([b[1] for b in bounds])
        done, wrong = _decided(b_lo, b_hi, sign)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            point = {v.name: float(0.5 * (lo[row, k] + hi[row, k])) for k, v in enumerate(variables)}
            return SignProof("refuted", f"bound [{b_lo[row]:.3g}, {b_hi[row]:.3g}] on a sub-box", point, total)
        lo, hi = lo[~done], hi[~done]
        if not len(lo):
            return SignProof("proved", f"interval branch and bound, {total} boxes", None, total)
        if not prepared:  # the tighter equivalent forms cost SymPy time: only when the raw form is not enough
            prepared = True
            with contextlib.suppress(IntervalUnsupported):
                programs += [IntervalProgram(form, variables) for form in prepare(expr, deadline)[1:]]
            continue
        if len(lo) > max_boxes // 2 or time.perf_counter() > deadline:
            break
        lo, hi = _bisect(lo, hi, initial_lo, initial_hi, geometric_columns)
    reason = "time budget" if time.perf_counter() > deadline else "box limit"
    return SignProof("undecided", f"{len(lo)} sub-boxes undecided after {total} boxes ({reason})", None, total)
