"""Rational sign analysis: the sign of a rational function from the signs of its factors.

Bounding a rational function as a whole loses to cancellation between its terms (the
slope of CSE-Autoloss-B's regression loss along a translation is a quotient of degree-3
polynomials in the path parameter and the box area). Here its numerator and denominator
are factored (SymPy's ``factor_list``) and each factor is decided alone: a factor that is
polynomial in variables running to +∞ (from a bound ≥ 0, such as a box area) keeps the sign
its coefficients share, each a polynomial in the bounded variables decided on their box by
the caller's ``decide`` (``sign_proofs``: assumptions, then branch and bound), so the proof
holds for every value of the unbounded ones — every scale; a root of such a variable, √A,
is first made polynomial by the increasing substitution A = s². Even powers are ≥ 0; a
denominator factor must be strictly signed. The analysis proves or stays undecided; it
never refutes (branch and bound finds counterexamples).
"""

from __future__ import annotations

import math

import sympy

from symbolic.cpv.proof_worker import clock
from symbolic.cpv.verdict import Proof, describe_range

RATIONAL_MAX_OPS = 400  # together/factor of larger rational functions can take seconds


def _factor_sign(factor: sympy.Expr, box, deadline, decide) -> str | None:
    """"positive", "nonnegative", "negative", "nonpositive" for one polynomial factor on ``box``, or None.

    A polynomial in the variables that run to +∞ (from a bound ≥ 0) keeps the sign its
    coefficients share — each a polynomial in the bounded variables, decided on their box —
    and is strict when its constant coefficient is; else the factor is bounded as a whole.
    """
    for sign in ("positive", "negative", "nonnegative", "nonpositive"):  # SymPy knows A > 0 for A positive
        if getattr(factor, f"is_{sign}"):
            return sign
    unbounded = [v for v in factor.free_symbols if box[v][1] == math.inf and box[v][0] >= 0]
    bounded = {v: box[v] for v in box if v not in unbounded}
    if unbounded and factor.is_polynomial(*unbounded):  # else (a root of a sum) it is bounded as a whole
        poly = sympy.Poly(factor, *unbounded)
        constant = poly.coeff_monomial(1)
        coefficients = [c for c in poly.coeffs() if c != 0]
        for sign, strict in (("nonnegative", "positive"), ("nonpositive", "negative")):
            if all(decide(c if sign == "nonnegative" else -c, bounded, "nonnegative", deadline)
                   for c in coefficients):
                strictly = decide(constant if sign == "nonnegative" else -constant, bounded, "positive", deadline)
                return strict if strictly else sign
        return None
    for sign, flipped in (("positive", 1), ("negative", -1), ("nonnegative", 1), ("nonpositive", -1)):
        if decide(flipped * factor, box, "positive" if sign in ("positive", "negative") else "nonnegative",
                    deadline):
            return sign
    return None


def is_rational(expr: sympy.Expr) -> bool:
    """Only +, ×, rational powers and constants in the variables (constant function values allowed)."""
    return not any(f.free_symbols for f in expr.atoms(sympy.Function)) and not any(
        p.exp.free_symbols for p in expr.atoms(sympy.Pow))


def _integer_powers(expr: sympy.Expr, box: dict) -> tuple[sympy.Expr, dict]:
    """``expr`` and ``box`` with each variable ≥ 0 that appears under a root, say A^(1/k), written as s^k.

    s = A^(1/k) is increasing and maps [lo, hi] onto [lo^(1/k), hi^(1/k)], so a sign on the
    new box is the sign on the old one, and √A terms become polynomial in s.
    """
    for variable in list(box):
        lo, hi = box[variable]
        roots = [p.exp.q for p in expr.atoms(sympy.Pow) if p.base == variable and p.exp.is_Rational]
        k = math.lcm(*roots) if roots else 1
        if k == 1 or lo < 0 or not variable.is_positive:
            continue
        root = sympy.Symbol(f"{variable.name}_root{k}", positive=True)
        expr = expr.xreplace({variable: root**k})
        box = {(root if v == variable else v): ((lo ** (1 / k), hi ** (1 / k)) if v == variable else b)
               for v, b in box.items()}
    return expr, box


def prove_rational_sign(expr: sympy.Expr, box: dict, sign: str, deadline: float, *, decide) -> Proof:
    """The sign of a rational function from the signs of its numerator's and denominator's factors.

    Bounding each factor alone removes the cancellation between terms that defeats bounds
    on the whole; a factor polynomial in an unbounded variable is decided by its
    coefficients, so the proof holds for all its values (every scale, for an area).
    Denominator factors must be strictly signed; an even power of a factor is ≥ 0.
    """
    if not is_rational(expr) or not expr.free_symbols <= set(box) or sympy.count_ops(expr) > RATIONAL_MAX_OPS:
        return Proof.undecided("not a small rational function")
    domain = ", ".join(describe_range(v.name, *box[v]) for v in box)
    expr, box = _integer_powers(expr, box)
    numerator, denominator = sympy.fraction(sympy.together(expr))
    negative, strict = False, True
    for part, is_denominator in ((numerator, False), (denominator, True)):
        try:
            coefficient, factors = (part, []) if part.is_number else sympy.factor_list(part)
        except sympy.PolynomialError:
            return Proof.undecided("no factorization")
        if not coefficient.is_extended_real or coefficient == 0:
            return Proof.undecided(f"the constant factor {coefficient} has no sign")
        negative ^= bool(coefficient < 0)
        for factor, power in factors:
            if clock() > deadline:
                return Proof.undecided("", timed_out=True)
            found = _factor_sign(factor, box, deadline, decide)
            if power % 2 == 0:
                found = "positive" if found in ("positive", "negative") else "nonnegative"
            if found is None or (is_denominator and found not in ("positive", "negative")):
                return Proof.undecided(f"the sign of the factor {factor} is undecided")
            negative ^= found in ("negative", "nonpositive") and power % 2 == 1
            strict &= found in ("positive", "negative")
    holds = {"nonnegative": not negative, "nonpositive": negative, "positive": not negative and strict}[sign]
    if holds:
        return Proof("proved", "rational sign analysis (the signs of its factors)", domain)
    return Proof.undecided("the factors' signs give the other sign")
