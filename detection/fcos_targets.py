"""FCOS training targets: feature points per level and their assignment to ground-truth boxes.

Assignment follows FCOS (Tian et al. 2019, sec. 3.1-3.2) with the center-sampling improvement
of the FCOS release: a point is a positive for a box when it lies inside the box's *center
region* (the box intersected with a square of half-side ``radius * stride`` around the box
center), and the box's maximum ltrb distance falls in the point's level size range; among
several such boxes the smallest-area one wins.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from detection.backbone import feature_size
from detection.boxes import box_area, encode_ltrb

# Upper bound of the last level's size range (FCOS's INF), finite so float32 math stays exact.
UNBOUNDED = 1e8


class FeaturePoints(NamedTuple):
    """All feature-map points of a pyramid, level after level, each map row-major."""

    points: np.ndarray  # [P, 2] float32 (x, y) pixels, at cell centers
    strides: np.ndarray  # [P] float32, the stride of each point's level
    size_ranges: np.ndarray  # [P, 2] float32, (low, high) max-ltrb-distance range of each point
    level_shapes: tuple[tuple[int, int], ...]  # (height, width) of each level's map


class PointTargets(NamedTuple):
    """Per-point training targets (leading batch axis when batched)."""

    labels: jax.Array  # [..., P] int32 class index, -1 for background
    ltrb: jax.Array  # [..., P, 4] distances to the assigned box, pixels (0 on background)
    positive: jax.Array  # [..., P] bool


def default_size_ranges(strides: tuple[int, ...], multiple: float = 8.0) -> tuple[tuple[float, float], ...]:
    """Return FCOS's size ranges: level boundaries at ``multiple`` x stride, the last level unbounded.

    With the FCOS ``multiple=8`` and strides 8..128 this gives FCOS's (0, 64), (64, 128),
    (128, 256), (256, 512), (512, inf). That rule is tuned for 800-pixel images; on 128-pixel
    images (objects 8-110 px) it puts almost every object on P3 and none on P5, so
    ``FCOSConfig`` defaults to ``multiple=4`` (see ``FCOSConfig.size_range_multiple``).
    """
    bounds = [0.0] + [multiple * s for s in strides[:-1]] + [UNBOUNDED]
    return tuple((bounds[i], bounds[i + 1]) for i in range(len(strides)))


def feature_points(
    image_size: tuple[int, int], strides: tuple[int, ...], size_ranges: tuple[tuple[float, float], ...]
) -> FeaturePoints:
    """Return the points of every pyramid level for an ``(height, width)`` image."""
    points, point_strides, ranges, shapes = [], [], [], []
    for stride, size_range in zip(strides, size_ranges, strict=True):
        height, width = feature_size(image_size[0], stride), feature_size(image_size[1], stride)
        ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        # Cell centers at stride // 2, as in the FCOS release.
        level = np.stack([xs.ravel(), ys.ravel()], axis=-1) * stride + stride // 2
        points.append(level.astype(np.float32))
        point_strides.append(np.full(len(level), stride, np.float32))
        ranges.append(np.tile(np.asarray(size_range, np.float32), (len(level), 1)))
        shapes.append((height, width))
    return FeaturePoints(
        np.concatenate(points), np.concatenate(point_strides), np.concatenate(ranges), tuple(shapes)
    )


def assign_targets(
    points: FeaturePoints, boxes: jax.Array, labels: jax.Array, valid: jax.Array, *, radius: float | None
) -> PointTargets:
    """Return the targets of every point for one image's boxes ``[M, 4]``, labels and valid ``[M]``.

    ``radius`` is the center-sampling radius in strides (1.5 in the FCOS release); ``None`` or 0
    makes every point inside a box a candidate (original FCOS).
    """
    num_points = points.points.shape[0]
    if boxes.shape[0] == 0:
        return PointTargets(
            jnp.full((num_points,), -1, jnp.int32), jnp.zeros((num_points, 4)), jnp.zeros((num_points,), bool)
        )
    xy = jnp.asarray(points.points)[:, None, :]  # [P, 1, 2]
    ltrb = encode_ltrb(xy, boxes[None])  # [P, M, 4]
    if radius:
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2.0
        half_side = radius * jnp.asarray(points.strides)[:, None, None]
        region_low = jnp.maximum(centers[None] - half_side, boxes[None, :, :2])
        region_high = jnp.minimum(centers[None] + half_side, boxes[None, :, 2:])
        inside = jnp.all(xy > region_low, axis=-1) & jnp.all(xy < region_high, axis=-1)
    else:
        inside = jnp.min(ltrb, axis=-1) > 0
    max_distance = jnp.max(ltrb, axis=-1)
    size_ranges = jnp.asarray(points.size_ranges)
    in_range = (max_distance >= size_ranges[:, :1]) & (max_distance <= size_ranges[:, 1:])
    candidate = inside & in_range & valid[None, :]
    areas = jnp.where(candidate, box_area(boxes)[None, :], jnp.inf)
    chosen = jnp.argmin(areas, axis=1)
    positive = jnp.any(candidate, axis=1)
    chosen_ltrb = jnp.take_along_axis(ltrb, chosen[:, None, None], axis=1)[:, 0]
    return PointTargets(
        labels=jnp.where(positive, labels[chosen], -1).astype(jnp.int32),
        ltrb=jnp.where(positive[:, None], chosen_ltrb, 0.0),
        positive=positive,
    )


def assign_targets_batch(points: FeaturePoints, batch: dict, *, radius: float | None) -> PointTargets:
    """Return :func:`assign_targets` for every image of a batch (leading axis ``B``)."""
    assign = lambda boxes, labels, valid: assign_targets(points, boxes, labels, valid, radius=radius)
    return jax.vmap(assign)(batch["boxes"], batch["labels"], batch["valid"])
