"""Faster R-CNN training loss: fixed RPN loss plus the RoI head's plug-in softmax and regression losses.

RoI targets, following mmdetection's ``faster_rcnn_r50_fpn_1x`` (the code base of the
CSE-Autoloss release): the ground-truth boxes join the proposals (``add_gt_as_proposals``), each
candidate is matched by max IoU (>= 0.5 foreground, < 0.5 background), and ``rois_per_image``
are drawn with ``roi_positive_fraction`` positives, seeded by ``key``.

Plug points and their weighting:

- classification: any ``softmax``-form ``(x[N, C+1], y[N, C+1], w[N, C+1]) -> [N]`` over the
  sampled RoIs, background last; ``w`` is row-constant: the detached IoU of the RoI's decoded box
  (its predicted deltas for the ground-truth class) with its ground truth, clamped at 1e-7, on
  positive rows, and 1 on background rows, as the authors' release feeds its searched loss
  (``pos_ious`` in their ``bbox_head.py``, ``multi_cls_loss`` in ``get_loss.py``). The sum over
  sampled RoIs is divided by their number (``BBoxHead.loss``: ``avg_factor`` = sampled RoIs).
- regression, on positive RoIs only, summed and divided by the number of *sampled* RoIs (again
  mmdetection's ``avg_factor = bbox_targets.size(0)``, not the number of positives):
  * a ``reg``-form ``(i, u, e)`` or an IoU-family box-form loss (GIoU, DIoU, CIoU) acts on the
    *decoded* boxes in image pixels (mmdetection's ``reg_decoded_bbox=True``), ``AREA_EPS``
    added to ``u`` and ``e`` (the authors' ``eps``); default weight 10, the ``loss_weight=10.0``
    of mmdetection's and the authors' ``faster_rcnn_r50_fpn_giou_1x`` (mmdetection uses 12 for
    CIoU; pass ``reg_weight`` to change it);
  * L1 and smooth L1 (the CE + L1 baseline) act on the *normalized deltas* (stds 0.1, 0.1, 0.2,
    0.2), as Faster R-CNN and mmdetection's ``L1Loss`` baseline; default weight 1.
- RPN: fixed, see :func:`detection.rpn.rpn_loss`.

The image size here (128 px by default) is far below the paper's 800 px, so a searched ``reg``
loss with additive constants in pixel² (A's ``i + 2``) sees them relatively larger.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from detection.anchors import decode_deltas, encode_deltas
from detection.boxes import Detections, aligned_iou
from detection.faster_rcnn import apply_box_head, apply_features
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.fcos_loss import MIN_IOU_WEIGHT, regression_loss_values
from detection.losses import RegLoss, as_reg_loss, l1_loss, smooth_l1_loss, softmax_cross_entropy
from detection.roi_sampling import assign_by_iou, gather_rows, sample_batch
from detection.rpn import propose, rpn_loss

# Weight of the RoI regression loss by where it acts (mmdetection's loss_weight): 10 for
# IoU-family losses on decoded boxes, 1 for L1 on normalized deltas.
DECODED_BOX_REG_WEIGHT = 10.0
DELTA_REG_WEIGHT = 1.0
# Substituted on non-positive rows before the regression loss, so masked rows stay finite.
_PLACEHOLDER_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)

SOFTMAX_CLS_LOSSES: dict[str, Callable[..., jax.Array]] = {"cross_entropy": softmax_cross_entropy}


class RoITargets(NamedTuple):
    """Sampled RoIs of a batch and their training targets, ``rois_per_image`` slots per image."""

    rois: jax.Array  # [B, R, 4] pixels
    labels: jax.Array  # [B, R] int32, num_classes (the last logit) on background and padding
    gt_boxes: jax.Array  # [B, R, 4] matched ground truth (meaningful on positives)
    positive: jax.Array  # [B, R] bool
    valid: jax.Array  # [B, R] bool, False on padding slots


def regresses_deltas(reg_loss: RegLoss) -> bool:
    """Return True when ``reg_loss`` is a coordinate loss (L1, smooth L1) applied to normalized deltas."""
    fn = reg_loss.fn
    while isinstance(fn, functools.partial):
        fn = fn.func
    return reg_loss.takes_boxes and fn in (l1_loss, smooth_l1_loss)


def default_reg_weight(reg_loss: str | RegLoss | Callable[..., jax.Array]) -> float:
    """Return mmdetection's regression loss weight for ``reg_loss``: 1 on deltas, 10 on decoded boxes."""
    return DELTA_REG_WEIGHT if regresses_deltas(as_reg_loss(reg_loss)) else DECODED_BOX_REG_WEIGHT


def as_softmax_loss(loss: str | Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Return a ``softmax``-form callable from a ``SOFTMAX_CLS_LOSSES`` name or the callable itself."""
    if isinstance(loss, str):
        if loss not in SOFTMAX_CLS_LOSSES:
            raise ValueError(
                f"unknown softmax classification loss {loss!r}; choose one of {sorted(SOFTMAX_CLS_LOSSES)}"
            )
        return SOFTMAX_CLS_LOSSES[loss]
    if callable(loss):
        return loss
    raise TypeError(f"classification loss must be a name or a callable (x, y, w) -> [N], got {loss!r}")


def sample_rois(proposals: Detections, batch: dict, key: jax.Array, config: FasterRCNNConfig) -> RoITargets:
    """Return ``rois_per_image`` RoIs per image sampled with ``key`` from the proposals and the ground truth."""
    candidates = jnp.concatenate([proposals.boxes, batch["boxes"]], axis=1)
    candidate_valid = jnp.concatenate([proposals.valid, batch["valid"]], axis=1)

    def assign(boxes, valid, gt_boxes, gt_valid):
        return assign_by_iou(
            boxes,
            valid,
            gt_boxes,
            gt_valid,
            positive_iou=config.roi_foreground_iou,
            negative_iou=config.roi_background_iou,
        )

    assignment = jax.vmap(assign)(candidates, candidate_valid, batch["boxes"], batch["valid"])
    samples = sample_batch(
        key,
        assignment.positive,
        assignment.negative,
        num_samples=config.rois_per_image,
        positive_fraction=config.roi_positive_fraction,
    )
    gt_index = gather_rows(assignment.gt_index, samples.index)
    labels = jnp.where(samples.positive, gather_rows(batch["labels"], gt_index), config.num_classes)
    return RoITargets(
        rois=gather_rows(candidates, samples.index),
        labels=labels.astype(jnp.int32),
        gt_boxes=gather_rows(batch["boxes"], gt_index),
        positive=samples.positive,
        valid=samples.valid,
    )


def roi_head_loss(
    cls_logits: jax.Array,
    deltas: jax.Array,
    targets: RoITargets,
    config: FasterRCNNConfig,
    *,
    cls_loss: str | Callable[..., jax.Array] = "cross_entropy",
    reg_loss: str | RegLoss | Callable[..., jax.Array] = "giou",
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Return the RoI classification loss, the (unweighted) regression loss and metrics.

    ``cls_logits [B, R, C+1]`` and class-specific ``deltas [B, R, C, 4]`` are the box head's
    outputs on ``targets.rois``; weighting and normalization are described in the module docstring.
    """
    cls_fn = as_softmax_loss(cls_loss)
    reg = as_reg_loss(reg_loss)
    positive, valid = targets.positive, targets.valid
    class_index = jnp.where(positive, targets.labels, 0)[..., None, None]
    class_deltas = jnp.take_along_axis(deltas, jnp.broadcast_to(class_index, (*positive.shape, 1, 4)), axis=2)
    class_deltas = class_deltas[:, :, 0]
    decoded = decode_deltas(targets.rois, class_deltas, config.roi_delta_stds)
    iou = jax.lax.stop_gradient(aligned_iou(decoded, targets.gt_boxes))
    num_sampled = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)

    num_columns = config.num_classes + 1
    one_hot = jax.nn.one_hot(targets.labels, num_columns, dtype=cls_logits.dtype)
    weight = jnp.broadcast_to(jnp.where(positive, jnp.maximum(iou, MIN_IOU_WEIGHT), 1.0)[..., None], one_hot.shape)
    rows = lambda values: values.reshape(-1, num_columns)
    cls_values = cls_fn(rows(cls_logits), rows(one_hot), rows(weight))
    loss_cls = jnp.sum(jnp.where(valid.reshape(-1), cls_values, 0.0)) / num_sampled

    if regresses_deltas(reg):
        target_deltas = jax.lax.stop_gradient(encode_deltas(targets.rois, targets.gt_boxes, config.roi_delta_stds))
        mask = positive[..., None]
        reg_values = reg.fn(jnp.where(mask, class_deltas, 0.0), jnp.where(mask, target_deltas, 0.0))
    else:
        pred_boxes = jnp.where(positive[..., None], decoded, _PLACEHOLDER_BOX)
        target_boxes = jnp.where(positive[..., None], targets.gt_boxes, _PLACEHOLDER_BOX)
        reg_values = regression_loss_values(reg, pred_boxes, target_boxes)
    loss_reg = jnp.sum(jnp.where(positive, reg_values, 0.0)) / num_sampled

    num_positive = jnp.sum(positive).astype(jnp.float32)
    metrics = {
        "num_positive": num_positive,
        "mean_iou": jnp.sum(jnp.where(positive, iou, 0.0)) / jnp.maximum(num_positive, 1.0),
    }
    return loss_cls, loss_reg, metrics


def faster_rcnn_loss(
    params: dict,
    batch: dict,
    key: jax.Array,
    config: FasterRCNNConfig,
    *,
    cls_loss: str | Callable[..., jax.Array] = "cross_entropy",
    reg_loss: str | RegLoss | Callable[..., jax.Array] = "giou",
    reg_weight: float | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Return the total Faster R-CNN loss and its components on ``batch``; ``key`` seeds the sampling.

    ``cls_loss`` is a ``softmax``-form callable or a ``SOFTMAX_CLS_LOSSES`` name; ``reg_loss`` a
    ``reg``-form callable, a :class:`RegLoss` or a ``REG_LOSSES`` name; ``reg_weight=None`` picks
    :func:`default_reg_weight`. ``batch`` follows the detection batch contract (images, boxes,
    labels, valid). Total = RPN objectness + RPN deltas + RoI cls + ``reg_weight`` x RoI reg.
    """
    if reg_weight is None:
        reg_weight = default_reg_weight(reg_loss)
    rpn_key, roi_key = jax.random.split(key)
    pyramid, rpn_outputs = apply_features(params, batch["images"], config)
    loss_rpn_cls, loss_rpn_reg, rpn_metrics = rpn_loss(rpn_outputs, batch, rpn_key, config)
    targets = sample_rois(propose(rpn_outputs, config), batch, roi_key, config)
    cls_logits, deltas = apply_box_head(params, pyramid, targets.rois, config)
    loss_cls, loss_reg, roi_metrics = roi_head_loss(
        cls_logits, deltas, targets, config, cls_loss=cls_loss, reg_loss=reg_loss
    )
    total = loss_rpn_cls + loss_rpn_reg + loss_cls + reg_weight * loss_reg
    metrics = {
        "loss": total,
        "loss_rpn_cls": loss_rpn_cls,
        "loss_rpn_reg": loss_rpn_reg,
        "loss_cls": loss_cls,
        "loss_reg": loss_reg,
        **roi_metrics,
        **rpn_metrics,
    }
    return total, metrics
