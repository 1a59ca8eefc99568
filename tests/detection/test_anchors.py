"""Anchors per level, the delta box coder and the Faster R-CNN config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from detection.anchors import MAX_LOG_SCALE, decode_deltas, encode_deltas, level_anchors, pyramid_anchors
from detection.faster_rcnn_config import FasterRCNNConfig

STDS = (0.1, 0.1, 0.2, 0.2)


def test_level_anchors_are_centered_on_cells_with_size_and_ratio():
    anchors = level_anchors((64, 48), 16, sizes=(32.0,), ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (4 * 3 * 3, 4)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_allclose(centers[:3], [[8, 8]] * 3)
    np.testing.assert_allclose(centers[3], [24, 8])  # next cell along x (row-major)
    np.testing.assert_allclose(centers[9], [8, 24])  # first cell of the second row
    wh = anchors[:3, 2:] - anchors[:3, :2]
    np.testing.assert_allclose(wh[:, 0] * wh[:, 1], 32.0**2, rtol=1e-5)
    np.testing.assert_allclose(wh[:, 1] / wh[:, 0], [0.5, 1.0, 2.0], rtol=1e-5)


def test_pyramid_anchors_concatenate_levels():
    anchors, counts = pyramid_anchors((64, 64), (8, 16, 32), ((16.0, 24.0), (32.0, 48.0), (64.0, 96.0)), (1.0,))
    assert counts == (8 * 8 * 2, 4 * 4 * 2, 2 * 2 * 2)
    assert anchors.shape == (sum(counts), 4)
    config = FasterRCNNConfig(num_classes=3, image_size=64)
    assert config.anchors[0].shape == (sum(c * 3 for c in counts), 4)
    assert config.num_anchors_per_cell == 6


def test_deltas_round_trip_and_zero_deltas_keep_the_reference():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (50, 2))
    reference = np.concatenate([xy, xy + rng.uniform(4, 60, (50, 2))], axis=1).astype(np.float32)
    target = np.concatenate([xy + 3, xy + rng.uniform(4, 60, (50, 2))], axis=1).astype(np.float32)
    deltas = encode_deltas(jnp.asarray(reference), jnp.asarray(target), STDS)
    np.testing.assert_allclose(decode_deltas(jnp.asarray(reference), deltas, STDS), target, atol=1e-3)
    np.testing.assert_allclose(
        decode_deltas(jnp.asarray(reference), jnp.zeros((50, 4)), STDS), reference, rtol=1e-6, atol=1e-4
    )
    # Normalization: a shift of one reference width is a delta of 1 / std.
    shifted = reference + np.array([1, 0, 1, 0]) * (reference[:, 2:3] - reference[:, 0:1])
    np.testing.assert_allclose(encode_deltas(jnp.asarray(reference), jnp.asarray(shifted), STDS)[:, 0], 10.0, rtol=1e-5)


def test_decode_clamps_huge_log_scales():
    reference = jnp.array([[0.0, 0.0, 10.0, 10.0]])
    boxes = decode_deltas(reference, jnp.array([[0.0, 0.0, 1e4, -1e4]]), (1.0, 1.0, 1.0, 1.0))
    assert np.all(np.isfinite(boxes))
    np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], 10.0 * np.exp(MAX_LOG_SCALE), rtol=1e-4)
    grads = jax.grad(lambda d: decode_deltas(reference, d, STDS).sum())(jnp.full((1, 4), 1e4))
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbone": "vgg"}, "backbone"),
        ({"anchor_sizes": ((16.0,), (32.0,))}, "anchor size"),
        ({"anchor_sizes": ((16.0,), (32.0, 48.0), (64.0,))}, "same number"),
        ({"roi_strides": (4, 8)}, "consecutive"),
        ({"roi_strides": (8, 32)}, "consecutive"),
        ({"roi_align_method": "loop"}, "roi_align_method"),
    ],
)
def test_config_rejects_inconsistent_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        FasterRCNNConfig(**changes)
