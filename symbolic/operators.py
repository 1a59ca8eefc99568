"""The operator table: the one place that defines the 21 primitives of the search space.

Every printer, the parser, the random generator, the light-tree evaluator and the JAX
lowering read this table; nothing else defines what an operator means. Each entry gives
the operator's name (as written in infix text), arity, the forms it may appear in (as the
CSE-Autoloss authors restricted them), its SymPy construction, the SymPy class that heads
its node when it has one of its own, its LaTeX, its name in the authors' prefix format,
and one numerical definition ``compute(backend, *args)`` shared by the NumPy and JAX
backends.

Guards live here, in the numerics, not in the mathematics: ``log`` floors its argument,
``/`` keeps the denominator away from 0, ``sqrt`` floors at a tiny positive value and
``exp`` caps its argument, so each primitive gives finite values and finite gradients from
0 up to inputs of magnitude 1e6 (logits of ±100, areas of 1e5 px² and what simple
compositions make of them); a composition can still overflow, which verification catches.
Where a composition is numerically fragile but has a stable equivalent, the entry names
it (``stable_log``: log σ(a) and log softmax(a)).

erfc: the authors' release has no complement S-curve; ours is ``erfc_s(x) = 1 − erf_s(x)``,
the complement of the *scaled* erf (so it stays in (0, 1) with slope −1/4 at 0, like the
other S-curves). Since erf_s is odd around 1/2 it equals erf_s(−x), which is how it is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import sympy

from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.vector_ops import Dot, Softmax

LOG_FLOOR = 1e-20  # log(a) = log(max(a, 1e-20)): the authors' eps, and finite in float32
DIV_FLOOR = 1e-12  # |denominator| ≥ 1e-12, keeping its sign
SQRT_FLOOR = 1e-30  # sqrt(a) = sqrt(max(a, 1e-30)): gradient ≤ 5e14 instead of ∞ at 0
EXP_CAP = 80.0  # exp(min(a, 80)) ≈ 5.5e34 < float32 max 3.4e38

SOFTMAX_FORM, SIGMOID_FORM, REG_FORM = "softmax", "sigmoid", "reg"
ALL_FORMS = frozenset({SOFTMAX_FORM, SIGMOID_FORM, REG_FORM})
CLASSIFICATION_FORMS = frozenset({SOFTMAX_FORM, SIGMOID_FORM})

NUMPY = SimpleNamespace(
    name="numpy",
    xp=np,
    erf=scipy.special.erf,
    sigmoid=scipy.special.expit,
    log_sigmoid=scipy.special.log_expit,
    softmax=scipy.special.softmax,
    log_softmax=scipy.special.log_softmax,
)
JAX = SimpleNamespace(
    name="jax",
    xp=jnp,
    erf=jax.scipy.special.erf,
    sigmoid=jax.nn.sigmoid,
    log_sigmoid=jax.nn.log_sigmoid,
    softmax=jax.nn.softmax,
    log_softmax=jax.nn.log_softmax,
)
BACKENDS = {"numpy": NUMPY, "jax": JAX}


@dataclasses.dataclass(frozen=True)
class Operator:
    """One primitive of the search space."""

    name: str  # infix name ("sigmoid") or symbol ("+")
    arity: int
    prefix: str  # the authors' prefix-format name ("Sig")
    forms: frozenset[str]
    build: Callable[..., sympy.Expr]  # SymPy construction from argument expressions
    compute: Callable[..., object]  # compute(backend, *args): guarded numerics
    head: type | None = None  # SymPy class heading this operator's node, if it has its own
    latex: str | None = None  # LaTeX template over {0}, {1}, for operators with a head
    stable_log: Callable[..., object] | None = None  # stable log(op(a)), e.g. log_sigmoid

    def evaluate(self, backend: SimpleNamespace, *args):
        """Apply the operator to arrays of ``backend`` ("numpy" or "jax" namespace)."""
        return self.compute(backend, *args)


def _safe_log(B, a):
    return B.xp.log(B.xp.where(a > LOG_FLOOR, a, LOG_FLOOR))


def _safe_div(B, a, b):
    xp = B.xp
    safe = xp.where(xp.abs(b) > DIV_FLOOR, b, xp.copysign(DIV_FLOOR, b))  # −0.0 keeps its sign
    return a / safe


def _safe_sqrt(B, a):
    return B.xp.sqrt(B.xp.where(a > SQRT_FLOOR, a, SQRT_FLOOR))


def _scaled_erf(B, a):
    return (B.erf(np.sqrt(np.pi) * a / 4) + 1) / 2


def _scaled_gd(B, a):
    return (4 / np.pi * B.xp.arctan(B.xp.tanh(np.pi * a / 8)) + 1) / 2


def _scaled_alf(B, a):
    # h/√(1+h²) overflows for huge h; write it as sign(h)/√(1+1/h²) there. Both branches
    # see only safe values so neither leaks a NaN gradient through the where.
    xp = B.xp
    h = a / 2
    big = xp.abs(h) > 1
    h_small = xp.where(big, 0.0, h)
    h_big = xp.where(big, h, 1.0)
    ratio = xp.where(big, xp.sign(h_big) / xp.sqrt(1 + 1 / h_big**2), h_small / xp.sqrt(1 + h_small**2))
    return (ratio + 1) / 2


def _relu(B, a):
    return B.xp.where(a > 0, a, 0.0)  # +0.0, never -0.0: it may become a denominator


def _dot(B, a, b):
    return B.xp.sum(a * b, axis=-1, keepdims=True)


def _entry(name, arity, prefix, forms, build, compute, head=None, latex=None, stable_log=None):
    return Operator(name, arity, prefix, frozenset(forms), build, compute, head, latex, stable_log)


_CLASSIFICATION = CLASSIFICATION_FORMS
_SOFTMAX_ONLY = {SOFTMAX_FORM}

OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        # unary
        _entry("neg", 1, "Neg", ALL_FORMS, lambda a: -a, lambda B, a: -a),
        _entry("exp", 1, "Exp", ALL_FORMS, sympy.exp, lambda B, a: B.xp.exp(B.xp.minimum(a, EXP_CAP)),
               head=sympy.exp, latex=r"e^{{{0}}}"),
        _entry("log", 1, "Log", ALL_FORMS, sympy.log, _safe_log,
               head=sympy.log, latex=r"\log{{\left({0}\right)}}"),
        _entry("abs", 1, "Abs", ALL_FORMS, sympy.Abs, lambda B, a: B.xp.abs(a),
               head=sympy.Abs, latex=r"\left|{0}\right|"),
        _entry("sqrt", 1, "Sqrt", ALL_FORMS, sympy.sqrt, _safe_sqrt),
        _entry("softmax", 1, "Softmax", _SOFTMAX_ONLY, Softmax, lambda B, a: B.softmax(a, axis=-1),
               head=Softmax, latex=r"\operatorname{{softmax}}\left({0}\right)",
               stable_log=lambda B, a: B.log_softmax(a, axis=-1)),
        _entry("softplus", 1, "Softplus", ALL_FORMS, Softplus, lambda B, a: B.xp.logaddexp(0.0, a),
               head=Softplus, latex=r"\operatorname{{softplus}}\left({0}\right)"),
        _entry("sigmoid", 1, "Sig", ALL_FORMS, Sigmoid, lambda B, a: B.sigmoid(a),
               head=Sigmoid, latex=r"\sigma\left({0}\right)",
               stable_log=lambda B, a: B.log_sigmoid(a)),
        _entry("gd_s", 1, "Sgdf", _CLASSIFICATION, ScaledGd, _scaled_gd,
               head=ScaledGd, latex=r"\operatorname{{gd}}_s\left({0}\right)"),
        _entry("alf_s", 1, "Salf", _CLASSIFICATION, ScaledAlf, _scaled_alf,
               head=ScaledAlf, latex=r"\operatorname{{alf}}_s\left({0}\right)"),
        _entry("erf_s", 1, "Serf", _CLASSIFICATION, ScaledErf, _scaled_erf,
               head=ScaledErf, latex=r"\operatorname{{erf}}_s\left({0}\right)"),
        _entry("erfc_s", 1, "Serfc", _CLASSIFICATION, lambda a: ScaledErf(-a),
               lambda B, a: _scaled_erf(B, -a)),
        _entry("tanh", 1, "Tanh", ALL_FORMS, sympy.tanh, lambda B, a: B.xp.tanh(a),
               head=sympy.tanh, latex=r"\tanh{{\left({0}\right)}}"),
        _entry("relu", 1, "Relu", ALL_FORMS, Relu, _relu,
               head=Relu, latex=r"\operatorname{{relu}}\left({0}\right)"),
        _entry("sin", 1, "Sin", ALL_FORMS, sympy.sin, lambda B, a: B.xp.sin(a),
               head=sympy.sin, latex=r"\sin{{\left({0}\right)}}"),
        _entry("cos", 1, "Cos", ALL_FORMS, sympy.cos, lambda B, a: B.xp.cos(a),
               head=sympy.cos, latex=r"\cos{{\left({0}\right)}}"),
        # binary
        _entry("add", 2, "Add", ALL_FORMS, lambda a, b: a + b, lambda B, a, b: a + b),
        _entry("sub", 2, "Sub", ALL_FORMS, lambda a, b: a - b, lambda B, a, b: a - b),
        _entry("mul", 2, "Mul", ALL_FORMS, lambda a, b: a * b, lambda B, a, b: a * b),
        _entry("div", 2, "Div", ALL_FORMS, lambda a, b: a / b, _safe_div),
        _entry("dot", 2, "Dot", _SOFTMAX_ONLY, Dot, _dot,
               head=Dot, latex=r"\left\langle {0}, {1} \right\rangle"),
    ]
}

CONSTANTS: tuple[int, ...] = (1, 2, 3)
BY_PREFIX: dict[str, Operator] = {op.prefix: op for op in OPERATORS.values()}
BY_HEAD: dict[type, Operator] = {op.head: op for op in OPERATORS.values() if op.head is not None}


def operators_for(form: str) -> tuple[Operator, ...]:
    """The operators a loss of ``form`` may use, in table order."""
    return tuple(op for op in OPERATORS.values() if form in op.forms)
