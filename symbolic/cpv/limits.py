"""Convergence as a limit: the gradient tends to 0 as the logit tends to ±∞ toward the label.

``gradient_limit(derivative, x, direction)`` computes lim dL/dx as x → +∞ (direction +1)
or −∞ (−1; the derivative is then read at −x, so every step works at +∞), by the first of
three arguments that decides:

1. the leading-term analysis of ``asymptotics`` (microseconds, and most often enough);
2. ``asymptotics.limit_by_continuity``: the derivative evaluated at the end point itself in
   the extended reals (σ(∞) = 1, e^(−∞) = 0, ...), when no step meets an indeterminate form;
3. SymPy's Gruntz algorithm (``sympy.limit``) within the time given, after writing the
   project's functions in forms it can expand at +∞ (σ(a) = 1/(1 + e^(−a)), softplus(a) =
   log(1 + e^a), erf_s(a) = (1 + erf(√π·a/4))/2, gd_s(a) = (2/π)·atan(e^(π·a/4)) — the
   textbook atan(tanh(·)) sends Gruntz into complex logarithms — alf_s by its definition)
   and relu, |·|, sign and Heaviside by the branch they end on (``asymptotics.resolve_kinks``).

The result decides: 0 proves convergence at that end; a non-zero real limit refutes it when
the derivative's value far out (x = ±10⁴) agrees with it within 10%, a cross-check against
an error in any of the three; anything else (no limit, an oscillating bound, a symbol left
over) leaves it undecided. The call runs in the proof worker, whose time limit stops it.
"""

from __future__ import annotations

import sympy

from symbolic.cpv.asymptotics import elementary_form, limit_at_infinity, limit_by_continuity, resolve_kinks
from symbolic.cpv.proof_worker import ProofTimeout, time_limit
from symbolic.cpv.sign_proofs import rewrite_complements
from symbolic.cpv.verdict import Proof

FAR = 10_000  # where a non-zero limit is cross-checked numerically
_AGREE = 0.1


def rewrite_for_limit(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
    """``expr`` in elementary functions Gruntz can expand at +∞, kinks replaced by the branch they end on."""
    return resolve_kinks(expr, x).replace(lambda node: elementary_form(node) is not None, elementary_form)


def gradient_limit(derivative: sympy.Expr, x: sympy.Symbol, direction: int, deadline: float) -> Proof:
    """Whether ``derivative`` → 0 as ``x`` → ±∞ (``direction`` ±1): leading term, continuity, else SymPy's limit.

    SymPy's limit runs only until ``deadline`` (the proof worker stops it there).
    """
    where = f"{x.name} -> {'+' if direction > 0 else '-'}inf"
    oriented = derivative if direction > 0 else derivative.xreplace({x: -x})  # the end is now +∞
    value, argument = limit_at_infinity(rewrite_complements(oriented), x, 1), "leading-term analysis"
    if value is None:
        value = limit_by_continuity(oriented, x, sympy.oo)
        argument = "limit by continuity at the end of the extended real line"
    if value is None:
        argument = "SymPy limit (Gruntz)"
        try:
            with time_limit(deadline):
                value = sympy.limit(rewrite_for_limit(oriented, x), x, sympy.oo)
        except ProofTimeout:
            return Proof.undecided(f"limit {where}: SymPy's limit ran out of its time", timed_out=True)
        except (NotImplementedError, ValueError, TypeError, ZeroDivisionError, RecursionError) as error:
            return Proof.undecided(f"limit {where}: SymPy could not take it ({type(error).__name__})")
    if value == 0:
        return Proof("proved", argument, where, f"dL/d{x.name} -> 0 as {where}")
    if not (value.is_number and value.is_extended_real and value.is_finite):
        return Proof.undecided(f"limit {where}: {value}")
    far = derivative.subs(x, direction * FAR).evalf(30)
    if far.is_number and abs(far - value) <= _AGREE * abs(value):
        return Proof("refuted", argument, where, f"dL/d{x.name} -> {float(value):.4g}, not 0, as {where}",
                     {x.name: float(direction * FAR), f"dL/d{x.name}": float(far)})
    return Proof.undecided(f"limit {where}: {value} by {argument}, but the derivative at {x.name} = "
                           f"{direction * FAR} is {far}: they disagree")
