"""Convergence as a limit: the gradient tends to 0 as the logit tends to ±∞ toward the label.

``gradient_limit(derivative, x, direction)`` computes lim dL/dx as x → +∞ (direction +1)
or −∞ (−1) with SymPy's Gruntz algorithm (``sympy.limit``), after writing the project's
functions in forms it can expand at that end:

* σ(a) = 1/(1 + e^(−a)), softplus(a) = log(1 + e^a), erf_s(a) = (1 + erf(√π·a/4))/2,
  gd_s(a) = (2/π)·atan(e^(π·a/4)) (the scaled Gudermannian; ``atan(tanh(·))``, the
  textbook form, sends Gruntz into complex logarithms), alf_s by its algebraic definition;
* relu, |·|, sign and Heaviside (from derivatives of relu and |·|) are resolved by the sign
  of their argument's own limit, which they keep from some point on; an argument tending to
  0 leaves the limit undecided.

First, in microseconds and most often enough, the leading-term analysis of ``asymptotics``;
then ``limit_by_continuity``, which evaluates the derivative at the end point itself in the
extended reals (σ(∞) = 1, e^(−∞) = 0, ...): when no step meets an indeterminate form, that
value is the limit. Then Gruntz, within the time left.

The result decides: 0 proves convergence at that end; a non-zero real limit refutes it when
the derivative's value far out (x = ±10⁴) agrees with it within 10%, a cross-check against
an error in SymPy; anything else (no limit, an oscillating bound, a symbol left over)
leaves it undecided. The call runs in the proof worker, whose time limit stops it.
"""

from __future__ import annotations

import sympy

from symbolic.cpv.asymptotics import elementary_form, limit_at_infinity, limit_by_continuity
from symbolic.cpv.proof_worker import ProofTimeout, time_limit
from symbolic.cpv.sign_proofs import rewrite_complements
from symbolic.cpv.verdict import Proof
from symbolic.functions import Relu

FAR = 10_000  # where a non-zero limit is cross-checked numerically
_AGREE = 0.1


class _Undecided(Exception):
    """A step the limit cannot be taken through."""


def _end_sign(argument: sympy.Expr, x: sympy.Symbol, end) -> int:
    """The sign an expression keeps from some x on: of its limit, which must not be 0."""
    value = sympy.limit(argument, x, end)
    if value.is_extended_positive:
        return 1
    if value.is_extended_negative:
        return -1
    raise _Undecided(f"the argument {argument} of a kink tends to {value}")


def rewrite_for_limit(expr: sympy.Expr, x: sympy.Symbol, end) -> sympy.Expr:
    """``expr`` in elementary functions Gruntz can expand at ``end``, kinks resolved by their side."""
    if not expr.args or not expr.has(x):
        return expr
    args = tuple(rewrite_for_limit(arg, x, end) for arg in expr.args)
    if isinstance(expr, Relu | sympy.Abs | sympy.sign | sympy.Heaviside):
        side = _end_sign(args[0], x, end)
        if isinstance(expr, Relu):
            return args[0] if side > 0 else sympy.S.Zero
        if isinstance(expr, sympy.Abs):
            return side * args[0]
        if isinstance(expr, sympy.sign):
            return sympy.Integer(side)
        return sympy.Integer(int(side > 0))
    node = expr.func(*args) if args != expr.args else expr
    elementary = elementary_form(node)
    return node if elementary is None else elementary


def gradient_limit(derivative: sympy.Expr, x: sympy.Symbol, direction: int, deadline: float) -> Proof:
    """Whether ``derivative`` → 0 as ``x`` → ±∞ (``direction`` ±1): by continuity at ±∞, else by SymPy's limit.

    SymPy's limit runs only until ``deadline`` (the proof worker stops it there).
    """
    end = sympy.oo if direction > 0 else -sympy.oo
    where = f"{x.name} -> {'+' if direction > 0 else '-'}inf"
    value = limit_at_infinity(rewrite_complements(derivative), x, direction)
    if value == 0:
        return Proof("proved", "leading-term analysis", where, f"dL/d{x.name} -> 0 as {where}")
    value = limit_by_continuity(derivative, x, end)
    if value == 0:
        return Proof("proved", "limit by continuity at the end of the extended real line", where,
                     f"dL/d{x.name} -> 0 as {where}")
    try:
        with time_limit(deadline):
            value = sympy.limit(rewrite_for_limit(derivative, x, end), x, end)
    except ProofTimeout:
        return Proof.undecided(f"limit {where}: SymPy's limit ran out of its time")
    except _Undecided as why:
        return Proof.undecided(f"limit {where}: {why}")
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError, RecursionError) as error:
        return Proof.undecided(f"limit {where}: SymPy could not take it ({type(error).__name__})")
    if value == 0:
        return Proof("proved", "SymPy limit (Gruntz)", where, f"dL/d{x.name} -> 0 as {where}")
    if not (value.is_number and value.is_extended_real and value.is_finite):
        return Proof.undecided(f"limit {where}: {value}")
    far = derivative.subs(x, direction * FAR).evalf(30)
    if far.is_number and abs(far - value) <= _AGREE * abs(value):
        return Proof("refuted", "SymPy limit (Gruntz)", where,
                     f"dL/d{x.name} -> {float(value):.4g}, not 0, as {where}",
                     {x.name: float(direction * FAR), f"dL/d{x.name}": float(far)})
    return Proof.undecided(f"limit {where}: SymPy gives {value}, the derivative at {x.name} = {direction * FAR} "
                           f"is {far}: they disagree")
