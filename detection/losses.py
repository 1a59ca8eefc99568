"""Baseline detection losses as plain JAX functions, unreduced; the detector weights and normalizes.

Signatures follow the loss forms of the search space:

- ``sigmoid`` form ``(x, y, w) -> same shape``: x logits, y binary labels, w the IoU at the
  positive class entry and 0 elsewhere (unused by the baselines).
- ``softmax`` form ``(x[N, C+1], y[N, C+1], w[N, C+1]) -> [N]``.
- ``reg`` form ``(i, u, e) -> [N]``: intersection, union and enclosing-box areas.

Box-coordinate losses (L1, smooth L1, DIoU, CIoU) need the boxes themselves and take
``(pred_boxes[N, 4], target_boxes[N, 4]) -> [N]``. :class:`RegLoss` tags which signature a
regression loss has, so the detector can call either uniformly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from detection.boxes import aligned_areas

# Added to every denominator that is an area (or a squared length) in pixels² or stride²:
# zero-area boxes then give finite values and gradients, and real boxes are unaffected.
# Same value as the authors' release adds to union and enclosing area.
AREA_EPS = 1e-7


def binary_cross_entropy(x: jax.Array, y: jax.Array, w: jax.Array | None = None) -> jax.Array:
    """Return elementwise sigmoid BCE of logits ``x`` against (possibly soft) labels ``y``."""
    del w
    # log σ(x) and log σ(-x) = log(1 - σ(x)) through log_sigmoid: finite for any logit.
    return -(y * jax.nn.log_sigmoid(x) + (1.0 - y) * jax.nn.log_sigmoid(-x))


def sigmoid_focal_loss(
    x: jax.Array, y: jax.Array, w: jax.Array | None = None, *, alpha: float | None = 0.25, gamma: float = 2.0
) -> jax.Array:
    """Return elementwise focal loss ``alpha_t (1 - p_t)^gamma BCE`` (Lin et al. 2017, eq. 5).

    ``alpha=None`` disables the class balancing; with ``gamma=0`` and ``alpha=None`` this is BCE.
    """
    del w
    bce = binary_cross_entropy(x, y)
    # 1 - p_t written with σ(-x) for positives and σ(x) for negatives: no cancellation near p = 1.
    one_minus_pt = y * jax.nn.sigmoid(-x) + (1.0 - y) * jax.nn.sigmoid(x)
    loss = one_minus_pt**gamma * bce if gamma else bce
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return loss


def softmax_cross_entropy(x: jax.Array, y: jax.Array, w: jax.Array | None = None) -> jax.Array:
    """Return per-row cross entropy ``-sum(y * log_softmax(x))`` over the class axis."""
    del w
    return -jnp.sum(y * jax.nn.log_softmax(x, axis=-1), axis=-1)


def iou_loss(i: jax.Array, u: jax.Array, e: jax.Array) -> jax.Array:
    """Return ``1 - i/u`` (IoU loss, Yu et al. 2016); the division is guarded by ``AREA_EPS``."""
    del e
    return 1.0 - i / (u + AREA_EPS)


def giou_loss(i: jax.Array, u: jax.Array, e: jax.Array) -> jax.Array:
    """Return ``1 - i/u + (e - u)/e`` (GIoU loss, Rezatofighi et al. 2019, Alg. 2)."""
    return 1.0 - i / (u + AREA_EPS) + (e - u) / (e + AREA_EPS)


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Return the L1 distance of box coordinates, summed over the 4 coordinates."""
    return jnp.sum(jnp.abs(pred - target), axis=-1)


def smooth_l1_loss(pred: jax.Array, target: jax.Array, beta: float = 1.0 / 9.0) -> jax.Array:
    """Return smooth L1 (Huber / beta) of box coordinates, summed over the 4 coordinates.

    ``beta`` defaults to 1/9, the value Detectron and mmdetection use for box regression;
    ``beta=0`` is plain L1.
    """
    diff = jnp.abs(pred - target)
    if beta <= 0:
        return jnp.sum(diff, axis=-1)
    return jnp.sum(jnp.where(diff < beta, 0.5 * diff**2 / beta, diff - 0.5 * beta), axis=-1)


def _iou_and_center_penalty(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Return IoU and the DIoU penalty rho² / c² (center distance over enclosing diagonal)."""
    inter, union, _ = aligned_areas(pred, target)
    iou = inter / (union + AREA_EPS)
    encl_wh = jnp.maximum(pred[..., 2:], target[..., 2:]) - jnp.minimum(pred[..., :2], target[..., :2])
    diagonal_sq = jnp.sum(encl_wh**2, axis=-1)
    center_delta = (pred[..., :2] + pred[..., 2:] - target[..., :2] - target[..., 2:]) / 2.0
    return iou, jnp.sum(center_delta**2, axis=-1) / (diagonal_sq + AREA_EPS)


def diou_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Return ``1 - IoU + rho²/c²`` (DIoU loss, Zheng et al. 2020, eq. 6) for box pairs."""
    iou, penalty = _iou_and_center_penalty(pred, target)
    return 1.0 - iou + penalty


def ciou_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Return ``DIoU + alpha v`` (CIoU loss, Zheng et al. 2020, eqs. 8-11) for box pairs.

    ``alpha`` is treated as a constant in the gradient, as the paper prescribes.
    """
    iou, penalty = _iou_and_center_penalty(pred, target)
    pred_wh = jnp.maximum(pred[..., 2:] - pred[..., :2], 0.0)
    target_wh = jnp.maximum(target[..., 2:] - target[..., :2], 0.0)
    # atan2(w, h) = atan(w / h) for w, h >= 0, and stays finite (0) for zero-size boxes.
    angle_delta = jnp.arctan2(target_wh[..., 0], target_wh[..., 1] + AREA_EPS) - jnp.arctan2(
        pred_wh[..., 0], pred_wh[..., 1] + AREA_EPS
    )
    v = (4.0 / math.pi**2) * angle_delta**2
    alpha = jax.lax.stop_gradient(v / (1.0 - iou + v + AREA_EPS))
    return 1.0 - iou + penalty + alpha * v


@dataclasses.dataclass(frozen=True)
class RegLoss:
    """A regression loss with its signature: ``reg`` form ``(i, u, e)`` or box form ``(pred, target)``."""

    fn: Callable[..., jax.Array]
    takes_boxes: bool = False

    def __call__(self, pred_boxes: jax.Array, target_boxes: jax.Array) -> jax.Array:
        """Return the per-pair loss ``[N]`` of aligned boxes, whatever the signature of ``fn``."""
        if self.takes_boxes:
            return self.fn(pred_boxes, target_boxes)
        return self.fn(*aligned_areas(pred_boxes, target_boxes))


REG_LOSSES: dict[str, RegLoss] = {
    "iou": RegLoss(iou_loss),
    "giou": RegLoss(giou_loss),
    "diou": RegLoss(diou_loss, takes_boxes=True),
    "ciou": RegLoss(ciou_loss, takes_boxes=True),
    "l1": RegLoss(l1_loss, takes_boxes=True),
    "smooth_l1": RegLoss(smooth_l1_loss, takes_boxes=True),
}

CLS_LOSSES: dict[str, Callable[..., jax.Array]] = {
    "focal": sigmoid_focal_loss,
    "bce": binary_cross_entropy,
}


def as_reg_loss(loss: str | RegLoss | Callable[..., jax.Array]) -> RegLoss:
    """Return a :class:`RegLoss` from a registry name, a ``RegLoss``, or a ``reg``-form callable."""
    if isinstance(loss, RegLoss):
        return loss
    if isinstance(loss, str):
        if loss not in REG_LOSSES:
            raise ValueError(f"unknown regression loss {loss!r}; choose one of {sorted(REG_LOSSES)}")
        return REG_LOSSES[loss]
    if callable(loss):
        return RegLoss(loss)
    raise TypeError(f"regression loss must be a name, a RegLoss or a callable (i, u, e), got {loss!r}")


def as_cls_loss(loss: str | Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Return a ``sigmoid``-form callable from a registry name or the callable itself."""
    if isinstance(loss, str):
        if loss not in CLS_LOSSES:
            raise ValueError(f"unknown classification loss {loss!r}; choose one of {sorted(CLS_LOSSES)}")
        return CLS_LOSSES[loss]
    if callable(loss):
        return loss
    raise TypeError(f"classification loss must be a name or a callable (x, y, w), got {loss!r}")


def is_builtin_focal(loss: Callable[..., jax.Array]) -> bool:
    """Return True for the built-in focal loss (possibly wrapped in ``functools.partial``)."""
    while isinstance(loss, functools.partial):
        loss = loss.func
    return loss is sigmoid_focal_loss
