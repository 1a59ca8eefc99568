"""Baseline losses: properties, reference values and extreme inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from detection.losses import (
    REG_LOSSES,
    RegLoss,
    as_cls_loss,
    as_reg_loss,
    binary_cross_entropy,
    ciou_loss,
    diou_loss,
    giou_loss,
    iou_loss,
    l1_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
    softmax_cross_entropy,
)

LOGITS = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
LABELS = jnp.array([0.0, 1.0, 1.0, 0.0, 0.3])


def test_bce_matches_naive_formula():
    p = jax.nn.sigmoid(LOGITS)
    naive = -(LABELS * jnp.log(p) + (1 - LABELS) * jnp.log(1 - p))
    np.testing.assert_allclose(binary_cross_entropy(LOGITS, LABELS, None), naive, rtol=1e-5)


def test_focal_without_focusing_or_balancing_is_bce():
    focal = sigmoid_focal_loss(LOGITS, LABELS, None, alpha=None, gamma=0.0)
    np.testing.assert_allclose(focal, binary_cross_entropy(LOGITS, LABELS, None), rtol=1e-6)


def test_focal_matches_reference_formula():
    y = jnp.array([0.0, 1.0, 1.0, 0.0, 1.0])
    p = jax.nn.sigmoid(LOGITS)
    pt = y * p + (1 - y) * (1 - p)
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    expected = -alpha_t * (1 - pt) ** 2 * jnp.log(pt)
    np.testing.assert_allclose(sigmoid_focal_loss(LOGITS, y, None), expected, rtol=1e-5)


@pytest.mark.parametrize("loss", [binary_cross_entropy, sigmoid_focal_loss], ids=["bce", "focal"])
def test_sigmoid_losses_finite_gradient_and_hessian_at_extremes(loss):
    logits = jnp.array([-1e3, -100.0, 100.0, 1e3, -1e3, -100.0, 100.0, 1e3])
    labels = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    f = lambda x, y: loss(x, y, jnp.float32(0.0))
    values, grads, hessians = jax.jit(
        lambda x, y: (f(x, y), jax.vmap(jax.grad(f))(x, y), jax.vmap(jax.hessian(f))(x, y))
    )(logits, labels)
    assert np.isfinite(values).all() and np.isfinite(grads).all() and np.isfinite(hessians).all()


def test_softmax_cross_entropy_matches_naive_and_reduces_rows():
    x = jnp.array([[1.0, 2.0, 0.5], [100.0, -100.0, 0.0]])
    y = jax.nn.one_hot(jnp.array([1, 0]), 3)
    loss = softmax_cross_entropy(x, y, jnp.ones_like(x))
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss[0], -jnp.log(jax.nn.softmax(x[0])[1]), rtol=1e-5)
    assert np.isfinite(jax.grad(lambda v: softmax_cross_entropy(v, y, y).sum())(x)).all()


def test_giou_equals_iou_loss_when_enclosure_is_union():
    i, u = jnp.array([1.0, 3.0, 0.0]), jnp.array([4.0, 3.0, 5.0])
    np.testing.assert_allclose(giou_loss(i, u, u), iou_loss(i, u, u), rtol=1e-6)
    assert float(giou_loss(jnp.float32(0), jnp.float32(2), jnp.float32(8))) == pytest.approx(1.75)


@pytest.mark.parametrize("loss", [iou_loss, giou_loss], ids=["iou", "giou"])
def test_reg_form_losses_finite_on_zero_areas(loss):
    zeros = jnp.zeros(3)
    assert np.isfinite(loss(zeros, zeros, zeros)).all()
    grads = jax.grad(lambda i, u, e: loss(i, u, e).sum(), argnums=(0, 1, 2))(zeros, zeros, zeros)
    assert all(np.isfinite(g).all() for g in grads)


def test_box_form_losses_reference_values():
    pred = jnp.array([[0.0, 0.0, 2.0, 2.0]])
    target = jnp.array([[1.0, 0.0, 3.0, 2.0]])
    np.testing.assert_allclose(l1_loss(pred, target), [2.0])
    np.testing.assert_allclose(smooth_l1_loss(pred, target, beta=1.0), [1.0])
    np.testing.assert_allclose(smooth_l1_loss(pred, target, beta=4.0), [2 * 0.5 / 4.0])
    # IoU = 2/6, centers 1 apart, enclosing diagonal² = 9 + 4.
    np.testing.assert_allclose(diou_loss(pred, target), [1 - 2 / 6 + 1 / 13], rtol=1e-5)
    # Same aspect ratio: CIoU adds nothing to DIoU.
    np.testing.assert_allclose(ciou_loss(pred, target), diou_loss(pred, target), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(REG_LOSSES))
def test_registry_losses_zero_at_perfect_match_and_finite_on_degenerate_boxes(name):
    loss = REG_LOSSES[name]
    boxes = jnp.array([[0.0, 0.0, 4.0, 3.0], [2.0, 2.0, 5.0, 9.0]])
    np.testing.assert_allclose(loss(boxes, boxes), 0.0, atol=1e-5)
    degenerate = jnp.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 7.0]])
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, t: loss(p, t).sum()))
    for pred, target in [(degenerate, boxes), (boxes, degenerate), (degenerate, degenerate)]:
        value, grad = value_and_grad(pred, target)
        assert np.isfinite(value) and np.isfinite(grad).all()


def test_coercion_of_loss_specs():
    assert as_reg_loss("giou") is REG_LOSSES["giou"]
    custom = as_reg_loss(lambda i, u, e: 1 - i / u)
    assert isinstance(custom, RegLoss) and not custom.takes_boxes
    assert as_cls_loss("bce") is binary_cross_entropy
    with pytest.raises(ValueError, match="unknown regression loss"):
        as_reg_loss("nope")
    with pytest.raises(ValueError, match="unknown classification loss"):
        as_cls_loss("nope")
