"""Region proposal network (Ren et al. 2015): shared head, fixed-count proposals, and its fixed loss.

Proposals follow mmdetection's ``RPNHead``: the ``rpn_pre_nms_top_k`` anchors of each level by
objectness are decoded and clipped to the image, NMS at ``rpn_nms_iou`` runs per level (the
level index plays the class in :func:`detection.boxes.batched_nms`), and the
``rpn_post_nms_top_k`` best survivors over all levels are kept; empty slots are padding.

The loss is not a search plug point: sigmoid BCE on objectness plus L1 on the (std-1) deltas of
positive anchors, both summed over the sampled anchors of the batch and divided by their number
(mmdetection's ``AnchorHead.loss`` with sampling: ``avg_factor = num_pos + num_neg``, both loss
weights 1.0, as in ``faster_rcnn_r50_fpn_1x``).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from detection.anchors import decode_deltas, encode_deltas
from detection.boxes import Detections, batched_nms, clip_boxes
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.losses import binary_cross_entropy, l1_loss
from detection.roi_sampling import assign_by_iou, gather_rows, sample_batch


class RPNOutputs(NamedTuple):
    """Raw RPN outputs over all anchors of all levels, in the order of ``config.anchors``."""

    objectness: jax.Array  # [B, N] logits
    deltas: jax.Array  # [B, N, 4] normalized by rpn_delta_stds


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared across levels, then 1x1 convs for objectness and deltas per anchor."""

    width: int
    anchors_per_cell: int

    @nn.compact
    def __call__(self, features: list[jax.Array]) -> RPNOutputs:
        init = nn.initializers.normal(0.01)  # mmdetection's RPN head init
        conv = nn.Conv(self.width, (3, 3), kernel_init=init, name="conv")
        objectness_out = nn.Conv(self.anchors_per_cell, (1, 1), kernel_init=init, name="objectness")
        deltas_out = nn.Conv(4 * self.anchors_per_cell, (1, 1), kernel_init=init, name="deltas")
        objectness, deltas = [], []
        for feature in features:
            hidden = nn.relu(conv(feature))
            batch = feature.shape[0]
            objectness.append(objectness_out(hidden).reshape(batch, -1))
            deltas.append(deltas_out(hidden).reshape(batch, -1, 4))
        return RPNOutputs(jnp.concatenate(objectness, axis=1), jnp.concatenate(deltas, axis=1))


def propose(outputs: RPNOutputs, config: FasterRCNNConfig) -> Detections:
    """Return ``rpn_post_nms_top_k`` proposals per image (boxes, objectness probabilities, level, valid).

    Gradients do not flow into proposals (Faster R-CNN's approximate joint training).
    """
    outputs = jax.lax.stop_gradient(outputs)
    anchors, counts = config.anchors
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    boxes, scores, levels = [], [], []
    for level, (start, count) in enumerate(zip(starts, counts, strict=True)):
        top_k = min(config.rpn_pre_nms_top_k, count)
        level_scores, index = jax.lax.top_k(outputs.objectness[:, start : start + count], top_k)
        level_deltas = jnp.take_along_axis(outputs.deltas[:, start : start + count], index[..., None], axis=1)
        level_anchors = jnp.asarray(anchors[start : start + count])[index]
        decoded = decode_deltas(level_anchors, level_deltas, config.rpn_delta_stds)
        boxes.append(clip_boxes(decoded, *config.image_size))
        scores.append(level_scores)
        levels.append(jnp.full(level_scores.shape, level, jnp.int32))
    boxes, scores, levels = (jnp.concatenate(parts, axis=1) for parts in (boxes, scores, levels))
    nonempty = jnp.all(boxes[..., 2:] > boxes[..., :2], axis=-1)  # mmdetection's min_bbox_size=0 filter
    return batched_nms(
        boxes,
        jax.nn.sigmoid(scores),
        levels,
        nonempty,
        iou_threshold=config.rpn_nms_iou,
        max_output=config.rpn_post_nms_top_k,
    )


def rpn_loss(
    outputs: RPNOutputs, batch: dict, key: jax.Array, config: FasterRCNNConfig
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """Return the RPN objectness loss, its delta loss and metrics for ``batch``'s ground truth.

    Anchors are assigned by IoU (>= 0.7 positive, < 0.3 negative, plus each object's best
    anchors), then ``rpn_samples_per_image`` are sampled with ``key`` at ``rpn_positive_fraction``.
    """
    anchors = jnp.asarray(config.anchors[0])
    anchor_valid = jnp.ones(anchors.shape[0], bool)  # mmdetection's allowed_border=-1: every anchor

    def assign(gt_boxes, gt_valid):
        return assign_by_iou(
            anchors,
            anchor_valid,
            gt_boxes,
            gt_valid,
            positive_iou=config.rpn_positive_iou,
            negative_iou=config.rpn_negative_iou,
            min_positive_iou=config.rpn_min_positive_iou,
        )

    assignment = jax.vmap(assign)(batch["boxes"], batch["valid"])
    samples = sample_batch(
        key,
        assignment.positive,
        assignment.negative,
        num_samples=config.rpn_samples_per_image,
        positive_fraction=config.rpn_positive_fraction,
    )
    logits = gather_rows(outputs.objectness, samples.index)
    pred_deltas = gather_rows(outputs.deltas, samples.index)
    matched_gt = gather_rows(batch["boxes"], gather_rows(assignment.gt_index, samples.index))
    target_deltas = encode_deltas(anchors[samples.index], matched_gt, config.rpn_delta_stds)

    num_samples = jnp.maximum(jnp.sum(samples.valid), 1).astype(jnp.float32)
    objectness = binary_cross_entropy(logits, samples.positive.astype(logits.dtype))
    loss_objectness = jnp.sum(jnp.where(samples.valid, objectness, 0.0)) / num_samples
    deltas = l1_loss(pred_deltas, jax.lax.stop_gradient(target_deltas))
    loss_deltas = jnp.sum(jnp.where(samples.positive, deltas, 0.0)) / num_samples
    metrics = {"rpn_num_positive": jnp.sum(samples.positive).astype(jnp.float32)}
    return loss_objectness, loss_deltas, metrics
