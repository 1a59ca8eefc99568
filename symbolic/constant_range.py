"""The range of constants a candidate may hold, checked before SymPy sees them.

SymPy's automatic evaluation decides the sign of a constant, e.g. to simplify
``|cos(e^(e^(e^3)))|``, by evaluating it with mpmath at growing precision, and the precision
it needs grows with the constant's magnitude: reducing e^(e^(e^3)) ≈ 10^(2.3·10^8) modulo 2π
takes hundreds of millions of bits, in single C-level calls that no time limit can interrupt
(see ``symbolic.time_budget``). So every constant subexpression of a light tree is evaluated
in float64 first, bottom-up, with the operator table's numerics *without* their guards (exp,
log, sqrt and division as IEEE arithmetic, so an overflow shows as inf and a root or logarithm
of a negative number as nan), and the tree is refused when one is not finite. Within that
range mpmath needs at most ~1,100 bits to decide a sign, which takes microseconds.

The rule is float64's: a constant subexpression is valid when its float64 evaluation from its
leaves is finite, and sin and cos get arguments within ±2^53 (beyond, float64 cannot resolve
their period, so their float64 value says nothing about the exact one). It is slightly stricter
than exact arithmetic where float64 rounds: an intermediate value that overflows or underflows
refuses the tree even where SymPy would have simplified it away (``log(exp(1000))``). No loss
needs such a constant, and none could be lowered to float32 faithfully. A candidate's canonical
form is checked by the same rule (``Candidate``), so whatever it prints parses back.

Exact constants must also be writable: the numerator and denominator of every rational,
as a literal in the text and in the canonical form, have at most ``MAX_DIGITS`` digits (enough
for every finite float64 magnitude). The parser accepts numbers of that size, so whatever a
candidate prints parses back.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from symbolic.operators import NUMPY, OPERATORS

MAX_DIGITS = 310  # float64's largest finite magnitude, 1.8e308, has 309 digits
MAX_PERIODIC_ARGUMENT = 2.0**53  # beyond it float64 numbers are 2 or more apart: sin and cos are noise
_LIMIT = 10**MAX_DIGITS
_PERIODIC = frozenset({"sin", "cos"})

# The four guarded primitives as IEEE arithmetic; the others' numerics need no guard.
_IEEE = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "div": np.divide}
_STABLE_LOG = {name: op.stable_log for name, op in OPERATORS.items() if op.stable_log is not None}
_CLASS_AXIS = frozenset({"softmax", "dot"})  # never constant in a valid tree, and not scalar operators


def integer_problem(value: int) -> str | None:
    """Why the integer ``value`` cannot be a candidate's constant, or None."""
    if -_LIMIT < value < _LIMIT:
        return None
    digits = int(math.log10(abs(value))) + 1  # str() refuses ints of over 4,300 digits
    return (f"a number of about {digits:,} digits is out of range; numerators and denominators of "
            f"constants have at most {MAX_DIGITS} digits")


def rational_problem(value: Fraction) -> str | None:
    """Why the rational ``value`` cannot be a candidate's constant, or None (numerator and denominator)."""
    return integer_problem(value.numerator) or integer_problem(value.denominator)


def constant_problem(tree) -> str | None:
    """Why a light tree holds a constant outside the range, or None; the innermost such constant is named.

    ``tree`` must be a structurally valid tree (``tree_problem`` is None), so that its
    operators are known and of the right arity.
    """
    problem: list[str] = []
    with np.errstate(all="ignore"):
        _value(tree, {}, problem)
    return problem[0] if problem else None


def _value(tree, memo: dict, problem: list[str]) -> float | None:
    """The float64 value of a constant subtree, None for a subtree with an input (or after a problem)."""
    if type(tree) is tuple:
        if tree in memo:
            return memo[tree]
        values = [_value(child, memo, problem) for child in tree[1:]]
        if problem or None in values or tree[0] in _CLASS_AXIS:
            return None
        name, inner = tree[0], tree[1]
        if name in _PERIODIC and abs(values[0]) > MAX_PERIODIC_ARGUMENT:
            problem.append(f"the constant {_short(tree)} has no float64 value: sin and cos need arguments "
                           f"within ±2**53 ≈ ±9.0e15, where float64 still resolves their period")
            return None
        if name == "log" and type(inner) is tuple and inner[0] in _STABLE_LOG:  # as the lowering computes it
            result = float(_STABLE_LOG[inner[0]](NUMPY, *(_value(child, memo, problem) for child in inner[1:])))
        elif name in _IEEE:
            result = float(_IEEE[name](*values))
        else:
            result = float(OPERATORS[name].compute(NUMPY, *values))
        if not np.isfinite(result):
            problem.append(_out_of_range(tree, result))
        memo[tree] = result
        return result
    if isinstance(tree, str):
        return None
    exact = Fraction(tree)
    reason = rational_problem(exact)
    if reason is not None:
        problem.append(reason)
        return None
    try:
        return float(exact)
    except OverflowError:
        problem.append(_out_of_range(tree, np.inf))
        return None


def _short(tree) -> str:
    from symbolic.printers import tree_to_infix  # printers → tree → this module

    text = tree_to_infix(tree)
    return text if len(text) <= 80 else text[:77] + "..."


def _out_of_range(tree, value: float) -> str:
    text = _short(tree)
    what = "is not a real number (nan in float64)" if np.isnan(value) else f"is {value} in float64"
    return f"the constant {text} {what}; every constant subexpression must be a finite real float64 number"
