"""SymPy classes for the primitives SymPy lacks: softplus, relu, σ and the scaled S-curves.

Each class knows its derivative (so CPV can differentiate candidates), its sign and range
(so SymPy's assumption system can simplify ``Abs(sigmoid(x))`` and prove derivative signs),
and its definition in elementary functions (``definition``), which is used for numerical
evaluation with ``evalf`` and for rewriting.

The scaled S-curves are those of the CSE-Autoloss release: each maps the real line onto
(0, 1) with value 1/2 and slope 1/4 at 0, like σ, so they are interchangeable in a formula:

    erf_s(x) = (erf(√π·x/4) + 1)/2
    gd_s(x)  = ((4/π)·atan(tanh(π·x/8)) + 1)/2
    alf_s(x) = ((x/2)/√(1 + (x/2)²) + 1)/2

All of them are odd around 1/2: s(−x) = 1 − s(x). The canonical form uses that identity
(see ``symbolic.canonical``), which is also why erfc needs no class of its own:
erfc_s(x) := 1 − erf_s(x) = erf_s(−x).
"""

from __future__ import annotations

import threading

import mpmath
import sympy
from sympy import Rational

_THREAD = threading.local()


def _thread_context() -> mpmath.MPContext:
    """This thread's own mpmath context."""
    context = getattr(_THREAD, "mpmath", None)
    if context is None:
        context = _THREAD.mpmath = mpmath.MPContext()
    return context


class DefinedFunction(sympy.Function):
    """A unary function with an elementary ``definition`` and a stable numerical evaluation.

    ``evalf`` does not go through the definition: (erf(t) + 1)/2 cancels catastrophically
    for negative t, and SymPy's automatic evaluation relies on ``evalf`` to decide whether a
    constant is 0 (cos(erf_s(−e²)) would become cos(0) = 1). Each class computes its value
    with ``mpmath`` in a form free of cancellation, with guard digits, in a context of its
    thread's own (mpmath's global context is shared by all threads, and its precision is
    restored only if nothing interrupts the computation, see ``symbolic.time_budget``).
    """

    nargs = 1
    GUARD_BITS = 30

    @classmethod
    def definition(cls, a: sympy.Expr) -> sympy.Expr:
        """The function applied to ``a``, written with SymPy's elementary functions."""
        raise NotImplementedError

    @staticmethod
    def mp_value(mp: mpmath.MPContext, a: mpmath.mpf) -> mpmath.mpf:
        """The function of a real number ``a`` of the context ``mp``, free of cancellation."""
        raise NotImplementedError

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec + self.GUARD_BITS)
        if arg is None or not arg.is_Float:
            return None
        mp = _thread_context()
        mp.prec = prec + self.GUARD_BITS
        value = self.mp_value(mp, mp.mpf(arg._mpf_))
        return sympy.Float._new(value._mpf_, prec)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real



class SCurve(DefinedFunction):
    """An S-curve s: R → (0, 1) with s(0) = 1/2, s'(0) = 1/4 and s(−x) = 1 − s(x)."""

    @classmethod
    def eval(cls, a):
        if a.is_zero:
            return Rational(1, 2)
        return None

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_finite(self):
        return True if self.args[0].is_extended_real else None


class Sigmoid(SCurve):
    """The logistic function σ(x) = 1/(1 + e^(−x))."""

    @classmethod
    def definition(cls, a):
        return 1 / (1 + sympy.exp(-a))

    @staticmethod
    def mp_value(mp, a):
        return 1 / (1 + mp.exp(-a))

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return self.definition(a)


class ScaledErf(SCurve):
    """erf_s(x) = (erf(√π·x/4) + 1)/2, the authors' ``Serf``."""

    @classmethod
    def definition(cls, a):
        return (sympy.erf(sympy.sqrt(sympy.pi) * a / 4) + 1) / 2

    @staticmethod
    def mp_value(mp, a):
        return mp.erfc(-mp.sqrt(mp.pi) * a / 4) / 2

    def fdiff(self, argindex=1):
        a = self.args[0]
        return sympy.exp(-sympy.pi * a**2 / 16) / 4


class ScaledGd(SCurve):
    """gd_s(x) = ((4/π)·atan(tanh(π·x/8)) + 1)/2, the scaled Gudermannian, the authors' ``Sgdf``."""

    @classmethod
    def definition(cls, a):
        return (4 / sympy.pi * sympy.atan(sympy.tanh(sympy.pi * a / 8)) + 1) / 2

    @staticmethod
    def mp_value(mp, a):
        return 2 / mp.pi * mp.atan(mp.exp(mp.pi * a / 4))  # = the definition, via gd

    def fdiff(self, argindex=1):
        t = sympy.tanh(sympy.pi * self.args[0] / 8)
        return (1 - t**2) / (4 * (1 + t**2))


class ScaledAlf(SCurve):
    """alf_s(x) = ((x/2)/√(1 + (x/2)²) + 1)/2, the scaled algebraic S-curve, the authors' ``Salf``."""

    @classmethod
    def definition(cls, a):
        h = a / 2
        return (h / sympy.sqrt(1 + h**2) + 1) / 2

    @staticmethod
    def mp_value(mp, a):
        h = a / 2
        s = mp.sqrt(1 + h * h)
        return 1 / (2 * s * (s - h)) if h < 0 else (s + h) / (2 * s)  # (s + h)(s − h) = 1

    def fdiff(self, argindex=1):
        return (1 + self.args[0] ** 2 / 4) ** Rational(-3, 2) / 4


class Softplus(DefinedFunction):
    """softplus(x) = log(1 + e^x), positive, with derivative σ(x)."""

    @classmethod
    def eval(cls, a):
        if a.is_zero:
            return sympy.log(2)
        return None

    @classmethod
    def definition(cls, a):
        return sympy.log(1 + sympy.exp(a))

    @staticmethod
    def mp_value(mp, a):
        return mp.log1p(mp.exp(a))

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None


class Relu(DefinedFunction):
    """relu(x) = max(x, 0); the identity on non-negative arguments and 0 on non-positive ones."""

    @classmethod
    def eval(cls, a):
        if a.is_nonnegative:
            return a
        if a.is_nonpositive:
            return sympy.S.Zero
        return None

    @classmethod
    def definition(cls, a):
        return sympy.Max(a, 0)

    @staticmethod
    def mp_value(mp, a):
        return a if a > 0 else mp.zero

    def fdiff(self, argindex=1):
        return sympy.Heaviside(self.args[0], 0)

    def _eval_is_nonnegative(self):
        return True if self.args[0].is_extended_real else None


S_CURVES: tuple[type[SCurve], ...] = (Sigmoid, ScaledErf, ScaledGd, ScaledAlf)
