"""FCOS loss assembly with plug points for any classification and regression loss.

Weighting and normalization follow the CSE-Autoloss authors' FCOS head (their release of
``fcos_head.py`` and ``get_loss.py``):

- classification: the ``sigmoid``-form loss summed over all points and classes, divided by
  ``num_positives + num_images`` (their ``avg_factor``; the ``+ num_images`` keeps it >= 1).
- regression: the loss of each positive times a weight, divided by the sum of the weights (so
  the scale of the loss does not depend on how many points are positive). The weight is set by
  ``FCOSConfig.regression_weighting``; the default is the FCOS *centerness target* of the point
  (Tian et al. 2019, eq. 3; the FCOS release weights its IoU loss by these targets), ``"iou"``
  is the detached IoU of the prediction with its target (clamped at 1e-7) as in the authors'
  release, ``"uniform"`` weights every positive by 1.

  Why centerness is the default: the IoU weight depends on the prediction, so a positive that
  is badly localized gets almost no regression gradient and stays badly localized (the weight
  is ~0 for every point at initialization, and later for the hard ones: small or occluded
  boxes). Measured on 16 fixed shapes training images, 300 steps of memorization: with the IoU
  weight 84.9% of the ground truth got a same-class detection at IoU >= 0.5 and boxes under
  16 px reached a mean IoU of 0.61 at their positives; with the centerness weight 89.5% and
  0.76. The centerness weight depends on the targets only; it still favours central points.
- quality: BCE of the quality logit toward the detached IoU, mean over positives.

Boxes for the IoU and the regression loss are decoded in *stride units* (ltrb / stride), the
FCOS ``norm_reg_targets`` convention the authors trained with: the areas ``(i, u, e)`` a
searched ``reg`` loss sees are in stride², and like their release ``AREA_EPS`` is added to ``u``
and ``e``. IoU itself does not depend on this choice; loss forms with constants (``i + 2``) do.

Under ``jit`` with a data-sharded batch every sum above is global, so the normalizers are the
totals over all devices, as the per-device average in a data-parallel run would give.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from detection.boxes import aligned_areas, decode_ltrb
from detection.fcos import FCOSConfig, FCOSOutputs, apply_model
from detection.fcos_targets import PointTargets, assign_targets_batch
from detection.losses import (
    AREA_EPS,
    RegLoss,
    as_cls_loss,
    as_reg_loss,
    binary_cross_entropy,
    is_builtin_focal,
)

# Lower clamp of the IoU used as a weight, as in the authors' release (keeps the weight sum > 0).
MIN_IOU_WEIGHT = 1e-7
# Box substituted on non-positive points before the regression loss: finite for any sane loss,
# so the masked-out entries cannot leak NaN into the gradient (double-where trick).
_PLACEHOLDER_BOX = np.array([-0.5, -0.5, 0.5, 0.5], np.float32)


def regression_loss_values(reg_loss: RegLoss, pred_boxes: jax.Array, target_boxes: jax.Array) -> jax.Array:
    """Return the per-pair loss of aligned boxes ``[..., 4]``, adding ``AREA_EPS`` to u and e for reg form."""
    if reg_loss.takes_boxes:
        return reg_loss.fn(pred_boxes, target_boxes)
    inter, union, enclosing = aligned_areas(pred_boxes, target_boxes)
    return reg_loss.fn(inter, union + AREA_EPS, enclosing + AREA_EPS)


def centerness_targets(ltrb: jax.Array) -> jax.Array:
    """Return FCOS centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` (Tian et al. 2019, eq. 3)."""
    horizontal = jnp.minimum(ltrb[..., 0], ltrb[..., 2]) / jnp.maximum(jnp.maximum(ltrb[..., 0], ltrb[..., 2]), 1e-6)
    vertical = jnp.minimum(ltrb[..., 1], ltrb[..., 3]) / jnp.maximum(jnp.maximum(ltrb[..., 1], ltrb[..., 3]), 1e-6)
    return jnp.sqrt(jnp.maximum(horizontal * vertical, 0.0))


def regression_weights(weighting: str, target_ltrb: jax.Array, iou_weight: jax.Array, positive: jax.Array) -> jax.Array:
    """Return the per-point regression weights ``[B, P]`` (0 off the positives) for ``weighting``."""
    if weighting == "iou":
        return iou_weight
    if weighting == "centerness":
        # Floored like the IoU weight, so a positive on the box border still trains.
        return jnp.where(positive, jnp.maximum(centerness_targets(target_ltrb), MIN_IOU_WEIGHT), 0.0)
    return positive.astype(iou_weight.dtype)


def fcos_targets(batch: dict, config: FCOSConfig) -> PointTargets:
    """Return the point targets of ``batch`` (labels, ltrb, positive) with the config's center sampling."""
    return assign_targets_batch(config.points, batch, radius=config.center_sampling_radius)


def fcos_loss(
    outputs: FCOSOutputs,
    batch: dict,
    config: FCOSConfig,
    *,
    cls_loss: str | Callable[..., jax.Array] = "focal",
    reg_loss: str | RegLoss | Callable[..., jax.Array] = "giou",
    alpha_balance: float | None = None,
    reg_weight: float = 1.0,
    quality_weight: float = 1.0,
    targets: PointTargets | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Return the total FCOS loss and its components for raw ``outputs`` on ``batch``.

    ``cls_loss`` is any ``sigmoid``-form callable ``(x, y, w)`` (or a ``CLS_LOSSES`` name): x the
    ``[B, P, C]`` logits, y the one-hot labels (zero rows on background), w the detached IoU of
    the decoded prediction with its target at the positive class entry, 0 elsewhere.
    ``reg_loss`` is a ``reg``-form callable ``(i, u, e)``, a :class:`RegLoss` or a ``REG_LOSSES``
    name. ``alpha_balance`` multiplies the classification loss by ``alpha`` on positive entries
    and ``1 - alpha`` on negatives, as the authors wrapped their searched losses (0.25); it is
    not applied to the built-in focal loss, which already balances inside. ``targets`` are the
    batch's point targets when already assigned (:func:`fcos_targets`), e.g. for a fixed batch.
    """
    cls_fn = as_cls_loss(cls_loss)
    reg = as_reg_loss(reg_loss)
    points = config.points
    if targets is None:
        targets = fcos_targets(batch, config)
    positive = targets.positive
    num_images = outputs.cls_logits.shape[0]
    num_positive = jnp.sum(positive).astype(jnp.float32)

    strides = jnp.asarray(points.strides)[None, :, None]
    origin = jnp.zeros(2, jnp.float32)
    pred_boxes = jnp.where(positive[..., None], decode_ltrb(origin, outputs.ltrb / strides), _PLACEHOLDER_BOX)
    target_boxes = jnp.where(
        positive[..., None], decode_ltrb(origin, targets.ltrb / strides), _PLACEHOLDER_BOX
    )
    inter, union, _ = aligned_areas(pred_boxes, target_boxes)
    iou = jax.lax.stop_gradient(inter / (union + AREA_EPS))
    iou_weight = jnp.where(positive, jnp.maximum(iou, MIN_IOU_WEIGHT), 0.0)

    one_hot = jax.nn.one_hot(targets.labels, config.num_classes, dtype=outputs.cls_logits.dtype)
    cls_values = cls_fn(outputs.cls_logits, one_hot, one_hot * iou_weight[..., None])
    if alpha_balance is not None and not is_builtin_focal(cls_fn):
        cls_values = (alpha_balance * one_hot + (1.0 - alpha_balance) * (1.0 - one_hot)) * cls_values
    loss_cls = jnp.sum(cls_values) / (num_positive + num_images)

    reg_values = regression_loss_values(reg, pred_boxes, target_boxes)
    reg_weights = regression_weights(config.regression_weighting, targets.ltrb, iou_weight, positive)
    weight_sum = jnp.maximum(jnp.sum(reg_weights), MIN_IOU_WEIGHT)
    loss_reg = jnp.sum(jnp.where(positive, reg_weights * reg_values, 0.0)) / weight_sum

    quality_values = binary_cross_entropy(outputs.quality_logits, iou_weight)
    loss_quality = jnp.sum(jnp.where(positive, quality_values, 0.0)) / jnp.maximum(num_positive, 1.0)

    total = loss_cls + reg_weight * loss_reg + quality_weight * loss_quality
    metrics = {
        "loss": total,
        "loss_cls": loss_cls,
        "loss_reg": loss_reg,
        "loss_quality": loss_quality,
        "num_positive": num_positive,
        "mean_iou": jnp.sum(jnp.where(positive, iou, 0.0)) / jnp.maximum(num_positive, 1.0),
    }
    return total, metrics


def fcos_loss_from_params(
    params: dict, batch: dict, config: FCOSConfig, **loss_options
) -> tuple[jax.Array, dict]:
    """Return :func:`fcos_loss` after running the detector with ``params`` on ``batch["images"]``."""
    return fcos_loss(apply_model(params, batch["images"], config), batch, config, **loss_options)
