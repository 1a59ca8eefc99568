"""Anchor boxes per pyramid level and the Faster R-CNN box coder (deltas dx, dy, dw, dh).

Anchors follow the FPN/mmdetection layout: at every cell of every level, one anchor per (size,
aspect ratio) pair; a ratio is height / width and keeps the area at size². Anchors are centered
on cell centers, ``((x + 0.5) stride, (y + 0.5) stride)``, like the FCOS points.

The coder is R-CNN's parametrization (Girshick et al. 2014, appendix C): center offsets relative
to the reference size and log size ratios, divided by per-coordinate standard deviations
(mmdetection's ``DeltaXYWHBBoxCoder``: means 0, stds 1 for the RPN, (0.1, 0.1, 0.2, 0.2) for
the RoI head).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from detection.backbone import feature_size

# Largest |dw|, |dh| applied when decoding: a box grows at most 1000/16 times its reference, the
# ``wh_ratio_clip`` of mmdetection and ``bbox_xform_clip`` of Detectron. Keeps exp() finite.
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def level_anchors(
    image_size: tuple[int, int], stride: int, sizes: tuple[float, ...], ratios: tuple[float, ...]
) -> np.ndarray:
    """Return the anchors ``[H * W * A, 4]`` of one level: cells row-major, then (size, ratio) pairs."""
    height, width = feature_size(image_size[0], stride), feature_size(image_size[1], stride)
    shapes = []
    for size in sizes:
        for ratio in ratios:
            h_factor = math.sqrt(ratio)
            shapes.append((size / h_factor, size * h_factor))
    half = np.asarray(shapes, np.float32) / 2.0  # [A, 2] half width, half height
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centers = (np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float32) + 0.5) * stride  # [HW, 2]
    boxes = np.concatenate([centers[:, None] - half[None], centers[:, None] + half[None]], axis=-1)
    return boxes.reshape(-1, 4).astype(np.float32)


def pyramid_anchors(
    image_size: tuple[int, int],
    strides: tuple[int, ...],
    sizes: tuple[tuple[float, ...], ...],
    ratios: tuple[float, ...],
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return all anchors ``[N, 4]``, level after level, and the anchor count of each level."""
    levels = [level_anchors(image_size, s, level_sizes, ratios) for s, level_sizes in zip(strides, sizes, strict=True)]
    return np.concatenate(levels), tuple(len(level) for level in levels)


def encode_deltas(reference: jax.Array, target: jax.Array, stds: tuple[float, ...]) -> jax.Array:
    """Return the normalized deltas ``[..., 4]`` that move ``reference`` boxes onto ``target`` boxes."""
    ref_wh = jnp.maximum(reference[..., 2:] - reference[..., :2], 1e-3)
    tgt_wh = jnp.maximum(target[..., 2:] - target[..., :2], 1e-3)
    ref_center = (reference[..., :2] + reference[..., 2:]) / 2.0
    tgt_center = (target[..., :2] + target[..., 2:]) / 2.0
    deltas = jnp.concatenate([(tgt_center - ref_center) / ref_wh, jnp.log(tgt_wh / ref_wh)], axis=-1)
    return deltas / jnp.asarray(stds, deltas.dtype)


def decode_deltas(reference: jax.Array, deltas: jax.Array, stds: tuple[float, ...]) -> jax.Array:
    """Return the boxes ``[..., 4]`` that normalized ``deltas`` make of ``reference`` boxes."""
    deltas = deltas * jnp.asarray(stds, deltas.dtype)
    ref_wh = reference[..., 2:] - reference[..., :2]
    ref_center = (reference[..., :2] + reference[..., 2:]) / 2.0
    center = ref_center + deltas[..., :2] * ref_wh
    half_wh = ref_wh * jnp.exp(jnp.clip(deltas[..., 2:], -MAX_LOG_SCALE, MAX_LOG_SCALE)) / 2.0
    return jnp.concatenate([center - half_wh, center + half_wh], axis=-1)
