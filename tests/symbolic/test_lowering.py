"""Lowering to JAX: values match an independent NumPy evaluation, gradients match SymPy's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.forms import FORMS, e, i, u, w, x, y
from symbolic.functions import DefinedFunction, Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.lowering import LoweringError, Program, evaluate_numpy, lower_to_jax
from symbolic.operators import JAX
from symbolic.vector_ops import Dot, Softmax, reduce_classes

SIGMOID_EXPRESSIONS = [
    y * Softplus(-x) + (1 - y) * Softplus(x),
    -(1 + ScaledErf(Sigmoid(1 - y))) * w * sympy.log(Sigmoid(x)) + ScaledGd(x) * (Sigmoid(x) - w) ** 2,
    sympy.sqrt(sympy.Abs(x) + 1) / (ScaledAlf(x) + y) + Relu(x - 1) * sympy.tanh(x) ** 3,
    sympy.exp(-x**2 / 8) * sympy.cos(x) + x ** sympy.Rational(3, 2) * 0 + sympy.sin(w * x),
]
REG_EXPRESSIONS = [
    1 - i / u + (e - u) / e,
    (3 * e * u + 12 * e + 3 * i + 3 * u + 18) / (-3 * e * u + i * u + u**2 - 15 * e + 5 * i + 5 * u),
    sympy.log(u / (i + 1)) + sympy.sqrt(e - i),
]


def _reference(expr, names):
    """An independent evaluator: elementary definitions printed by SymPy's own NumPy printer."""
    elementary = expr.replace(lambda n: isinstance(n, DefinedFunction), lambda n: n.definition(n.args[0]))
    symbols = sorted(elementary.free_symbols, key=lambda s: s.name)
    f = sympy.lambdify(symbols, elementary, modules=["scipy", "numpy"])
    return lambda env: np.broadcast_to(f(*(env[s.name] for s in symbols)), np.shape(env[names[0]]))


@pytest.mark.parametrize("expr", SIGMOID_EXPRESSIONS + REG_EXPRESSIONS)
def test_lowered_values_match_numpy_evaluation_where_finite(expr):
    form = FORMS["reg" if expr.free_symbols & {i, u, e} else "sigmoid"]
    c = Candidate(expr, form)
    inputs = form.probe_inputs(200, seed=3)
    with np.errstate(all="ignore"):
        want = _reference(c.expr, form.input_names)(inputs)
    got = np.asarray(c.to_jax()(*(inputs[n] for n in form.input_names)))
    both = np.isfinite(want) & np.isfinite(got) & (np.abs(want) < 1e6)
    assert both.mean() > 0.9
    np.testing.assert_allclose(got[both], want[both], rtol=2e-4, atol=2e-4)
    np.testing.assert_allclose(evaluate_numpy(c.expr, form, inputs)[both], want[both], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("expr", SIGMOID_EXPRESSIONS + REG_EXPRESSIONS)
def test_jax_gradient_equals_the_lowered_sympy_derivative(expr):
    form = FORMS["reg" if expr.free_symbols & {i, u, e} else "sigmoid"]
    c = Candidate(expr, form)
    variable = form.required
    inputs = {k: jnp.asarray(v, jnp.float32) for k, v in form.probe_inputs(64, seed=5).items()}
    loss = c.to_jax()
    args = [inputs[n] for n in form.input_names]
    position = form.input_names.index(variable.name)
    autodiff = jax.grad(lambda *a: loss(*a).sum(), argnums=position)(*args)
    symbolic = Program(sympy.diff(c.expr, variable), form.input_names, JAX)(inputs)
    symbolic = jnp.broadcast_to(symbolic, autodiff.shape)
    ok = np.isfinite(symbolic) & (np.abs(symbolic) < 1e4)
    np.testing.assert_allclose(np.asarray(autodiff)[ok], np.asarray(symbolic)[ok], rtol=2e-3, atol=2e-3)


def test_softmax_form_lowering_matches_class_reduction():
    form = FORMS["softmax"]
    expr = -Dot(y * (1 + sympy.sin(w)), sympy.log(Softmax(x))) + Dot(Softmax(2 * x), w) / 3
    c = Candidate(expr, form)
    inputs = form.probe_inputs(32, seed=1)
    got = np.asarray(c.to_jax()(inputs["x"], inputs["y"], inputs["w"]))
    assert got.shape == (32,)
    reduced = reduce_classes(c.expr, 4, form.symbols)
    env = {f"{name}_{k}": inputs[name][:, k] for name in "xyw" for k in range(4)}
    want = _reference(reduced, ["x_0"])(env)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_stable_forms_are_used_at_extreme_logits():
    bce = Candidate(-(y * sympy.log(Sigmoid(x)) + (1 - y) * sympy.log(1 - Sigmoid(x))), "sigmoid").to_jax()
    values = bce(jnp.array([-100.0, 100.0, 100.0]), jnp.array([1.0, 0.0, 1.0]), jnp.zeros(3))
    np.testing.assert_allclose(values, [100.0, 100.0, 0.0], atol=1e-5)
    ce = Candidate(-Dot(y, sympy.log(Softmax(x))), "softmax").to_jax()
    value = ce(jnp.array([[-100.0, 100.0]]), jnp.array([[1.0, 0.0]]), jnp.ones((1, 2)))
    np.testing.assert_allclose(value, [200.0], rtol=1e-6)


def test_values_gradients_and_hessians_stay_finite_at_detector_extremes():
    logits = jnp.array([-100.0, -30.0, -1e-6, 0.0, 1e-6, 30.0, 100.0])
    for expr in SIGMOID_EXPRESSIONS[:2]:
        loss = Candidate(expr, "sigmoid").to_jax()
        for label, iou in ((1.0, 1.0), (1.0, 0.3), (0.0, 0.0)):
            def f(v, loss=loss, label=label, iou=iou):
                return loss(v, jnp.full_like(v, label), jnp.full_like(v, iou)).sum()

            assert np.isfinite(f(logits))
            assert np.all(np.isfinite(jax.grad(f)(logits)))
            assert np.all(np.isfinite(jax.hessian(f)(logits)))
    zero = jnp.zeros(3)
    for expr in REG_EXPRESSIONS[:2]:
        loss = Candidate(expr, "reg").to_jax()
        def f(a, loss=loss):
            return loss(a, a + 1e-3, a + 2e-3).sum()

        assert np.isfinite(loss(zero, zero, zero)).all()
        assert np.all(np.isfinite(jax.grad(f)(zero))) and np.all(np.isfinite(jax.hessian(f)(zero)))


def test_a_second_call_with_new_inputs_of_the_same_shape_does_not_recompile():
    loss = Candidate(SIGMOID_EXPRESSIONS[1], "sigmoid").to_jax()
    loss(jnp.ones(7), jnp.ones(7), jnp.ones(7))
    compiled = loss._cache_size()
    loss(jnp.zeros(7), jnp.ones(7), jnp.full(7, 0.5, jnp.float32))
    assert loss._cache_size() == compiled


def test_lowered_function_is_pure_and_composable():
    loss = Candidate(SIGMOID_EXPRESSIONS[0], "sigmoid").to_jax()
    batched = jax.vmap(loss)(jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.zeros((3, 4)))
    assert batched.shape == (3, 4)
    with pytest.raises(TypeError, match=r"takes \(x, y, w\)"):
        loss(jnp.ones(3), jnp.ones(3))


def test_unsupported_constructs_are_reported():
    with pytest.raises(LoweringError):
        lower_to_jax(sympy.gamma(x), FORMS["sigmoid"])(jnp.ones(2), jnp.ones(2), jnp.ones(2))


@pytest.mark.parametrize("form_name", sorted(FORMS))
def test_random_candidates_lower_to_the_same_values_as_their_numpy_evaluation(form_name):
    import random

    from symbolic.variation import random_candidate

    form = FORMS[form_name]
    rng = random.Random(17)
    inputs = form.probe_inputs(64, seed=2)
    compared = 0
    with jax.enable_x64(True):  # in float64 the guards act at the same points as in NumPy
        for _ in range(40):
            candidate = random_candidate(rng, form)
            want = evaluate_numpy(candidate.expr, form, inputs)
            got = np.asarray(lower_to_jax(candidate.expr, form)(*(inputs[n] for n in form.input_names)))
            ok = np.isfinite(want) & (np.abs(want) < 1e8)
            np.testing.assert_allclose(got[ok], want[ok], rtol=1e-9, atol=1e-9, err_msg=candidate.infix())
            compared += ok.sum()
    assert compared > 40 * 64 * 0.9
