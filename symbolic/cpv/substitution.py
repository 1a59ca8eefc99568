"""Substituting input values into a formula the way training evaluates it.

At a label value a formula can be undefined where the numerics are not: ``log(y)`` at
y = 0, ``x/log(y)`` at y = 1, ``u/i`` for disjoint boxes. Training then computes the
operator table's guarded value (``log`` floors its argument at 1e-20, a quotient keeps its
denominator at least 1e-12 away from 0 with its sign), and the sampled checks judge exactly
that. ``substitute`` therefore replaces every subexpression that becomes a constant by its
exact value where that is a finite real number, and otherwise by the guarded numerics'
value at those inputs (float64), so that a proof is about the function training evaluates.
Where the numerics guard a product of a vanishing constant and a varying denominator as a
whole, no such constant exists: the formula is left undefined there and no proof follows.
"""

from __future__ import annotations

import numpy as np
import sympy

from symbolic.lowering import LoweringError, Program
from symbolic.operators import NUMPY


def substitute(expr: sympy.Expr, values: dict[sympy.Symbol, float]) -> sympy.Expr:
    """``expr`` with ``values`` substituted; constants the formula leaves undefined take the guarded value."""
    names = tuple(symbol.name for symbol in values)
    inputs = {symbol.name: np.float64(value) for symbol, value in values.items()}
    fixed = set(values)
    memo: dict[sympy.Expr, sympy.Expr] = {}

    def walk(node: sympy.Expr) -> sympy.Expr:
        if node in memo:
            return memo[node]
        if not node.args:
            out = sympy.sympify(values[node]) if node in fixed else node
        elif node.is_Mul and _guard_spans_product(node, fixed, values):
            out = node.xreplace({symbol: sympy.sympify(value) for symbol, value in values.items()})
        else:
            args = tuple(walk(arg) for arg in node.args)
            out = node if args == node.args else node.func(*args)
            if node.free_symbols <= fixed and not _finite_real(out):  # undefined here: the guarded value
                out = _guarded(node, names, inputs, out)
        memo[node] = out
        return out

    return walk(expr)


def _guard_spans_product(node: sympy.Mul, fixed, values) -> bool:
    """A zero constant denominator beside a varying one: the numerics guard their product, not each factor."""
    denominators = [f.base for f in node.args if f.is_Pow and f.exp.is_negative]
    constant = [d for d in denominators if d.free_symbols <= fixed]
    return len(constant) < len(denominators) and any(d.xreplace(values) == 0 for d in constant)


def _finite_real(value: sympy.Expr) -> bool:
    return bool(value.is_number and value.is_extended_real and value.is_finite)


def _guarded(node: sympy.Expr, names, inputs, exact: sympy.Expr) -> sympy.Expr:
    """The numerics' value of a constant subexpression (``exact`` when even they give none)."""
    try:
        with np.errstate(all="ignore"):
            guarded = float(np.asarray(Program(node, names, NUMPY)(inputs)))
    except (LoweringError, TypeError, ValueError):
        return exact
    return sympy.Float(guarded) if np.isfinite(guarded) else exact
