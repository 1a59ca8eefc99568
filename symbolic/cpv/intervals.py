"""Rigorous interval arithmetic over SymPy expressions, vectorized over many boxes at once.

``IntervalProgram(expr, variables)`` compiles an expression once; calling it with arrays
``lo, hi`` of shape [B, D] (one row per box, one column per variable) returns arrays
``(lo, hi)`` of shape [B] that enclose every value the expression takes on each box.

Rigour: every floating-point result is widened outward (``np.nextafter`` after each
elementary operation; a few ulps, relative and absolute, after library functions whose
error is not correctly rounded), NaN bounds become ±inf, and sign facts that rounding
could blur are restored exactly (a product of two non-negative intervals stays ≥ 0, an
S-curve stays in [0, 1]), so a bound that proves a sign is never an artefact of underflow.
The S-curves are computed in cancellation-free forms (erf_s through erfc, gd_s as
(2/π)·atan(e^(πa/4)), alf_s as in ``functions.ScaledAlf.mp_value``), not the operator
table's (1 + f(a))/2, so their tails keep a relative accuracy and a tiny loss term still
has a sign.

Semantics: enclosures are of the mathematical function. Where it is undefined, they also
contain the value of the operator table's guarded numerics: ``log`` and ``sqrt`` use their
floors where the argument may be tiny or negative, and a quotient whose denominator
interval touches 0 is unbounded. ``exp`` is not capped: the cap at exp(80) only guards
against overflow, softmax and log σ are computed stably in the numerics (so their exact
rewrites here never meet it), and where a cap does act, the sampled check on the guarded
numerics, which backs every proof, decides. ``sign`` and ``Heaviside`` (from derivatives of
abs and relu) are monotone steps.

``Hull(e, (s, lo, hi), ...)`` stands for some value in the convex hull of the values e takes
as each bound symbol s runs over [lo, hi] (a weighted mean of such values, say). It is
enclosed by e's enclosure with each s at its whole range, on every box alike: an interval
enclosing the range of e encloses its convex hull too. ``Meet(a, b, ...)`` is one value known
to lie in each argument's range (a box variable and a hull standing for the same sum): it is
enclosed by the intersection of their enclosures (where that is empty no point of the box is
consistent, and the last argument's enclosure is kept).
"""

from __future__ import annotations

import math

import numpy as np
import sympy
from scipy import special

from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.operators import LOG_FLOOR, SQRT_FLOOR
from symbolic.straight_line import StraightLineCode

EPS = np.finfo(np.float64).eps
LIBRARY_RELATIVE_ERROR = 8 * EPS  # bound on the error of NumPy/SciPy transcendental functions
LIBRARY_ABSOLUTE_ERROR = 8 * EPS  # for erf near 0
SCURVE_RELATIVE_ERROR = 1e-12  # cephes erfc: peak relative error 5.7e-14 (its documentation); a wide margin


class IntervalUnsupported(ValueError):
    """The expression holds a head without an interval rule (e.g. a symbolic exponent)."""


class Hull(sympy.Function):
    """Some value in the convex hull of ``args[0]``'s values as each bound symbol runs over its range.

    Written ``Hull(e, (s, lo, hi), ...)``; the bound symbols are not free. SymPy keeps the node
    whole (a rewrite of e inside is an identity of the function, so it is one of the hull);
    two equal nodes stand for one value. The signs of e that hold everywhere hold for the hull.
    """

    @property
    def bound_symbols(self) -> set[sympy.Symbol]:
        return {bound[0] for bound in self.args[1:]}

    @property
    def free_symbols(self) -> set[sympy.Symbol]:
        return self.args[0].free_symbols - self.bound_symbols

    def _eval_derivative(self, s):
        raise TypeError("a hull value has no derivative: differentiate before bounding")

    def _eval_is_commutative(self):
        return True  # a number (its bounds, Tuples, would otherwise make it a non-commutative symbol)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_extended_nonnegative(self):
        return self.args[0].is_extended_nonnegative

    def _eval_is_extended_nonpositive(self):
        return self.args[0].is_extended_nonpositive

    def _eval_is_extended_positive(self):
        return self.args[0].is_extended_positive

    def _eval_is_extended_negative(self):
        return self.args[0].is_extended_negative


def _clean(lo, hi):
    return np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)


def _outward(lo, hi, relative=0.0, absolute=0.0):
    """Widen (lo, hi) by one ulp, plus ``relative``·|bound| and ``absolute`` when given."""
    if relative or absolute:
        lo = lo - (np.abs(lo) * relative + absolute)
        hi = hi + (np.abs(hi) * relative + absolute)
    return _clean(np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf))


def _clip(lo, hi, floor=None, ceiling=None):
    if floor is not None:
        lo, hi = np.maximum(lo, floor), np.maximum(hi, floor)
    if ceiling is not None:
        lo, hi = np.minimum(lo, ceiling), np.minimum(hi, ceiling)
    return lo, hi


def _two_sum_error(a, b, s):
    """The exact rounding error (a + b) − s of s = fl(a + b) (Knuth's TwoSum; NaN on overflow)."""
    bb = s - a
    return (a - (s - bb)) + (b - bb)


_SPLITTER = 134217729.0  # 2^27 + 1, Veltkamp's split of a double into two 26-bit halves


def _split(a):
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product_error(a, b, p):
    """The exact rounding error a·b − p of p = fl(a·b) (Dekker; NaN/inexact near over- or underflow)."""
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _directed(value, error, tiny_safe):
    """Bounds (down, up) of a rounded result from its exact error; one ulp outward where unknown."""
    known = np.isfinite(error) & np.isfinite(value) & tiny_safe
    down = np.where(known & (error >= 0), value, np.nextafter(value, -np.inf))
    up = np.where(known & (error <= 0), value, np.nextafter(value, np.inf))
    return down, up


def interval_add(a, b):
    """Enclosure of a + b (exact where the floating-point sum is exact)."""
    lo, hi = a[0] + b[0], a[1] + b[1]
    lo, _ = _directed(lo, _two_sum_error(a[0], b[0], lo), True)
    _, hi = _directed(hi, _two_sum_error(a[1], b[1], hi), True)
    lo, hi = _clean(lo, hi)
    lo = np.where((a[0] >= 0) & (b[0] >= 0), np.maximum(lo, 0.0), lo)
    hi = np.where((a[1] <= 0) & (b[1] <= 0), np.minimum(hi, 0.0), hi)
    return lo, hi


def _product(p, q):
    out = p * q
    out = np.where(np.isnan(out), 0.0, out)  # 0·∞: ∞ only stands for an unbounded finite value
    # Dekker's error term is exact only away from over- and underflow of the partial products
    safe = (np.abs(p) < 1e150) & (np.abs(q) < 1e150) & ((np.abs(out) > 1e-290) | (out == 0) & ((p == 0) | (q == 0)))
    return _directed(out, _two_product_error(p, q, out), safe)


def interval_mul(a, b):
    """Enclosure of a·b, with the sign of the product kept exact."""
    corners = [_product(p, q) for p in a for q in b]
    lo, hi = _clean(np.minimum.reduce([c[0] for c in corners]), np.maximum.reduce([c[1] for c in corners]))
    a_nonneg, a_nonpos, b_nonneg, b_nonpos = a[0] >= 0, a[1] <= 0, b[0] >= 0, b[1] <= 0
    nonneg = (a_nonneg & b_nonneg) | (a_nonpos & b_nonpos)
    nonpos = (a_nonneg & b_nonpos) | (a_nonpos & b_nonneg)
    return np.where(nonneg, np.maximum(lo, 0.0), lo), np.where(nonpos, np.minimum(hi, 0.0), hi)


def interval_reciprocal(a):
    """Enclosure of 1/a; unbounded where the interval touches 0."""
    lo, hi = a
    with np.errstate(divide="ignore"):
        inv_lo, inv_hi = 1.0 / hi, 1.0 / lo
    positive, negative = lo > 0, hi < 0
    touches_from_above = (lo == 0) & (hi > 0)
    touches_from_below = (hi == 0) & (lo < 0)
    out_lo = np.where(positive | negative | touches_from_above, inv_lo, -np.inf)
    out_hi = np.where(positive | negative | touches_from_below, inv_hi, np.inf)
    out_lo, out_hi = _outward(out_lo, out_hi)
    out_lo = np.where(positive | touches_from_above, np.maximum(out_lo, 0.0), out_lo)
    out_hi = np.where(negative | touches_from_below, np.minimum(out_hi, 0.0), out_hi)
    return out_lo, out_hi


def _integer_power(a, n: int):
    lo, hi = a
    with np.errstate(over="ignore"):
        p_lo, p_hi = np.power(lo, n), np.power(hi, n)
    even = (np.where(lo >= 0, p_lo, np.where(hi <= 0, p_hi, 0.0)), np.maximum(p_lo, p_hi))
    lo_out, hi_out = _outward(*((p_lo, p_hi) if n % 2 else even), relative=2 * n * EPS)
    return (np.maximum(lo_out, 0.0), hi_out) if n % 2 == 0 else (lo_out, hi_out)


def interval_power(a, exponent: sympy.Rational):
    """Enclosure of a**exponent for an integer or 2^-k-root rational exponent."""
    p, q = int(exponent.p), int(exponent.q)
    if q & (q - 1):
        raise IntervalUnsupported(f"power {exponent}: only integer and 2^-k roots")
    for _ in range(q.bit_length() - 1):
        a = interval_sqrt(a)
    if p == 0:
        return np.ones_like(a[0]), np.ones_like(a[1])
    powered = a if abs(p) == 1 else _integer_power(a, abs(p))
    return powered if p > 0 else interval_reciprocal(powered)


def interval_sqrt(a):
    """Enclosure of √a and of the guarded √max(a, 1e-30)."""
    lo, hi = np.sqrt(np.maximum(a[0], 0.0)), np.sqrt(np.maximum(a[1], SQRT_FLOOR))
    lo, hi = _outward(lo, hi)
    return np.maximum(lo, 0.0), hi


def _monotone(function, floor=None, ceiling=None, absolute=0.0, odd=False):
    """An increasing function's rule; ``odd``: f(0) = 0 and f keeps its argument's sign, which the
    outward widening would blur at 0 (tanh([0, 1]) must not reach below 0, or sin(tanh(v)) ≥ 0 is lost)."""

    def rule(a):
        with np.errstate(all="ignore"):
            lo, hi = function(a[0]), function(a[1])
        lo, hi = _clip(*_outward(lo, hi, LIBRARY_RELATIVE_ERROR, absolute), floor, ceiling)
        if odd:
            lo, hi = np.where(a[0] >= 0, np.maximum(lo, 0.0), lo), np.where(a[1] <= 0, np.minimum(hi, 0.0), hi)
        return lo, hi

    return rule


def _exp(a):
    with np.errstate(over="ignore"):
        lo, hi = np.exp(a[0]), np.exp(a[1])
    return _clip(*_outward(lo, hi, LIBRARY_RELATIVE_ERROR), floor=0.0)


def _log(a):
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(a[0] > 0, np.log(np.maximum(a[0], 0.0)), -np.inf)
        hi = np.log(np.maximum(a[1], LOG_FLOOR))
    return _outward(lo, hi, LIBRARY_RELATIVE_ERROR)


def _abs(a):
    lo, hi = a
    straddles = (lo < 0) & (hi > 0)
    low = np.where(straddles, 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    return low, np.maximum(np.abs(lo), np.abs(hi))


def _periodic(shift: float):
    """sin (shift 0) or cos (shift π/2): maxima at π/2 − shift + 2kπ, minima at −π/2 − shift + 2kπ."""

    def contains(lo, hi, point):
        # widened test: including an extremum that is not there only loosens the bound
        with np.errstate(invalid="ignore"):
            k_low = np.ceil((lo - point) / (2 * math.pi) - 1e-9)
            return k_low <= np.floor((hi - point) / (2 * math.pi) + 1e-9)

    def rule(a):
        lo, hi = a
        finite = np.isfinite(lo) & np.isfinite(hi)
        safe_lo, safe_hi = np.where(finite, lo, 0.0), np.where(finite, hi, 0.0)
        f_lo, f_hi = np.sin(safe_lo + shift), np.sin(safe_hi + shift)
        low, high = np.minimum(f_lo, f_hi), np.maximum(f_lo, f_hi)
        wide = ~finite | (safe_hi - safe_lo >= 2 * math.pi)
        high = np.where(wide | contains(safe_lo, safe_hi, math.pi / 2 - shift), 1.0, high)
        low = np.where(wide | contains(safe_lo, safe_hi, -math.pi / 2 - shift), -1.0, low)
        # the argument itself carries round-off proportional to its size
        slack = 4 * EPS * np.maximum(np.abs(safe_lo), np.abs(safe_hi)) + 4 * EPS
        low, high = _clip(low - slack, high + slack, -1.0, 1.0)
        # sign facts the slack would blur: sin ≥ 0 on [0, π] and ≤ 0 on [−π, 0] (cos: shifted by π/2)
        margin = 4 * EPS if shift else 0.0  # lo + π/2 is rounded; lo itself is exact
        nonneg = finite & (lo + shift >= margin) & (hi + shift <= _PI_BELOW)
        nonpos = finite & (lo + shift >= -_PI_BELOW) & (hi + shift <= -margin)
        return np.where(nonneg, np.maximum(low, 0.0), low), np.where(nonpos, np.minimum(high, 0.0), high)

    return rule


_PI_BELOW = float(np.nextafter(math.pi, 0.0)) - 4 * EPS  # safely below π, even after rounding of lo + shift


def _step(at_zero: float):
    def step(values):
        return np.where(values > 0, 1.0, np.where(values < 0, 0.0, at_zero))

    return lambda a: (step(a[0]), step(a[1]))


def _scaled_erf(v):
    return special.erfc(-math.sqrt(math.pi) / 4 * v) / 2


def _scaled_gd(v):
    return 2 / math.pi * np.arctan(np.exp(math.pi / 4 * v))


def _scaled_alf(v):
    h = v / 2
    s = np.hypot(1.0, h)
    return np.where(h < 0, 1 / (2 * s * (s - h)), (s + h) / (2 * s))


def _scurve(function):
    """An S-curve's rule, computed without cancellation so that its tails keep their relative accuracy."""

    def value(v):  # the limits 0 and 1 at ∓∞ exactly
        return np.where(np.isinf(v), (np.sign(v) + 1) / 2, function(np.where(np.isinf(v), 0.0, v)))

    def rule(a):
        with np.errstate(all="ignore"):
            lo, hi = value(a[0]), value(a[1])
        return _clip(*_outward(lo, hi, SCURVE_RELATIVE_ERROR), 0.0, 1.0)

    return rule


_FUNCTION_RULES = {
    sympy.exp: _exp,
    sympy.log: _log,
    sympy.Abs: _abs,
    sympy.sin: _periodic(0.0),
    sympy.cos: _periodic(math.pi / 2),
    sympy.tanh: _monotone(np.tanh, -1.0, 1.0, odd=True),
    sympy.atan: _monotone(np.arctan, -math.pi / 2, math.pi / 2, odd=True),
    sympy.erf: _monotone(special.erf, -1.0, 1.0, LIBRARY_ABSOLUTE_ERROR, odd=True),
    sympy.sign: lambda a: (np.sign(a[0]), np.sign(a[1])),
    Sigmoid: _monotone(special.expit, 0.0, 1.0),
    Softplus: _monotone(lambda v: np.logaddexp(0.0, v), 0.0),
    Relu: lambda a: (np.maximum(a[0], 0.0), np.maximum(a[1], 0.0)),
    ScaledErf: _scurve(_scaled_erf),
    ScaledGd: _scurve(_scaled_gd),
    ScaledAlf: _scurve(_scaled_alf),
}


def _constant(expr: sympy.Expr):
    if expr.is_Rational and abs(int(expr.p)) < 2**53 and not expr.q & (expr.q - 1):
        value = int(expr.p) / int(expr.q)  # exact: a power-of-two denominator
        return value, value
    try:
        value = complex(expr.evalf(30))
    except TypeError as error:  # a constant SymPy cannot evaluate (log of a symbolic zero, zoo ...)
        raise IntervalUnsupported(f"constant {expr} has no numeric value") from error
    if value.imag != 0 or not math.isfinite(value.real):
        raise IntervalUnsupported(f"constant {expr} is not a finite real number")
    lo, hi = np.nextafter(value.real, -np.inf), np.nextafter(value.real, np.inf)
    return float(np.nextafter(lo, -np.inf)), float(np.nextafter(hi, np.inf))


class Meet(sympy.Function):
    """One value lying in the range of each of its arguments (e.g. a box variable and a ``Hull`` of one sum)."""

    def _eval_derivative(self, s):
        raise TypeError("a met value has no derivative: differentiate before bounding")

    def _eval_is_commutative(self):
        return True

    def _eval_is_extended_real(self):
        return True  # it stands for a real value (each argument encloses it)


def _meet(*intervals):
    """The intersection of the enclosures; the last one where it is empty (no consistent point)."""
    lo = np.maximum.reduce([i[0] for i in intervals])
    hi = np.minimum.reduce([i[1] for i in intervals])
    empty = lo > hi
    return np.where(empty, intervals[-1][0], lo), np.where(empty, intervals[-1][1], hi)


class IntervalProgram(StraightLineCode):
    """An expression compiled to interval instructions over the columns of a box array."""

    def __init__(self, expr: sympy.Expr, variables: tuple[sympy.Symbol, ...]):
        self.variables = tuple(variables)
        self._ranges: dict[sympy.Symbol, tuple[float, float]] = {}  # the bound symbols of ``Hull`` nodes
        super().__init__(expr)

    def __call__(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds [B] of the expression over boxes ``lo, hi`` [B, D]."""
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        ones = np.ones(lo.shape[0])
        values: list[tuple[np.ndarray, np.ndarray]] = []
        with np.errstate(all="ignore"):
            for rule, args in self.instructions:
                if isinstance(rule, int):  # a variable: its column
                    values.append((lo[:, rule], hi[:, rule]))
                elif isinstance(rule, tuple):  # a constant
                    values.append((rule[0] * ones, rule[1] * ones))
                else:
                    values.append(rule(*(values[k] for k in args)))
        return values[self.output]

    def _fold(self, rule, expr: sympy.Expr) -> int:
        slots = [self._compile(arg) for arg in expr.args]
        result = slots[0]
        for slot in slots[1:]:
            result = self._emit(rule, (result, slot))
        return result

    def _bind(self, hull: Hull) -> None:
        """Each bound symbol of ``hull`` at its range (one range per symbol in one program)."""
        for symbol, lo, hi in hull.args[1:]:
            bounds = (float(lo), float(hi))
            if symbol in self.variables or self._ranges.setdefault(symbol, bounds) != bounds:
                raise IntervalUnsupported(f"{symbol} is bound to two ranges or is also a box variable")

    def _compile_node(self, expr: sympy.Expr) -> int:
        if isinstance(expr, Hull):
            self._bind(expr)
            return self._compile(expr.args[0])
        if isinstance(expr, Meet):
            return self._emit(_meet, tuple(self._compile(arg) for arg in expr.args))
        if expr.is_Symbol:
            if expr in self._ranges:
                return self._emit(self._ranges[expr])
            if expr not in self.variables:
                raise IntervalUnsupported(f"symbol {expr} is not one of the box variables {self.variables}")
            return self._emit(self.variables.index(expr))
        if expr.is_number:
            return self._emit(_constant(expr))
        if expr.is_Add:
            return self._fold(interval_add, expr)
        if expr.is_Mul:
            return self._fold(interval_mul, expr)
        if expr.is_Pow:
            base, exponent = expr.args
            if base is sympy.S.Exp1:
                return self._emit(_exp, (self._compile(exponent),))
            if not exponent.is_Rational:
                raise IntervalUnsupported(f"power {expr}: the exponent must be a rational number")
            return self._emit(lambda a, ex=exponent: interval_power(a, ex), (self._compile(base),))
        if isinstance(expr, sympy.Heaviside):
            at_zero = float(expr.args[1]) if len(expr.args) > 1 else 0.5
            return self._emit(_step(at_zero), (self._compile(expr.args[0]),))
        rule = _FUNCTION_RULES.get(type(expr))
        if rule is None or len(expr.args) != 1:
            raise IntervalUnsupported(f"no interval rule for {type(expr).__name__}: {expr}")
        return self._emit(rule, (self._compile(expr.args[0]),))


def interval_bounds(expr: sympy.Expr, box: dict[sympy.Symbol, tuple[float, float]]) -> tuple[float, float]:
    """Lower and upper bound of ``expr`` over one box {symbol: (lo, hi)}."""
    variables = tuple(box)
    lo = np.array([[box[v][0] for v in variables]], dtype=np.float64)
    hi = np.array([[box[v][1] for v in variables]], dtype=np.float64)
    out_lo, out_hi = IntervalProgram(expr, variables)(lo, hi)
    return float(out_lo[0]), float(out_hi[0])
