"""The operator table: the one place that defines the 21 primitives of the search space.

Every printer, the parser, the random generator, the light-tree evaluator, the JAX lowering
and the exported JAX and PyTorch modules read this table; nothing else defines what an
operator means. Each entry gives the operator's name (as written in infix text), arity, the
forms it may appear in (as the CSE-Autoloss authors restricted them), its SymPy construction,
the SymPy class that heads its node when it has one of its own, its LaTeX, its name in the
authors' prefix format, and its numerics ``compute(backend, *args)``: a guarded primitive of
``symbolic.primitives``, written once over an array backend (``symbolic.backends``: NumPy and
JAX in process, torch in the exported modules). Where a composition is numerically fragile
but has a stable equivalent, the entry names it (``stable_log``: log σ(a) and log softmax(a)).

erfc: the authors' release has no complement S-curve; ours is ``erfc_s(x) = 1 − erf_s(x)``,
the complement of the *scaled* erf (so it stays in (0, 1) with slope −1/4 at 0, like the
other S-curves). Since erf_s is odd around 1/2 it equals erf_s(−x), which is how it is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import sympy

from symbolic import primitives as P
from symbolic.backends import JaxArrays, NumpyArrays
from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.primitives import DIV_FLOOR, EXP_CAP, LOG_FLOOR, SQRT_FLOOR  # noqa: F401 - re-exported
from symbolic.vector_ops import Dot, Softmax

SOFTMAX_FORM, SIGMOID_FORM, REG_FORM = "softmax", "sigmoid", "reg"
ALL_FORMS = frozenset({SOFTMAX_FORM, SIGMOID_FORM, REG_FORM})
CLASSIFICATION_FORMS = frozenset({SOFTMAX_FORM, SIGMOID_FORM})

NUMPY = NumpyArrays
JAX = JaxArrays
BACKENDS = {"numpy": NUMPY, "jax": JAX}


@dataclasses.dataclass(frozen=True)
class Operator:
    """One primitive of the search space."""

    name: str  # infix name ("sigmoid") or symbol ("+")
    arity: int
    prefix: str  # the authors' prefix-format name ("Sig")
    forms: frozenset[str]
    build: Callable[..., sympy.Expr]  # SymPy construction from argument expressions
    compute: Callable[..., object]  # compute(backend, *args): a guarded primitive of symbolic.primitives
    head: type | None = None  # SymPy class heading this operator's node, if it has its own
    latex: str | None = None  # LaTeX template over {0}, {1}, for operators with a head
    stable_log: Callable[..., object] | None = None  # stable log(op(a)), a primitive, e.g. log_sigmoid

    def evaluate(self, backend, *args):
        """Apply the operator to arrays of ``backend`` (``NUMPY`` or ``JAX``)."""
        return self.compute(backend, *args)


def _entry(name, arity, prefix, forms, build, compute, head=None, latex=None, stable_log=None):
    return Operator(name, arity, prefix, frozenset(forms), build, compute, head, latex, stable_log)


_CLASSIFICATION = CLASSIFICATION_FORMS
_SOFTMAX_ONLY = {SOFTMAX_FORM}

OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in [
        # unary
        _entry("neg", 1, "Neg", ALL_FORMS, lambda a: -a, P.negate),
        _entry("exp", 1, "Exp", ALL_FORMS, sympy.exp, P.capped_exp, head=sympy.exp, latex=r"e^{{{0}}}"),
        _entry("log", 1, "Log", ALL_FORMS, sympy.log, P.safe_log,
               head=sympy.log, latex=r"\log{{\left({0}\right)}}"),
        _entry("abs", 1, "Abs", ALL_FORMS, sympy.Abs, P.absolute, head=sympy.Abs, latex=r"\left|{0}\right|"),
        _entry("sqrt", 1, "Sqrt", ALL_FORMS, sympy.sqrt, P.safe_sqrt),
        _entry("softmax", 1, "Softmax", _SOFTMAX_ONLY, Softmax, P.softmax,
               head=Softmax, latex=r"\operatorname{{softmax}}\left({0}\right)", stable_log=P.log_softmax),
        _entry("softplus", 1, "Softplus", ALL_FORMS, Softplus, P.softplus,
               head=Softplus, latex=r"\operatorname{{softplus}}\left({0}\right)"),
        _entry("sigmoid", 1, "Sig", ALL_FORMS, Sigmoid, P.sigmoid,
               head=Sigmoid, latex=r"\sigma\left({0}\right)", stable_log=P.log_sigmoid),
        _entry("gd_s", 1, "Sgdf", _CLASSIFICATION, ScaledGd, P.scaled_gd,
               head=ScaledGd, latex=r"\operatorname{{gd}}_s\left({0}\right)"),
        _entry("alf_s", 1, "Salf", _CLASSIFICATION, ScaledAlf, P.scaled_alf,
               head=ScaledAlf, latex=r"\operatorname{{alf}}_s\left({0}\right)"),
        _entry("erf_s", 1, "Serf", _CLASSIFICATION, ScaledErf, P.scaled_erf,
               head=ScaledErf, latex=r"\operatorname{{erf}}_s\left({0}\right)"),
        _entry("erfc_s", 1, "Serfc", _CLASSIFICATION, lambda a: ScaledErf(-a), P.scaled_erfc),
        _entry("tanh", 1, "Tanh", ALL_FORMS, sympy.tanh, P.tanh, head=sympy.tanh, latex=r"\tanh{{\left({0}\right)}}"),
        _entry("relu", 1, "Relu", ALL_FORMS, Relu, P.relu, head=Relu, latex=r"\operatorname{{relu}}\left({0}\right)"),
        _entry("sin", 1, "Sin", ALL_FORMS, sympy.sin, P.sine, head=sympy.sin, latex=r"\sin{{\left({0}\right)}}"),
        _entry("cos", 1, "Cos", ALL_FORMS, sympy.cos, P.cosine, head=sympy.cos, latex=r"\cos{{\left({0}\right)}}"),
        # binary
        _entry("add", 2, "Add", ALL_FORMS, lambda a, b: a + b, P.add),
        _entry("sub", 2, "Sub", ALL_FORMS, lambda a, b: a - b, P.subtract),
        _entry("mul", 2, "Mul", ALL_FORMS, lambda a, b: a * b, P.multiply),
        _entry("div", 2, "Div", ALL_FORMS, lambda a, b: a / b, P.safe_div),
        _entry("dot", 2, "Dot", _SOFTMAX_ONLY, Dot, P.dot, head=Dot, latex=r"\left\langle {0}, {1} \right\rangle"),
    ]
}

CONSTANTS: tuple[int, ...] = (1, 2, 3)
BY_PREFIX: dict[str, Operator] = {op.prefix: op for op in OPERATORS.values()}
BY_HEAD: dict[type, Operator] = {op.head: op for op in OPERATORS.values() if op.head is not None}


def operators_for(form: str) -> tuple[Operator, ...]:
    """The operators a loss of ``form`` may use, in table order."""
    return tuple(op for op in OPERATORS.values() if form in op.forms)
