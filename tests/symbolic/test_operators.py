"""The operator table: every entry is complete, and its numerics agree with its mathematics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from symbolic.functions import DefinedFunction
from symbolic.operators import (
    BY_PREFIX,
    JAX,
    NUMPY,
    OPERATORS,
    REG_FORM,
    SIGMOID_FORM,
    SOFTMAX_FORM,
    operators_for,
)
from symbolic.vector_ops import Dot, Softmax

AUTHORS_PREFIX = {"Neg", "Exp", "Log", "Abs", "Sqrt", "Softmax", "Softplus", "Sig", "Sgdf", "Salf", "Serf",
                  "Tanh", "Relu", "Sin", "Cos", "Add", "Sub", "Mul", "Div", "Dot"}
REG_PREFIX = {"Add", "Sub", "Mul", "Div", "Neg", "Log", "Exp", "Abs", "Sqrt", "Softplus", "Sig", "Tanh",
              "Relu", "Sin", "Cos"}


def test_table_has_the_21_primitives_with_the_authors_names():
    assert len(OPERATORS) == 21
    assert sum(op.arity == 1 for op in OPERATORS.values()) == 16
    assert sum(op.arity == 2 for op in OPERATORS.values()) == 5
    assert set(BY_PREFIX) == AUTHORS_PREFIX | {"Serfc"}


def test_forms_use_the_authors_operator_sets():
    assert {op.prefix for op in operators_for(SOFTMAX_FORM)} == set(BY_PREFIX)
    assert {op.prefix for op in operators_for(SIGMOID_FORM)} == set(BY_PREFIX) - {"Dot", "Softmax"}
    assert {op.prefix for op in operators_for(REG_FORM)} == REG_PREFIX


def _elementary(expr):
    """Replace our function classes by their elementary definitions (an independent path)."""
    return expr.replace(lambda e: isinstance(e, DefinedFunction), lambda e: e.definition(e.args[0]))


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_entry_numerics_match_its_sympy_construction(name):
    op = OPERATORS[name]
    rng = np.random.default_rng(0)
    if name in ("softmax", "dot"):
        a, b = rng.normal(size=(2, 5, 3))
        got = op.evaluate(NUMPY, *([a, b][: op.arity]))
        want = np.exp(a) / np.exp(a).sum(-1, keepdims=True) if name == "softmax" else (a * b).sum(-1, keepdims=True)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        return
    low = 0.1 if name in ("log", "sqrt") else -4.0
    args = [rng.uniform(low, 4.0, 50) for _ in range(op.arity)]
    symbols = sympy.symbols(f"a0:{op.arity}", real=True)
    reference = sympy.lambdify(symbols, _elementary(op.build(*symbols)), modules=["scipy", "numpy"])
    np.testing.assert_allclose(op.evaluate(NUMPY, *args), reference(*args), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.evaluate(JAX, *map(jnp.asarray, args)), reference(*args), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_entry_latex_and_head_are_consistent(name):
    op = OPERATORS[name]
    built = op.build(*sympy.symbols(f"a0:{op.arity}", real=True))
    if op.head is not None:
        assert isinstance(built, op.head)
        assert op.latex.format(*["a"] * op.arity)
    else:
        assert op.latex is None


EXTREMES = jnp.array([-1e6, -100.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 100.0, 1e6])


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_entry_values_and_gradients_are_finite_from_zero_to_large_inputs(name):
    op = OPERATORS[name]
    if name in ("softmax", "dot"):
        def f(a):
            v = op.evaluate(JAX, a[None, :], *([a[None, ::-1]] if op.arity == 2 else []))
            return v.sum()
        assert np.isfinite(f(EXTREMES / 1e28))
        assert np.all(np.isfinite(jax.grad(f)(EXTREMES / 1e28)))
        return
    for other in (0.0, 1.0, -1e6):
        def f(a, other=other):
            return op.evaluate(JAX, a, *([jnp.full_like(a, other)] if op.arity == 2 else []))
        values = f(EXTREMES)
        grads = jax.vmap(jax.grad(lambda a: f(a)))(EXTREMES)
        assert np.all(np.isfinite(values)), (name, other, values)
        assert np.all(np.isfinite(grads)), (name, other, grads)


def test_vector_entries_have_their_own_sympy_classes():
    assert OPERATORS["softmax"].head is Softmax
    assert OPERATORS["dot"].head is Dot
    assert OPERATORS["log"].stable_log is None
    assert OPERATORS["sigmoid"].stable_log is not None and OPERATORS["softmax"].stable_log is not None


@pytest.mark.parametrize("name", ["erf_s", "erfc_s", "gd_s", "alf_s", "sigmoid"])
def test_s_curves_keep_their_relative_accuracy_in_the_tails(name):
    """No cancellation against 1: far out, s(a) is tiny but still accurate (erf_s(-40) is 1e-136, not 0)."""
    op = OPERATORS[name]
    a = np.array([-1e3, -200.0, -40.0, -8.0, -1.0, 0.0, 1.0, 8.0, 40.0, 200.0, 1e3])
    symbol = sympy.Symbol("a", real=True)
    built = op.build(symbol)
    want = np.array([float(built.subs(symbol, sympy.Float(v, 30)).evalf(30)) for v in a])
    np.testing.assert_allclose(op.evaluate(NUMPY, a), want, rtol=1e-13, atol=0)
    with jax.enable_x64(True):
        np.testing.assert_allclose(op.evaluate(JAX, jnp.asarray(a)), want, rtol=1e-13, atol=0)
