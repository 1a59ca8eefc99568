"""Multi-level RoIAlign (He et al. 2017, sec. 3): bilinear sampling of FPN features inside each RoI.

Semantics are those of torchvision's and mmdetection's ``RoIAlign(aligned=True)`` with a fixed
sampling ratio: an RoI is scaled to the level by ``1 / stride`` and shifted by half a pixel, cut
into ``output_size x output_size`` bins, each bin averages ``sampling_ratio²`` regularly spaced
bilinear samples; a sample more than one cell outside the map contributes 0, one within a cell
of the border reads the clamped border value.

Two vectorized implementations with the same values (no Python loop over RoIs):

- ``gather``: the levels of one image share one flattened ``[sum(H * W), C]`` buffer, so every
  sample of every RoI is four corner-row gathers whichever level the RoI maps to (GPUs);
- ``matmul``: sampling and bin averaging are separable, so each level is two dense contractions
  with per-RoI weight matrices (CPUs, where XLA's gather costs ~70 ns a row; measured several
  times faster at the tiny default's map sizes, forward and backward).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def roi_levels(
    rois: jax.Array, num_levels: int, *, first_level: int, canonical_scale: float, canonical_level: int
) -> jax.Array:
    """Return the pyramid index (0 = finest) of each RoI ``[..., 4]`` by the canonical FPN rule.

    ``k = floor(canonical_level + log2(sqrt(w h) / canonical_scale))`` (Lin et al. 2017, eq. 1),
    clamped to the available levels ``first_level .. first_level + num_levels - 1`` (k is log2 of
    the stride).
    """
    wh = jnp.maximum(rois[..., 2:] - rois[..., :2], 1e-6)
    scale = jnp.sqrt(wh[..., 0] * wh[..., 1])
    level = jnp.floor(canonical_level + jnp.log2(scale / canonical_scale + 1e-8))
    return (jnp.clip(level, first_level, first_level + num_levels - 1) - first_level).astype(jnp.int32)


def _sample_offsets(output_size: int, sampling_ratio: int) -> np.ndarray:
    """Return sample positions inside a unit RoI, ``[output_size * sampling_ratio]`` in (0, 1)."""
    steps = output_size * sampling_ratio
    return ((np.arange(steps) + 0.5) / steps).astype(np.float32)


def _level_geometry(strides, rois, levels):
    """Return each RoI's box in its level's cell coordinates (aligned: shifted by half a cell)."""
    scale = 1.0 / jnp.asarray(strides, rois.dtype)[levels]
    return rois * scale[..., None] - 0.5


def _axis_samples(start, end, size, output_size, sampling_ratio):
    """Return bilinear corners ``(low, high, frac, inside)`` of the samples ``[R, T]`` along one axis."""
    unit = jnp.asarray(_sample_offsets(output_size, sampling_ratio))
    coord = start[:, None] + unit[None, :] * (end - start)[:, None]
    inside = (coord >= -1.0) & (coord <= size)
    coord = jnp.clip(coord, 0.0, size - 1.0)
    low = jnp.floor(coord)
    high = jnp.minimum(low + 1.0, size - 1.0)
    return low.astype(jnp.int32), high.astype(jnp.int32), coord - low, inside


def roi_align_gather(
    features: list[jax.Array],
    strides: tuple[int, ...],
    rois: jax.Array,
    levels: jax.Array,
    *,
    output_size: int = 7,
    sampling_ratio: int = 2,
) -> jax.Array:
    """Return RoIAlign features ``[R, S, S, C]`` of one image's RoIs ``[R, 4]`` by gathering corner rows.

    ``features`` are the image's maps ``[H_l, W_l, C]`` with ``strides``; ``levels [R]`` indexes
    them. The levels share one flattened buffer, so each sample is four row gathers (fast on GPUs;
    XLA's CPU gather is slow, see :func:`roi_align_matmul`).
    """
    heights = np.array([f.shape[0] for f in features], np.int32)
    widths = np.array([f.shape[1] for f in features], np.int32)
    offsets = np.concatenate([[0], np.cumsum(heights * widths)[:-1]]).astype(np.int32)
    flat = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in features], axis=0)  # [sum HW, C]
    boxes = _level_geometry(strides, rois, levels)
    height = jnp.asarray(heights, jnp.float32)[levels][:, None]
    width = jnp.asarray(widths, jnp.float32)[levels][:, None]
    y_low, y_high, y_frac, y_in = _axis_samples(boxes[:, 1], boxes[:, 3], height, output_size, sampling_ratio)
    x_low, x_high, x_frac, x_in = _axis_samples(boxes[:, 0], boxes[:, 2], width, output_size, sampling_ratio)
    row_width = jnp.asarray(widths)[levels][:, None, None]
    base = jnp.asarray(offsets)[levels][:, None, None]

    def gather(y_index, x_index):  # [R, T] x [R, T] -> [R, T, T, C] (y, x grid)
        return flat[base + y_index[:, :, None] * row_width + x_index[:, None, :]]

    wy_low, wy_high = (1.0 - y_frac)[:, :, None, None], y_frac[:, :, None, None]
    wx_low, wx_high = (1.0 - x_frac)[:, None, :, None], x_frac[:, None, :, None]
    values = (
        wy_low * wx_low * gather(y_low, x_low)
        + wy_low * wx_high * gather(y_low, x_high)
        + wy_high * wx_low * gather(y_high, x_low)
        + wy_high * wx_high * gather(y_high, x_high)
    )
    values = values * (y_in[:, :, None, None] & x_in[:, None, :, None])
    num_rois, channels = rois.shape[0], flat.shape[-1]
    binned = values.reshape(num_rois, output_size, sampling_ratio, output_size, sampling_ratio, channels)
    return binned.mean(axis=(2, 4))


def _axis_weights(start, end, size: int, output_size: int, sampling_ratio: int) -> jax.Array:
    """Return the bin-averaged bilinear weights ``[R, output_size, size]`` of the samples along one axis."""
    low, high, frac, inside = _axis_samples(start, end, size, output_size, sampling_ratio)
    cells = jnp.arange(size)
    weights = (1.0 - frac)[..., None] * (cells == low[..., None]) + frac[..., None] * (cells == high[..., None])
    weights = weights * inside[..., None]
    return weights.reshape(start.shape[0], output_size, sampling_ratio, size).mean(axis=2)


def roi_align_matmul(
    features: list[jax.Array],
    strides: tuple[int, ...],
    rois: jax.Array,
    levels: jax.Array,
    *,
    output_size: int = 7,
    sampling_ratio: int = 2,
) -> jax.Array:
    """Return the same features as :func:`roi_align_gather`, computed as separable weight matrices.

    Bilinear sampling and bin averaging are linear and separable in y and x, so a bin is
    ``A_y F A_x^T`` with ``A [S, H]`` rows of averaged bilinear weights (zero for RoIs on other
    levels). Dense contractions instead of gathers: several times faster on CPUs at small maps;
    the cost grows with ``H * W`` per RoI, so large maps should use the gather version.
    """
    boxes = _level_geometry(strides, rois, levels)
    pooled = 0.0
    for level, feature in enumerate(features):
        height, width = feature.shape[:2]
        on_level = (levels == level)[:, None, None].astype(feature.dtype)
        weights_y = _axis_weights(boxes[:, 1], boxes[:, 3], height, output_size, sampling_ratio) * on_level
        weights_x = _axis_weights(boxes[:, 0], boxes[:, 2], width, output_size, sampling_ratio)
        columns = jnp.einsum("rqw,hwc->rhqc", weights_x, feature)
        pooled = pooled + jnp.einsum("rph,rhqc->rpqc", weights_y, columns)
    return pooled


ROI_ALIGN_METHODS = {"gather": roi_align_gather, "matmul": roi_align_matmul}


def multilevel_roi_align(
    features: list[jax.Array],
    strides: tuple[int, ...],
    rois: jax.Array,
    *,
    output_size: int = 7,
    sampling_ratio: int = 2,
    canonical_scale: float = 224.0,
    canonical_level: int = 4,
    method: str = "gather",
) -> jax.Array:
    """Return RoIAlign features ``[B, R, S, S, C]`` for RoIs ``[B, R, 4]`` on maps ``[B, H_l, W_l, C]``.

    Each RoI reads from the level :func:`roi_levels` picks; ``strides`` must be consecutive powers
    of 2. ``method`` is a key of ``ROI_ALIGN_METHODS``; both give the same values.
    """
    if method not in ROI_ALIGN_METHODS:
        raise ValueError(f"unknown RoIAlign method {method!r}; choose one of {sorted(ROI_ALIGN_METHODS)}")
    align_single = ROI_ALIGN_METHODS[method]
    first_level = int(np.log2(strides[0]))
    levels = roi_levels(
        rois,
        len(strides),
        first_level=first_level,
        canonical_scale=canonical_scale,
        canonical_level=canonical_level,
    )
    align = lambda image_features, image_rois, image_levels: align_single(
        image_features, strides, image_rois, image_levels, output_size=output_size, sampling_ratio=sampling_ratio
    )
    return jax.vmap(align)(features, rois, levels)
