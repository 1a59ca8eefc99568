"""Max-IoU assignment of boxes to ground truth and seeded sampling at a fixed count (static shapes).

Both the RPN (anchors) and the RoI head (proposals plus ground truth) use them, as mmdetection's
``MaxIoUAssigner`` and ``RandomSampler`` do: a box is positive at IoU >= a foreground threshold
with its best ground truth, negative below a background threshold, ignored in between; then at
most ``round(num_samples * positive_fraction)`` positives are drawn at random and negatives fill
the remaining slots. The counts are static, so everything jits; slots left empty when there are
too few candidates are padding (``valid == False``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from detection.boxes import box_iou


class Assignment(NamedTuple):
    """Per-box match with the ground truth of one image."""

    gt_index: jax.Array  # [N] int32 index of the matched ground truth (0 when unmatched)
    max_iou: jax.Array  # [N] IoU with that ground truth, -1 when the image has no valid ground truth
    positive: jax.Array  # [N] bool
    negative: jax.Array  # [N] bool


class Samples(NamedTuple):
    """Fixed-count sample of box indices: positives first, then negatives, then padding."""

    index: jax.Array  # [S] int32 index into the candidate boxes
    positive: jax.Array  # [S] bool
    valid: jax.Array  # [S] bool, False on padding slots


def assign_by_iou(
    boxes: jax.Array,
    box_valid: jax.Array,
    gt_boxes: jax.Array,
    gt_valid: jax.Array,
    *,
    positive_iou: float,
    negative_iou: float,
    min_positive_iou: float | None = None,
) -> Assignment:
    """Return the max-IoU assignment of ``boxes [N, 4]`` to ``gt_boxes [M, 4]`` of one image.

    Positive: IoU >= ``positive_iou``; negative: 0 <= IoU < ``negative_iou``. With
    ``min_positive_iou`` every valid ground truth also claims the boxes that reach its own highest
    IoU, if that is at least ``min_positive_iou`` (the RPN's low-quality matches, Ren et al. 2015
    sec. 3.1.2), so that no object is left without a positive anchor.
    """
    iou = jnp.where(gt_valid[None, :] & box_valid[:, None], box_iou(boxes, gt_boxes), -1.0)  # [N, M]
    gt_index = jnp.argmax(iou, axis=1).astype(jnp.int32)
    max_iou = jnp.max(iou, axis=1)
    positive = max_iou >= positive_iou
    negative = box_valid & (max_iou >= 0.0) & (max_iou < negative_iou)
    if min_positive_iou is not None:
        best_per_gt = jnp.max(iou, axis=0)  # [M]
        claims = (iou == best_per_gt[None, :]) & (best_per_gt[None, :] >= min_positive_iou) & gt_valid[None, :]
        claimed = jnp.any(claims, axis=1)
        gt_index = jnp.where(claimed, jnp.argmax(claims, axis=1).astype(jnp.int32), gt_index)
        max_iou = jnp.where(claimed, jnp.take_along_axis(iou, gt_index[:, None], axis=1)[:, 0], max_iou)
        positive = positive | claimed
        negative = negative & ~claimed
    # With no valid box or ground truth the empty IoU row is all -1: nothing is negative either.
    negative = negative | (box_valid & ~jnp.any(gt_valid))
    return Assignment(gt_index, max_iou, positive & box_valid, negative & ~positive)


def sample_fixed_count(
    key: jax.Array, positive: jax.Array, negative: jax.Array, *, num_samples: int, positive_fraction: float
) -> Samples:
    """Return ``num_samples`` slots drawn at random: up to the positive share of positives, then negatives.

    Each candidate gets a uniform random priority; the highest-priority positives (at most
    ``round(num_samples * positive_fraction)``) take the first slots and the highest-priority
    negatives the rest, as mmdetection's ``RandomSampler`` (negatives are not capped relative to
    positives). Slots beyond the available candidates are padding.
    """
    num_candidates = positive.shape[0]
    max_positive = min(int(round(num_samples * positive_fraction)), num_candidates)
    max_negative = min(num_samples, num_candidates)
    positive_key, negative_key = jax.random.split(key)
    positive_priority = jnp.where(positive, jax.random.uniform(positive_key, positive.shape), -1.0)
    negative_priority = jnp.where(negative, jax.random.uniform(negative_key, negative.shape), -1.0)
    positive_top, positive_index = jax.lax.top_k(positive_priority, max_positive)
    negative_top, negative_index = jax.lax.top_k(negative_priority, max_negative)
    num_positive = jnp.sum(positive_top >= 0.0)
    num_negative = jnp.minimum(jnp.sum(negative_top >= 0.0), num_samples - num_positive)
    slot = jnp.arange(num_samples)
    from_positive = slot < num_positive
    index = jnp.where(
        from_positive,
        positive_index[jnp.clip(slot, 0, max(max_positive - 1, 0))] if max_positive else 0,
        negative_index[jnp.clip(slot - num_positive, 0, max_negative - 1)],
    )
    return Samples(index.astype(jnp.int32), from_positive, slot < num_positive + num_negative)


def sample_batch(
    key: jax.Array, positive: jax.Array, negative: jax.Array, *, num_samples: int, positive_fraction: float
) -> Samples:
    """Return :func:`sample_fixed_count` for every image of a batch ``[B, N]`` with a key per image."""
    keys = jax.random.split(key, positive.shape[0])
    sample = lambda k, p, n: sample_fixed_count(k, p, n, num_samples=num_samples, positive_fraction=positive_fraction)
    return jax.vmap(sample)(keys, positive, negative)


def gather_rows(values: jax.Array, index: jax.Array) -> jax.Array:
    """Return ``values[b, index[b]]`` for values ``[B, N, ...]`` and indices ``[B, S]``: ``[B, S, ...]``."""
    return jax.vmap(lambda image_values, image_index: image_values[image_index])(values, index)
