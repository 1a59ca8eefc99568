"""Deciding the sign of an expression on a box: SymPy's assumptions, rational sign analysis, branch and bound.

``prove_sign(expr, box, sign)`` tries to show ``expr ≤ 0`` ("nonpositive"), ``expr ≥ 0``
("nonnegative") or ``expr > 0`` ("positive") for every point of ``box``, whose bounds may
be infinite (all real values of a variable):

1. a rational function is decided from the signs of the factors of its numerator and
   denominator (``prove_rational_sign``), each bounded alone — no cancellation between
   terms — and a factor polynomial in a variable that runs to +∞ by the shared sign of its
   coefficients, so that the proof holds at every scale;
2. sample points: the expression is bounded at a grid of points first, and a point on the
   wrong side inside the required region is a counterexample found without branching;
3. ``prepare`` rewrites the expression so that intervals stay tight: for every S-curve s
   (σ, erf_s, gd_s, alf_s), c − k·s(a) with c ≥ k becomes (c − k) + k·s(−a) and
   −c + k·s(a) becomes −(c − k) − k·s(−a) (all of them satisfy s(−a) = 1 − s(a)), which
   removes the catastrophic cancellation of 1 − σ(x) at large x (likewise 1 − tanh(a)² is
   written 4σ(2a)σ(−2a), and log σ(a) as −softplus(−a)); ``factor_terms`` and
   ``together`` give further forms, all bounded, their intersection kept;
4. branch and bound (``intervals.IntervalProgram``): bound the expression on a batch of
   boxes, drop the decided ones, bisect the undecided ones along their relatively widest
   dimension — geometrically for variables marked ``log_scale``, and in the compactified
   coordinate z/(1 + |z|) for unbounded ones, so that the tails [X, ∞) are boxes too —
   until every box meeting the required region is decided, a box there lies wholly on the
   wrong side (a rigorous counterexample), or the box limit or the deadline is reached
   (checked between rounds; the proof worker's time limit stops any longer step).

A proof reports its domain: the whole box when every sub-box was decided, else the
required region widened along the first variable as far as the decided boxes reach
(``x <= 1.4e+11``). SymPy's own assumption system (``assumption_sign``) is tried first by
the callers where it is cheap; it decides for *all* real inputs.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import sympy

from symbolic.cpv.intervals import IntervalProgram, IntervalUnsupported, interval_bounds
from symbolic.cpv.monotone_differences import sign_reduction
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.rational_signs import is_rational, prove_rational_sign
from symbolic.cpv.verdict import Proof, describe_range
from symbolic.functions import S_CURVES, Relu, Sigmoid, Softplus

SIGNS = ("nonpositive", "nonnegative", "positive")
MAX_BOXES = 4096  # undecided boxes carried from one round to the next
MAX_ROUNDS = 40
PREPARE_MAX_NODES = 250  # distinct subexpressions; beyond it factor_terms/together can take seconds
FACTOR_MAX_OPS = 120  # polynomial factorization stays in milliseconds below this size
ASSUMPTION_MAX_OPS = 60  # SymPy's assumption queries get slow on larger expressions


def _absorb_complements(node: sympy.Add) -> sympy.Expr:
    constant = sympy.Add(*(arg for arg in node.args if arg.is_Number))  # Float constants too (as_coeff_add skips them)
    terms = [arg for arg in node.args if not arg.is_Number]
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
    if isinstance(node, sympy.log) and isinstance(args[0], Sigmoid):
        return -Softplus(-args[0].args[0])  # log σ(a) = −softplus(−a): negative, and stable
    return _absorb_complements(node) if node.is_Add else node


_KINKS = (sympy.Abs, sympy.sign, sympy.Heaviside, Relu)


def _settled_kink(node: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]]) -> sympy.Expr:
    """``node`` (|a|, sign a, H(a), relu a) as its branch on all of ``box``, where its argument keeps one sign."""
    a = node.args[0]
    try:
        lo, hi = interval_bounds(a, {v: box[v] for v in a.free_symbols})
    except (IntervalUnsupported, KeyError):
        return node
    if lo >= 0 and not isinstance(node, sympy.sign | sympy.Heaviside) or lo > 0:
        return {sympy.Abs: a, sympy.sign: sympy.S.One, sympy.Heaviside: sympy.S.One, Relu: a}[type(node)]
    if hi <= 0 and not isinstance(node, sympy.sign | sympy.Heaviside) or hi < 0:
        return {sympy.Abs: -a, sympy.sign: -sympy.S.One, sympy.Heaviside: sympy.S.Zero, Relu: sympy.S.Zero}[type(node)]
    return node


def settle_kinks(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]]) -> sympy.Expr:
    """``expr`` with each kink whose argument keeps one sign on ``box`` replaced by that branch (exact there).

    |a| − a with a ≥ 0 on the box is then 0 symbolically, where its bound over an unbounded box is not.
    """
    if not expr.has(*_KINKS):
        return expr
    args = tuple(settle_kinks(arg, box) for arg in expr.args)
    node = expr if args == expr.args else expr.func(*args)
    return _settled_kink(node, box) if isinstance(node, _KINKS) else node


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
        if clock() > deadline:
            break
        if candidate not in forms and not candidate.has(sympy.nan, sympy.zoo):
            forms.append(candidate)
    return forms


def _equivalents(expr: sympy.Expr):
    yield sympy.factor_terms(expr)
    if expr.has(sympy.exp):  # e^(a + b) as e^a·e^b: a factor common to all terms, such as e^(−πx²/16), comes out
        yield _collected(sympy.factor_terms(_split_exponentials(expr)))
    yield _collected(expr)
    combined = sympy.factor_terms(sympy.together(expr))
    yield combined
    if not expr.atoms(sympy.Function) and sympy.count_ops(combined) <= FACTOR_MAX_OPS:
        yield sympy.factor(combined)


def _split_exponentials(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with each e^(c·(a + b)) written e^(c·a)·e^(c·b) (exact)."""
    def split(node: sympy.exp) -> sympy.Expr:
        return sympy.Mul(*(sympy.exp(term) for term in sympy.Add.make_args(sympy.expand_mul(node.args[0]))))

    return expr.replace(lambda node: isinstance(node, sympy.exp), split)


def _collected(expr: sympy.Expr) -> sympy.Expr:
    """Every sum with its terms collected by their variables, the most shared first: E − E·r·v + 2 becomes
    E·(1 − r·v) + 2, whose bound over E ≥ 0 and r, v in [0, 1] keeps its sign (the raw sum's does not)."""

    def collect(add: sympy.Add) -> sympy.Expr:
        shared = sorted(add.free_symbols, key=lambda s: (-sum(term.has(s) for term in add.args), s.name))
        return sympy.collect(add, shared)

    return expr.replace(lambda node: node.is_Add and node.free_symbols, collect)


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


class _Coordinates:
    """Per dimension, the coordinate in which boxes are bisected: linear, logarithmic or compactified.

    An unbounded dimension is bisected in s = z/(1 + |z|) (z = x, or log x for a positive one
    marked logarithmic), which maps it onto a bounded interval: [0, ∞] splits at 1, then
    [1, ∞] at 3, [3, ∞] at 7, ..., so the tail boxes [X, ∞] stay in play at every depth.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray, logarithmic: np.ndarray):
        self.log = logarithmic & (lo >= 0)
        with np.errstate(divide="ignore"):
            self.compact = ~np.isfinite(lo) | ~np.isfinite(hi) | (self.log & (lo == 0))
        self.width = self.forward(hi[None])[0] - self.forward(lo[None])[0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(self.log, np.log(np.where(self.log, x, 1.0)), x)
            return np.where(self.compact, np.where(np.isinf(z), np.sign(z), z / (1 + np.abs(z))), z)

    def backward(self, s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = np.where(self.compact, s / (1 - np.abs(s)), s)
            return np.where(self.log, np.exp(z), z)


SAMPLES_PER_AXIS = 5


def _sample_points(coordinates: _Coordinates, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A grid of points inside the box [lo, hi] (open, in the bisection coordinates): [P, D]."""
    s_lo, s_hi = coordinates.forward(lo[None])[0], coordinates.forward(hi[None])[0]
    fractions = (np.arange(SAMPLES_PER_AXIS) + 0.5) / SAMPLES_PER_AXIS
    axes = [np.unique(a + (b - a) * fractions) if b > a else np.array([a]) for a, b in zip(s_lo, s_hi, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(lo))
    return np.clip(coordinates.backward(grid), lo, hi)


def _bisect(lo, hi, coordinates: _Coordinates):
    """Split every box in two along its relatively widest dimension (in the bisection coordinates)."""
    s_lo, s_hi = coordinates.forward(lo), coordinates.forward(hi)
    relative = (s_hi - s_lo) / np.maximum(coordinates.width, 1e-300)
    rows = np.arange(len(lo))
    axis = np.argmax(relative, axis=1)
    middle = coordinates.backward(0.5 * (s_lo + s_hi))[rows, axis]
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[rows, axis] = middle
    right_lo[rows, axis] = middle
    return np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi])


def _meets(lo, hi, req_lo, req_hi) -> np.ndarray:
    """bool [B]: each box meets the required region in a set of positive size (a point in point dimensions)."""
    point = req_lo == req_hi
    return np.where(point, (lo <= req_hi) & (hi >= req_lo), (lo < req_hi) & (hi > req_lo)).all(axis=1)


def _domain(variables, box, required, left_lo, left_hi) -> str:
    """Where the proof holds: the box when nothing was left, else ``required`` widened along the first variable."""
    if not len(left_lo):
        return _whole_box({v: box[v] for v in variables})
    req_lo = np.array([required[v][0] for v in variables])
    req_hi = np.array([required[v][1] for v in variables])
    others = _meets(left_lo[:, 1:], left_hi[:, 1:], req_lo[1:], req_hi[1:]) if len(variables) > 1 else \
        np.ones(len(left_lo), bool)
    low, high = box[variables[0]]
    for a, b in zip(left_lo[others, 0], left_hi[others, 0], strict=True):
        if b <= req_lo[0]:
            low = max(low, b)
        elif a >= req_hi[0]:
            high = min(high, a)
    ranges = [describe_range(variables[0].name, low, high)]
    return ", ".join(ranges + [describe_range(v.name, *required[v]) for v in variables[1:]])


def _whole_box(box: dict[sympy.Symbol, tuple[float, float]]) -> str:
    return ", ".join(describe_range(v.name, *bounds) for v, bounds in box.items())


def _reduced_proof(expr: sympy.Expr, box, sign: str, deadline: float) -> Proof | None:
    """A proof on all of ``box`` through ``monotone_differences.sign_reduction``, or None (the caller goes on)."""
    reduction = sign_reduction(expr, box, sign)
    if reduction is None:
        return None
    reduced, reduced_sign = reduction
    argument = "monotone differences"
    if reduced.is_number:
        if not reduced.is_extended_real or not (reduced >= 0 if reduced_sign == "nonnegative" else reduced <= 0):
            return None
    else:
        sub_box = {v: bounds for v, bounds in box.items() if v in reduced.free_symbols}
        proof = prove_sign(reduced, sub_box, reduced_sign, deadline=deadline, max_boxes=MAX_BOXES // 4, reduce=False)
        if proof.status != "proved" or proof.domain != _whole_box(sub_box):
            return None  # a wrong sign of the reduced expression says nothing about the original
        argument += f", then {proof.argument}"
    return Proof("proved", argument, _whole_box(box))


def prove_sign(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]], sign: str, *,
               deadline: float, log_scale: tuple[sympy.Symbol, ...] = (),
               required: dict[sympy.Symbol, tuple[float, float]] | None = None,
               max_boxes: int = MAX_BOXES, rational: bool = True, reduce: bool = True) -> Proof:
    """Decide ``expr`` ≤ 0 / ≥ 0 / > 0 on ``box`` by interval branch and bound, before ``deadline``.

    Bounds may be infinite (the box then covers all real values of that variable). Only a
    wrong sign inside ``required`` (default: the whole box) refutes; the proof succeeds when
    ``required`` is covered, and its domain is the whole box when every sub-box was decided,
    else ``required`` widened along the first variable as far as the decided sub-boxes reach.
    With ``reduce``, a difference of one monotone function is first reduced to its arguments'
    order (``monotone_differences``), with half the remaining time.
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}")
    variables = tuple(box)
    required = {**box, **(required or {})}
    expr = settle_kinks(expr, box)
    if reduce and sign != "positive":
        proof = _reduced_proof(expr, box, sign, clock() + max(0.0, deadline - clock()) / 2)
        if proof is not None:
            return proof
    if rational and is_rational(expr):
        proof = prove_rational_sign(expr, box, sign, deadline, decide=decide_sign)
        if proof.status == "proved":
            return proof
    try:
        # compiling the raw expression first fails fast on heads without a rule (re, im, atan2 ...)
        programs = [IntervalProgram(rewrite_complements(expr), variables)]
    except IntervalUnsupported as error:
        return Proof.undecided(f"no interval enclosure: {error}")
    prepared = len(programs[0].instructions) > PREPARE_MAX_NODES  # too large for cheap SymPy rewrites
    lo = np.array([[box[v][0] for v in variables]], dtype=np.float64)
    hi = np.array([[box[v][1] for v in variables]], dtype=np.float64)
    req_lo = np.array([required[v][0] for v in variables], dtype=np.float64)
    req_hi = np.array([required[v][1] for v in variables], dtype=np.float64)
    coordinates = _Coordinates(lo[0], hi[0], np.array([v in log_scale for v in variables]))
    points = _sample_points(coordinates, np.maximum(lo[0], req_lo), np.minimum(hi[0], req_hi))
    wrong = _decided(*programs[0](points, points), sign)[1]
    if wrong.any():  # a point with the wrong sign: a counterexample found without any branching
        point = {v.name: float(points[np.argmax(wrong), k]) for k, v in enumerate(variables)}
        return Proof("refuted", "interval evaluation at a sample point", "", "wrong sign at a sample point", point)
    left_lo, left_hi = [lo[:0]], [hi[:0]]  # boxes given up outside `required` (wrong sign or undecided)
    total, reason = 0, "round limit"
    for _ in range(MAX_ROUNDS):
        bounds = [program(lo, hi) for program in programs]
        total += len(lo)
        b_lo = np.maximum.reduce([b[0] for b in bounds])
        b_hi = np.minimum.reduce([b[1] for b in bounds])
        done, wrong = _decided(b_lo, b_hi, sign)
        inside = _meets(lo, hi, req_lo, req_hi)
        if (wrong & inside).any():
            row = int(np.flatnonzero(wrong & inside)[0])
            a, b = np.maximum(lo[row], req_lo), np.minimum(hi[row], req_hi)
            point = {v.name: _finite_midpoint(float(a[k]), float(b[k])) for k, v in enumerate(variables)}
            return Proof("refuted", f"interval branch and bound ({total} boxes)", "",
                         f"bound [{b_lo[row]:.3g}, {b_hi[row]:.3g}] on a sub-box", point)
        left_lo.append(lo[wrong])
        left_hi.append(hi[wrong])
        lo, hi, inside = lo[~done & ~wrong], hi[~done & ~wrong], inside[~done & ~wrong]
        if not len(lo):
            break
        if not prepared:  # the tighter equivalent forms cost SymPy time: only when the raw form is not enough
            prepared = True
            with contextlib.suppress(IntervalUnsupported):
                programs += [IntervalProgram(form, variables) for form in prepare(expr, deadline)[1:]]
            continue
        if clock() > deadline:
            reason = "time budget"
            break
        if len(lo) > max_boxes // 2:  # boxes outside `required` give way first
            left_lo.append(lo[~inside])
            left_hi.append(hi[~inside])
            lo, hi, inside = lo[inside], hi[inside], inside[inside]
            if len(lo) > max_boxes // 2:
                reason = "box limit"
                break
        lo, hi = _bisect(lo, hi, coordinates)
    inside = _meets(lo, hi, req_lo, req_hi)
    if inside.any():
        return Proof.undecided(f"{int(inside.sum())} sub-boxes undecided after {total} boxes ({reason})",
                               timed_out=reason == "time budget")
    left_lo, left_hi = np.concatenate(left_lo + [lo]), np.concatenate(left_hi + [hi])
    return Proof("proved", f"interval branch and bound ({total} boxes)",
                 _domain(variables, box, required, left_lo, left_hi))


def decide_sign(expr, box, sign, deadline) -> bool:
    """Whether SymPy's assumptions or branch and bound (no rational analysis) show ``expr``'s sign on ``box``."""
    if expr.is_number:
        return bool(expr > 0) if sign == "positive" else bool(expr >= 0)
    relevant = {v: box[v] for v in box if v in expr.free_symbols}
    return assumption_sign(expr, sign) or prove_sign(expr, relevant, sign, deadline=deadline,
                                                     rational=False).status == "proved"


def _finite_midpoint(a: float, b: float) -> float:
    if math.isfinite(a) and math.isfinite(b):
        return 0.5 * (a + b)
    if math.isfinite(a):
        return a + 1.0 if a >= 0 else 0.5 * a
    if math.isfinite(b):
        return b - 1.0 if b <= 0 else 0.5 * b
    return 0.0
