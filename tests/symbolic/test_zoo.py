"""The known-loss zoo: every entry parses, and the published losses equal the paper's formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from symbolic.forms import FORMS, e, i, u, w, x, y
from symbolic.functions import ScaledErf, ScaledGd, Sigmoid
from symbolic.vector_ops import Dot, Softmax
from symbolic.zoo import KNOWN_LOSSES, known_loss


def _equal_on_probes(a, b, form):
    """Equal as functions on the form's probe inputs (SymPy cannot always prove it)."""
    inputs = FORMS[form].probe_inputs(256, seed=11)
    from symbolic.lowering import evaluate_numpy

    va, vb = evaluate_numpy(a, FORMS[form], inputs), evaluate_numpy(b, FORMS[form], inputs)
    np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-9)


def test_every_known_loss_parses_in_its_form():
    for loss in KNOWN_LOSSES.values():
        assert loss.candidate.form.name == loss.form


def test_cse_a_cls_is_the_iou_weighted_cross_entropy():
    paper = -Dot((1 + sympy.sin(w)) * y, sympy.log(Softmax(x)))
    assert sympy.simplify(known_loss("cse_a_cls").candidate.expr - paper) == 0


def test_cse_a_reg_is_iou_plus_enclosing_term():
    paper = (1 - i / u) + (1 - (i + 2) / e)
    assert sympy.cancel(known_loss("cse_a_reg").candidate.expr - paper) == 0


def test_cse_b_cls_is_the_papers_formula():
    q, p = w, Sigmoid(x)
    paper = -(q * (1 + ScaledErf(Sigmoid(1 - y))) * sympy.log(p) + (ScaledGd(x) - q) * (p - q) * sympy.log(1 - p))
    _equal_on_probes(known_loss("cse_b_cls").candidate.expr, paper, "sigmoid")


def test_cse_b_reg_is_the_papers_rational_function():
    paper = (3 * e * u + 12 * e + 3 * i + 3 * u + 18) / (-3 * e * u + i * u + u**2 - 15 * e + 5 * i + 5 * u)
    assert sympy.cancel(sympy.together(known_loss("cse_b_reg").candidate.expr - paper)) == 0


def test_baselines_match_their_textbook_definitions():
    p = 1 / (1 + np.exp(-np.linspace(-8, 8, 33)))
    logits = np.log(p / (1 - p))
    focal = known_loss("focal").candidate.to_jax()
    ones, zeros = np.ones_like(p), np.zeros_like(p)
    np.testing.assert_allclose(focal(logits, ones, ones), -0.25 * (1 - p) ** 2 * np.log(p), rtol=2e-4)
    np.testing.assert_allclose(focal(logits, zeros, zeros), -0.75 * p**2 * np.log(1 - p), rtol=2e-4)
    ce = known_loss("ce").candidate.to_jax()
    logits3 = np.array([[1.0, 2.0, 0.5]])
    np.testing.assert_allclose(ce(logits3, np.array([[0, 1.0, 0]]), np.ones((1, 3))),
                               [-np.log(np.exp(2) / np.exp(logits3).sum())], rtol=1e-6)


@pytest.mark.parametrize("name", sorted(KNOWN_LOSSES))
def test_known_losses_are_finite_with_finite_gradients_and_hessians_at_extremes(name):
    candidate = known_loss(name).candidate
    loss = candidate.to_jax()
    if candidate.form.name == "reg":
        areas = jnp.array([0.0, 0.0, 1.0, 1e5])
        f = lambda a: loss(a, a * 2 + areas, a * 3 + areas).sum()  # noqa: E731
        args = (jnp.array([0.0, 0.0, 1.0, 5e4]),)
    elif candidate.form.name == "sigmoid":
        logits = jnp.array([-100.0, -1.0, 0.0, 1.0, 100.0, -100.0, 100.0])
        labels = jnp.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        f = lambda v: loss(v, labels, labels * 0.7).sum()  # noqa: E731
        args = (logits,)
    else:
        logits = jnp.array([[-100.0, 100.0, 0.0], [100.0, -100.0, 3.0], [0.0, 0.0, 0.0]])
        onehot = jnp.eye(3)
        f = lambda v: loss(v, onehot, jnp.full((3, 3), 0.6)).sum()  # noqa: E731
        args = (logits,)
    assert np.isfinite(f(*args))
    assert np.all(np.isfinite(jax.grad(f)(*args)))
    assert np.all(np.isfinite(jax.hessian(f)(*args)))


def test_unknown_names_list_the_zoo():
    with pytest.raises(ValueError, match="the zoo has ce"):
        known_loss("smooth_l1")
