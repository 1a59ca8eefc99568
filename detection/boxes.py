"""Box operations in jax.numpy: IoU, aligned areas, FCOS ltrb coding and batched NMS.

Boxes are ``x1, y1, x2, y2`` in pixels along the last axis. Every function is jit-able with
static shapes; degenerate (zero-area or inverted) boxes give finite values because widths and
heights are clamped at zero before any product.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

# Guards the IoU ratio for two zero-area boxes (0 / 0); far below one pixel², so it never
# changes the IoU of real boxes.
IOU_EPS = 1e-7


def box_area(boxes: jax.Array) -> jax.Array:
    """Return the area of each box ``[..., 4] -> [...]`` (zero for inverted boxes)."""
    widths = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    heights = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    return widths * heights


def _intersection_and_enclosure(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Return the intersection and smallest-enclosing-box areas of broadcast box pairs."""
    inter_wh = jnp.maximum(jnp.minimum(a[..., 2:], b[..., 2:]) - jnp.maximum(a[..., :2], b[..., :2]), 0.0)
    encl_wh = jnp.maximum(jnp.maximum(a[..., 2:], b[..., 2:]) - jnp.minimum(a[..., :2], b[..., :2]), 0.0)
    return inter_wh[..., 0] * inter_wh[..., 1], encl_wh[..., 0] * encl_wh[..., 1]


def aligned_areas(pred: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Return ``(i, u, e)``: intersection, union and enclosing-box areas of aligned box pairs.

    These are the inputs of the ``reg`` loss form. All three are >= 0 and finite, and
    ``i <= u <= e`` holds for valid boxes; zero-area pairs give ``(0, 0, e)``.
    """
    inter, encl = _intersection_and_enclosure(pred, target)
    union = box_area(pred) + box_area(target) - inter
    return inter, jnp.maximum(union, 0.0), encl


def aligned_iou(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Return the IoU of aligned box pairs ``[..., 4], [..., 4] -> [...]``."""
    inter, union, _ = aligned_areas(pred, target)
    return inter / (union + IOU_EPS)


def box_iou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Return the pairwise IoU matrix ``[..., N, 4], [..., M, 4] -> [..., N, M]``."""
    return aligned_iou(a[..., :, None, :], b[..., None, :, :])


def encode_ltrb(points: jax.Array, boxes: jax.Array) -> jax.Array:
    """Return FCOS distances (left, top, right, bottom) from points ``[P, 2]`` to boxes ``[..., 4]``.

    Broadcasts ``points`` against the leading axes of ``boxes`` (e.g. boxes ``[P, M, 4]`` with
    ``points[:, None]``); negative distances mean the point lies outside the box.
    """
    x, y = points[..., 0], points[..., 1]
    return jnp.stack([x - boxes[..., 0], y - boxes[..., 1], boxes[..., 2] - x, boxes[..., 3] - y], axis=-1)


def decode_ltrb(points: jax.Array, ltrb: jax.Array) -> jax.Array:
    """Return boxes ``x1, y1, x2, y2`` from points ``[..., 2]`` and distances ``[..., 4]``."""
    x, y = points[..., 0], points[..., 1]
    return jnp.stack([x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]], axis=-1)


def clip_boxes(boxes: jax.Array, height: float, width: float) -> jax.Array:
    """Return boxes clipped to the image ``[0, width] x [0, height]``."""
    upper = jnp.array([width, height, width, height], boxes.dtype)
    return jnp.clip(boxes, 0.0, upper)


class Detections(NamedTuple):
    """Fixed-size detections per image; slots with ``valid == False`` are padding."""

    boxes: jax.Array  # [B, K, 4]
    scores: jax.Array  # [B, K]
    classes: jax.Array  # [B, K] int32, -1 on padding
    valid: jax.Array  # [B, K] bool


def _nms_single(boxes, scores, classes, valid, iou_threshold: float, max_output: int) -> Detections:
    """Class-aware greedy NMS for one image with static output size ``max_output``."""
    num = boxes.shape[0]
    order = jnp.argsort(jnp.where(valid, -scores, jnp.inf))
    boxes, scores, classes, valid = boxes[order], scores[order], classes[order], valid[order]
    same_class = classes[:, None] == classes[None, :]
    later = jnp.arange(num)[None, :] > jnp.arange(num)[:, None]
    suppresses = (box_iou(boxes, boxes) > iou_threshold) & same_class & later

    def visit(index, keep):
        return keep & ~(suppresses[index] & keep[index])

    keep = jax.lax.fori_loop(0, num, visit, valid)
    # Stable sort puts kept candidates first, still in descending score order.
    slots = jnp.argsort(~keep, stable=True)[:max_output]
    kept = keep[slots]
    return Detections(
        boxes=jnp.where(kept[:, None], boxes[slots], 0.0),
        scores=jnp.where(kept, scores[slots], 0.0),
        classes=jnp.where(kept, classes[slots], -1).astype(jnp.int32),
        valid=kept,
    )


def batched_nms(
    boxes: jax.Array,
    scores: jax.Array,
    classes: jax.Array,
    valid: jax.Array | None = None,
    *,
    iou_threshold: float,
    max_output: int,
) -> Detections:
    """Return class-aware NMS results ``[B, max_output]`` from candidates ``[B, K]``.

    Greedy suppression in descending score order: a candidate is dropped when a kept,
    higher-scoring candidate of the same class overlaps it with IoU > ``iou_threshold``. The
    ``K x K`` suppression matrix is built once, then one ``fori_loop`` pass over the sorted
    candidates; fine for K up to about a thousand. Candidates with ``valid == False`` (default:
    all valid) are never kept and never suppress others.
    """
    if valid is None:
        valid = jnp.ones(scores.shape, bool)
    num = boxes.shape[1]
    if num < max_output:
        pad = max_output - num
        boxes = jnp.pad(boxes, ((0, 0), (0, pad), (0, 0)))
        scores = jnp.pad(scores, ((0, 0), (0, pad)))
        classes = jnp.pad(classes, ((0, 0), (0, pad)), constant_values=-1)
        valid = jnp.pad(valid, ((0, 0), (0, pad)))
    single = lambda b, s, c, v: _nms_single(b, s, c, v, iou_threshold, max_output)
    return jax.vmap(single)(boxes, scores, classes, valid)
