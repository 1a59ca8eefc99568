"""Leading-term analysis at +∞ for the project's functions: fast limits of derivatives.

``leading_term(expr, x)`` describes how ``expr`` behaves as x → +∞ by its leading term

    c · exp(b·x² + a·x) · x^p · (log x)^q        (c ≠ 0; ``scale`` = (b, a, p, q))

or says it is identically 0 from some x on, or gives up (``None``). Terms are combined by
the rules of a Hardy field: a product adds scales; a sum keeps its largest scale, and gives
up when the largest terms could cancel; a function maps its argument's behaviour (σ(f) → 1
when f → +∞ and ~ e^f when f → −∞; softplus(f) ~ f or ~ e^f; erf_s(f) ~ e^(−πf²/16)/|f|
toward −∞; gd_s(f) ~ e^(πf/4); alf_s(f) ~ 1/f²; relu, |·|, sign by the argument's sign;
sin and cos of a divergent argument only as a bounded factor; a continuous function of an
argument whose leading term is unknown by the argument's limit, ``limit_by_continuity``;
e^(−f) with f growing faster than linearly below every scale). Where a coefficient is known
only by its sign (the constant factor of e^(f) when f = c·x + a bounded rest), it is
``None``; a parameter (ρ, w) is a constant whose sign may be unknown.

``resolve_kinks`` first replaces relu, |·|, sign and Heaviside by the branch they take from
some x on (their argument's sign there). A limit follows: 0 when the scale is negative
(lexicographically) or the term vanishes, the coefficient when the scale is 0, ±∞ when
positive. This is the first argument ``limits.gradient_limit`` tries; it takes microseconds
where SymPy's Gruntz algorithm can take seconds, and it is exact: every rule is a theorem
about the leading term.
"""

from __future__ import annotations

import dataclasses

import sympy

from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus

ZERO_SCALE = (0, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class Term:
    """c·exp(b·x² + a·x)·x^p·(log x)^q as x → +∞; ``coefficient`` None when only its sign is known."""

    sign: int  # of c: +1, −1, or 0 when unknown (a parameter such as ρ, which may even be 0)
    scale: tuple  # (b, a, p, q), SymPy numbers
    coefficient: sympy.Expr | None = None

    @property
    def tends_to(self) -> str:
        """"0", "constant" or "infinity"."""
        nonzero = [s for s in self.scale if s != 0]
        if not nonzero:
            return "constant"
        return "infinity" if nonzero[0] > 0 else "0"


VANISHES = "vanishes"  # identically 0 from some x on


def _constant(value: sympy.Expr) -> Term | str | None:
    """A value free of x: a number, or an expression in the parameters (its sign is then often unknown)."""
    if value == 0:
        return VANISHES
    if value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    sign = 1 if value.is_positive else -1 if value.is_negative else 0
    return Term(sign, ZERO_SCALE, value)


def _times(left: Term, right: Term) -> Term:
    known = left.coefficient is not None and right.coefficient is not None
    coefficient = left.coefficient * right.coefficient if known else None
    return Term(left.sign * right.sign, tuple(a + b for a, b in zip(left.scale, right.scale, strict=True)),
                coefficient)


def _power(term: Term, k: sympy.Expr) -> Term | None:
    if term.sign <= 0 and not k.is_integer:
        return None
    if term.sign == 0 and k < 0:
        return None  # a parameter that may be 0, divided by
    coefficient = None if term.coefficient is None else term.coefficient**k
    return Term(term.sign ** int(k) if k.is_integer else 1, tuple(k * s for s in term.scale), coefficient)


def _sum(terms: list) -> Term | str | None:
    terms = [t for t in terms if t != VANISHES]
    if any(t is None for t in terms):
        return None
    if not terms:
        return VANISHES
    top = max(t.scale for t in terms)
    leading = [t for t in terms if t.scale == top]
    if len(leading) == 1:
        return leading[0]
    if all(t.coefficient is not None for t in leading):
        total = sympy.Add(*(t.coefficient for t in leading))
        if total.is_zero is False and total.is_extended_real:
            return Term(1 if total.is_positive else -1 if total.is_negative else 0, top, total)
        return None  # the leading terms cancel (or might): the next order decides
    if len({t.sign for t in leading}) == 1 and leading[0].sign != 0:
        return Term(leading[0].sign, top, None)
    return None


def _exp(argument: sympy.Expr, x: sympy.Symbol) -> Term | None:
    """e^f for f = b·x² + a·x + (a part with a finite limit): its scale is (b, a, 0, 0)."""
    b = a = sympy.S.Zero
    rest = []
    for term in sympy.Add.make_args(sympy.expand(argument)):
        coefficient, power = term.as_coeff_exponent(x)
        if term.has(x) and power in (1, 2) and not coefficient.has(x) and coefficient.is_number:
            if power == 1:
                a += coefficient
            else:
                b += coefficient
        else:
            rest.append(term)
    rest = sympy.Add(*rest)
    if not rest.has(x):
        return Term(1, (b, a, 0, 0), sympy.exp(rest))
    tail = leading_term(rest, x)
    if tail is not None and tail != VANISHES and tail.tends_to == "infinity" and tail.sign < 0 and (
            b == 0 and tail.scale > (0, 0, 1, 0)):
        return Term(1, (-sympy.oo, 0, 0, 0), None)  # e^(−f), f faster than linear: below every e^(a·x)·x^p
    if tail is None or (tail != VANISHES and tail.tends_to == "infinity"):
        return None
    factor = sympy.S.One if tail == VANISHES or tail.tends_to == "0" else (
        None if tail.coefficient is None else sympy.exp(tail.coefficient))
    return Term(1, (b, a, 0, 0), factor)


def _side(term) -> int | None:
    """+1 if the function tends to +∞, −1 to −∞, else None."""
    if term is None or term == VANISHES or term.tends_to != "infinity" or term.sign == 0:
        return None
    return term.sign


def _function(node: sympy.Expr, x: sympy.Symbol) -> Term | str | None:
    f = node.args[0]
    inner = leading_term(f, x)
    if inner is None:  # a continuous function needs only its argument's limit, whatever the rate
        limit = limit_by_continuity(f, x, sympy.oo)
        if limit is None or isinstance(node, _KINKS + (sympy.log,)) or node.func(limit).is_zero is not False:
            return None
        return _constant(node.func(limit))
    side = _side(inner)
    limit = sympy.S.Zero if inner == VANISHES or inner.tends_to == "0" else (
        inner.coefficient if inner.tends_to == "constant" else None)
    if isinstance(node, sympy.exp):
        return _exp(f, x)
    if side is None and limit is None:
        return None  # a finite limit known only by its sign
    if side is None:  # a finite limit: continuous functions take their value there
        if isinstance(node, sympy.sign | sympy.Heaviside) and limit == 0:
            return None
        if isinstance(node, sympy.log) and limit == 0:
            return _log(inner)
        if isinstance(node, sympy.sin | sympy.tanh | sympy.atan | sympy.erf) and limit == 0:
            return inner  # ~ f (erf: times 2/√π, a positive factor)
        return _constant(node.func(limit))
    if isinstance(node, Sigmoid):
        return Term(1, ZERO_SCALE, sympy.S.One) if side > 0 else _exp(f, x)
    if isinstance(node, Softplus):
        return inner if side > 0 else _exp(f, x)
    if isinstance(node, ScaledErf):
        return Term(1, ZERO_SCALE, sympy.S.One) if side > 0 else leading_term(
            sympy.exp(-sympy.pi * f**2 / 16) / -f, x)
    if isinstance(node, ScaledGd):
        return Term(1, ZERO_SCALE, sympy.S.One) if side > 0 else _exp(sympy.pi * f / 4, x)
    if isinstance(node, ScaledAlf):
        return Term(1, ZERO_SCALE, sympy.S.One) if side > 0 else leading_term(1 / f**2, x)
    if isinstance(node, sympy.tanh | sympy.erf | sympy.sign):
        return Term(side, ZERO_SCALE, sympy.Integer(side))
    if isinstance(node, sympy.atan):
        return Term(side, ZERO_SCALE, side * sympy.pi / 2)
    if isinstance(node, sympy.Heaviside):
        return Term(1, ZERO_SCALE, sympy.S.One) if side > 0 else VANISHES
    if isinstance(node, Relu):
        return inner if side > 0 else VANISHES
    if isinstance(node, sympy.Abs):
        return Term(1, inner.scale, None if inner.coefficient is None else abs(inner.coefficient))
    if isinstance(node, sympy.log):
        return _log(inner) if side > 0 else None
    if isinstance(node, sympy.sin | sympy.cos):
        return Term(0, ZERO_SCALE, None)  # bounded, without a limit: enough beside a vanishing factor
    return None


def _log(inner: Term) -> Term | None:
    """log of a positive function tending to 0 or ∞: b·x², a·x or p·log x leads."""
    if inner.sign < 0:
        return None
    b, a, p, q = inner.scale
    for value, scale in ((b, (0, 0, 2, 0)), (a, (0, 0, 1, 0)), (p, (0, 0, 0, 1))):
        if value != 0:
            return Term(1 if value > 0 else -1, scale, value)
    return None


def elementary_form(node: sympy.Expr) -> sympy.Expr | None:
    """A project function written in elementary functions that expand at ±∞ (None for other nodes)."""
    a = node.args[0] if node.args else None
    if isinstance(node, Sigmoid):
        return 1 / (1 + sympy.exp(-a))
    if isinstance(node, Softplus):
        return sympy.log(1 + sympy.exp(a))
    if isinstance(node, ScaledErf):
        return (1 + sympy.erf(sympy.sqrt(sympy.pi) * a / 4)) / 2
    if isinstance(node, ScaledGd):
        return 2 / sympy.pi * sympy.atan(sympy.exp(sympy.pi * a / 4))
    if isinstance(node, ScaledAlf):
        return ScaledAlf.definition(a)
    return None


_KINKS = (sympy.sign, sympy.Heaviside)


def limit_by_continuity(expr: sympy.Expr, x: sympy.Symbol, end) -> sympy.Expr | None:
    """The value of ``expr`` at x = ``end`` in the extended reals, when every step is continuous there.

    Every subexpression is evaluated at the end point with SymPy's extended arithmetic
    (e^(−∞) = 0, σ(∞) = 1, atan(∞) = π/2, ...); an indeterminate form (0·∞, ∞ − ∞, 1/0)
    evaluates to nan or zoo, an oscillation (sin ∞) to a bound, and a step at its jump is
    refused, so a finite real result is the limit. None when there is no such value.
    """
    elementary = expr.replace(lambda n: elementary_form(n) is not None, elementary_form)
    for kink in elementary.atoms(*_KINKS):
        at_end = kink.args[0].xreplace({x: end})
        if not (at_end.is_number and at_end.is_extended_real and at_end.is_zero is False):
            return None
    value = elementary.xreplace({x: end})
    if value.is_number and value.is_extended_real and value.is_finite and not value.has(sympy.nan, sympy.zoo):
        return value
    return None


def leading_term(expr: sympy.Expr, x: sympy.Symbol) -> Term | str | None:
    """The leading term of ``expr`` as ``x`` → +∞, ``VANISHES``, or None when undecided."""
    if not expr.has(x):
        return _constant(expr)
    if expr == x:
        return Term(1, (0, 0, 1, 0), sympy.S.One)
    if expr.is_Add:
        return _sum([leading_term(term, x) for term in expr.args])
    if expr.is_Mul:
        out = Term(1, ZERO_SCALE, sympy.S.One)
        for factor in expr.args:
            term = leading_term(factor, x)
            if term is None or term == VANISHES:
                return term
            out = _times(out, term)
        return out
    if expr.is_Pow:
        base, exponent = expr.args
        if base is sympy.E:
            return _exp(exponent, x)
        if not exponent.is_Rational:
            return None
        term = leading_term(base, x)
        if term is None or term == VANISHES:
            return None if term == VANISHES and exponent < 0 else term
        return _power(term, exponent)
    if len(expr.args) == 1 or isinstance(expr, sympy.Heaviside):  # Heaviside(a, value at 0)
        return _function(expr, x)
    return None


def resolve_kinks(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr:
    """``expr`` with relu, |·|, sign and Heaviside replaced by the branch they take from some x on."""
    if not expr.args or not expr.has(x):
        return expr
    args = tuple(resolve_kinks(arg, x) for arg in expr.args)
    node = expr.func(*args) if args != expr.args else expr
    if not isinstance(node, Relu | sympy.Abs | sympy.sign | sympy.Heaviside):
        return node
    inner = leading_term(args[0], x)
    if inner is None or inner == VANISHES or inner.sign == 0 or (inner.tends_to == "0" and not isinstance(
            node, Relu | sympy.Abs)):
        return node
    side = inner.sign
    if isinstance(node, Relu):
        return args[0] if side > 0 else sympy.S.Zero
    if isinstance(node, sympy.Abs):
        return side * args[0]
    if isinstance(node, sympy.sign):
        return sympy.Integer(side)
    return sympy.Integer(int(side > 0))


def limit_at_infinity(expr: sympy.Expr, x: sympy.Symbol, direction: int) -> sympy.Expr | None:
    """lim ``expr`` as ``x`` → ±∞ by its leading term: a number, ±oo, or None (undecided)."""
    if direction < 0:
        expr = expr.xreplace({x: -x})
    term = leading_term(resolve_kinks(expr, x), x)
    if term is None or term != VANISHES and not all(isinstance(s, int) or s.is_extended_real for s in term.scale):
        return None  # an exponent SymPy could not settle (nan from ∞ − ∞): undecided
    if term == VANISHES or term.tends_to == "0":
        return sympy.S.Zero
    if term.tends_to == "infinity":
        return term.sign * sympy.oo
    return term.coefficient
