"""RoIAlign against a direct NumPy bilinear reference, level assignment and static shapes under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from detection.roi_align import ROI_ALIGN_METHODS, multilevel_roi_align, roi_levels

STRIDES = (8, 16, 32)


def bilinear_reference(feature, y, x):
    """Return torchvision's RoIAlign bilinear sample of ``feature [H, W, C]`` at (y, x)."""
    height, width = feature.shape[:2]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feature.shape[-1])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    return (
        (1 - ly) * (1 - lx) * feature[y_low, x_low]
        + (1 - ly) * lx * feature[y_low, x_high]
        + ly * (1 - lx) * feature[y_high, x_low]
        + ly * lx * feature[y_high, x_high]
    )


def roi_align_reference(feature, roi, stride, output_size=7, sampling_ratio=2):
    """Return RoIAlign(aligned=True) of one RoI on one map with explicit loops."""
    x1, y1, x2, y2 = np.asarray(roi, np.float64) / stride - 0.5
    bin_h, bin_w = (y2 - y1) / output_size, (x2 - x1) / output_size
    out = np.zeros((output_size, output_size, feature.shape[-1]))
    for py in range(output_size):
        for px in range(output_size):
            for iy in range(sampling_ratio):
                for ix in range(sampling_ratio):
                    y = y1 + py * bin_h + (iy + 0.5) * bin_h / sampling_ratio
                    x = x1 + px * bin_w + (ix + 0.5) * bin_w / sampling_ratio
                    out[py, px] += bilinear_reference(feature, y, x)
    return out / sampling_ratio**2


def pyramid(batch, size=64, channels=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, size // s, size // s, channels)).astype(np.float32) for s in STRIDES]


ROIS = np.array(
    [
        [[3.0, 5.0, 20.0, 17.5], [10.0, 10.0, 60.0, 50.0], [-6.0, -4.0, 12.0, 30.0], [40.0, 44.0, 70.0, 66.0]],
        [[0.0, 0.0, 64.0, 64.0], [20.5, 30.25, 21.5, 31.0], [50.0, 2.0, 63.0, 40.0], [0.0, 0.0, 0.0, 0.0]],
    ],
    np.float32,
)
SETTINGS = {"canonical_scale": 32.0, "canonical_level": 4}


def test_roi_levels_follow_the_canonical_rule():
    rois = jnp.array([[0, 0, 10, 10], [0, 0, 16, 16], [0, 0, 31, 32], [0, 0, 32, 32], [0, 0, 64, 64], [0, 0, 500, 500]])
    levels = roi_levels(rois, 3, first_level=3, canonical_scale=32.0, canonical_level=4)
    # sqrt(area) < 16 -> k <= 2 clamps to P3; [16, 32) -> P3; [32, 64) -> P4; >= 64 -> P5.
    np.testing.assert_array_equal(levels, [0, 0, 0, 1, 2, 2])


@pytest.mark.parametrize("method", sorted(ROI_ALIGN_METHODS))
def test_roi_align_matches_numpy_bilinear_reference(method):
    features = pyramid(2)
    got = np.asarray(
        multilevel_roi_align([jnp.asarray(f) for f in features], STRIDES, jnp.asarray(ROIS), method=method, **SETTINGS)
    )
    assert got.shape == (2, 4, 7, 7, 5)
    levels = np.asarray(roi_levels(jnp.asarray(ROIS), 3, first_level=3, **SETTINGS))
    assert set(levels.ravel()) == {0, 1, 2}  # the RoIs exercise every level
    for b in range(2):
        for r in range(4):
            level = levels[b, r]
            expected = roi_align_reference(features[level][b], ROIS[b, r], STRIDES[level])
            np.testing.assert_allclose(got[b, r], expected, atol=1e-5, err_msg=f"image {b} roi {r}")


def test_methods_agree_in_value_and_gradient_and_compile_once():
    features = [jnp.asarray(f) for f in pyramid(2)]

    def total(method, maps, rois):
        return jnp.sum(multilevel_roi_align(maps, STRIDES, rois, method=method, **SETTINGS) ** 2)

    grads = {
        m: jax.jit(jax.grad(total, argnums=1), static_argnums=0)(m, features, jnp.asarray(ROIS))
        for m in ROI_ALIGN_METHODS
    }
    for a, b in zip(grads["gather"], grads["matmul"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)

    align = jax.jit(lambda maps, rois: multilevel_roi_align(maps, STRIDES, rois, **SETTINGS, method="matmul"))
    align(features, jnp.asarray(ROIS))
    out = align([f + 1.0 for f in features], jnp.asarray(ROIS[::-1] * 0.5))
    assert out.shape == (2, 4, 7, 7, 5) and align._cache_size() == 1
