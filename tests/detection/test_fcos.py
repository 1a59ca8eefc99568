"""FCOS targets, model outputs, loss plug points and inference on synthetic images."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic_batches import synthetic_batch

from detection.fcos import FCOS, FCOSConfig, apply_model, init_params, predict
from detection.fcos_loss import centerness_targets, fcos_loss, regression_weights
from detection.fcos_targets import assign_targets, feature_points
from detection.losses import binary_cross_entropy, sigmoid_focal_loss

CONFIG = FCOSConfig(num_classes=3, image_size=64)


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(0))


@pytest.fixture(scope="module")
def outputs(params):
    return jax.jit(apply_model, static_argnames="config")(params, synthetic_batch(4, 64, 0)["images"], CONFIG)


def test_feature_points_cover_each_level_at_cell_centers():
    points = feature_points((64, 48), (8, 16), ((0, 64), (64, 1e8)))
    assert points.level_shapes == ((8, 6), (4, 3))
    assert points.points.shape == (8 * 6 + 4 * 3, 2)
    np.testing.assert_array_equal(points.points[:2], [[4, 4], [12, 4]])
    np.testing.assert_array_equal(points.points[48], [8, 8])
    np.testing.assert_array_equal(points.strides[[0, 47, 48]], [8, 8, 16])


def one_box_targets(box, radius=1.5, size_ranges=((0, 64), (64, 1e8)), label=2):
    points = feature_points((64, 64), (8, 16), size_ranges)
    targets = assign_targets(
        points, jnp.array([box], jnp.float32), jnp.array([label]), jnp.array([True]), radius=radius
    )
    return points, targets


def test_center_region_points_are_positive_with_exact_ltrb():
    box = (8.0, 8.0, 56.0, 40.0)  # center (32, 24), max ltrb distance <= 48: level 0 only
    points, targets = one_box_targets(box)
    xy, positive = points.points, np.asarray(targets.positive)
    level0 = points.strides == 8
    in_center = (np.abs(xy[:, 0] - 32) < 12) & (np.abs(xy[:, 1] - 24) < 12)
    np.testing.assert_array_equal(positive, in_center & level0)
    expected_ltrb = np.stack([xy[:, 0] - 8, xy[:, 1] - 8, 56 - xy[:, 0], 40 - xy[:, 1]], 1)
    np.testing.assert_allclose(np.asarray(targets.ltrb)[positive], expected_ltrb[positive])
    assert np.all(np.asarray(targets.labels)[positive] == 2)
    assert np.all(np.asarray(targets.labels)[~positive] == -1)
    assert np.all(np.asarray(targets.ltrb)[~positive] == 0)


def test_without_center_sampling_every_inside_point_is_positive():
    points, targets = one_box_targets((8.0, 8.0, 56.0, 40.0), radius=None)
    xy = points.points
    inside = (xy[:, 0] > 8) & (xy[:, 0] < 56) & (xy[:, 1] > 8) & (xy[:, 1] < 40) & (points.strides == 8)
    np.testing.assert_array_equal(np.asarray(targets.positive), inside)


def test_size_ranges_send_large_boxes_to_coarse_levels():
    # Max ltrb distance of this box is > 20 at every point: only the level-1 range accepts it.
    points, targets = one_box_targets((0.0, 0.0, 64.0, 64.0), size_ranges=((0, 20), (20, 1e8)))
    positive = np.asarray(targets.positive)
    assert positive.any() and not positive[points.strides == 8].any()


def test_smallest_box_wins_and_invalid_boxes_are_ignored():
    points = feature_points((64, 64), (8,), ((0, 1e8),))
    boxes = jnp.array([[0, 0, 64, 64], [16, 16, 48, 48], [24, 24, 40, 40]], jnp.float32)
    labels = jnp.array([0, 1, 2])
    targets = assign_targets(points, boxes, labels, jnp.array([True, True, False]), radius=None)
    center = np.flatnonzero((points.points[:, 0] == 28) & (points.points[:, 1] == 28))[0]
    corner = np.flatnonzero((points.points[:, 0] == 4) & (points.points[:, 1] == 4))[0]
    assert int(targets.labels[center]) == 1  # box 2 is smaller but invalid
    assert int(targets.labels[corner]) == 0


def test_model_output_shapes(outputs):
    num_points = 8 * 8 + 4 * 4 + 2 * 2
    assert outputs.cls_logits.shape == (4, num_points, 3)
    assert outputs.ltrb.shape == (4, num_points, 4)
    assert outputs.quality_logits.shape == (4, num_points)
    assert np.all(np.asarray(outputs.ltrb) >= 0)
    # Classifier bias starts at the prior probability 0.01.
    assert abs(float(jax.nn.sigmoid(outputs.cls_logits).mean()) - 0.01) < 0.005


@functools.partial(jax.jit, static_argnames=("cls_loss", "alpha_balance"))
def loss_with(outputs, batch, cls_loss, alpha_balance=None):
    return fcos_loss(outputs, batch, CONFIG, cls_loss=cls_loss, reg_loss="giou", alpha_balance=alpha_balance)


def hand_written_bce(x, y, w):
    p = jax.nn.sigmoid(x)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def test_custom_sigmoid_form_loss_plugs_in_like_builtin_bce(outputs):
    batch = synthetic_batch(4, 64, 0)
    builtin_total, builtin = loss_with(outputs, batch, binary_cross_entropy)
    custom_total, custom = loss_with(outputs, batch, hand_written_bce)
    np.testing.assert_allclose(custom_total, builtin_total, rtol=1e-5)
    np.testing.assert_allclose(custom["loss_cls"], builtin["loss_cls"], rtol=1e-5)
    assert float(builtin["num_positive"]) > 0
    assert all(np.isfinite(v) for v in builtin.values())


def test_nan_returning_loss_gives_nan_total(outputs):
    total, _ = loss_with(outputs, synthetic_batch(4, 64, 0), lambda x, y, w: x * jnp.nan)
    assert np.isnan(total)


def test_alpha_balance_wraps_candidates_but_not_builtin_focal(outputs):
    batch = synthetic_batch(4, 64, 0)
    _, plain = loss_with(outputs, batch, binary_cross_entropy)
    _, balanced = loss_with(outputs, batch, binary_cross_entropy, alpha_balance=0.25)
    assert float(balanced["loss_cls"]) < float(plain["loss_cls"])  # almost every entry is a 0.75-weighted negative
    _, focal = loss_with(outputs, batch, sigmoid_focal_loss)
    _, focal_balanced = loss_with(outputs, batch, sigmoid_focal_loss, alpha_balance=0.25)
    np.testing.assert_allclose(focal["loss_cls"], focal_balanced["loss_cls"])


def test_classification_weight_is_detached_iou_at_positive_class(outputs):
    @jax.jit
    def captured_inputs(outputs, batch):
        seen = {}

        def spy(x, y, w):
            seen.update(y=y, w=w)
            return binary_cross_entropy(x, y, w)

        fcos_loss(outputs, batch, CONFIG, cls_loss=spy, reg_loss="iou")
        return seen["y"], seen["w"]

    y, w = (np.asarray(v) for v in captured_inputs(outputs, synthetic_batch(4, 64, 0)))
    assert y.shape == w.shape == (4, 84, 3)
    assert np.all(w[y == 0] == 0) and np.all((w[y == 1] > 0) & (w[y == 1] <= 1))
    assert np.all(y.sum(-1) <= 1)


def test_centerness_target_is_one_at_the_center_and_falls_toward_the_border():
    ltrb = jnp.array([[5.0, 5.0, 5.0, 5.0], [1.0, 4.0, 9.0, 4.0], [0.0, 3.0, 6.0, 3.0]])
    np.testing.assert_allclose(centerness_targets(ltrb), [1.0, 1.0 / 3.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("weighting", ["centerness", "iou", "uniform"])
def test_regression_weights_are_zero_off_positives_and_positive_on_them(weighting):
    positive = jnp.array([[True, False, True]])
    ltrb = jnp.array([[[2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 3.0, 1.0]]])
    iou = jnp.array([[0.5, 0.0, 1e-7]])
    weights = np.asarray(regression_weights(weighting, ltrb, iou, positive))
    assert weights[0, 1] == 0 and np.all(weights[0, [0, 2]] > 0)


def test_uniform_weighting_averages_the_loss_over_positives(outputs):
    config = FCOSConfig(num_classes=3, image_size=64, regression_weighting="uniform")
    _, metrics = fcos_loss(outputs, synthetic_batch(4, 64, 0), config, reg_loss="iou")
    assert float(metrics["num_positive"]) > 0
    np.testing.assert_allclose(metrics["loss_reg"], 1.0 - metrics["mean_iou"], rtol=1e-4, atol=1e-6)


def test_default_size_ranges_suit_128_pixel_images():
    assert FCOSConfig(num_classes=3).size_ranges == ((0.0, 32.0), (32.0, 64.0), (64.0, 1e8))


def test_unknown_regression_weighting_is_rejected():
    with pytest.raises(ValueError, match="regression_weighting"):
        FCOSConfig(num_classes=3, regression_weighting="centreness")


def test_predict_returns_fixed_size_detections(params):
    images = synthetic_batch(2, 64, 1)["images"]
    detections = predict(params, images, CONFIG)
    assert detections.boxes.shape == (2, 100, 4)
    assert detections.scores.shape == detections.classes.shape == detections.valid.shape == (2, 100)
    scores, valid = np.asarray(detections.scores), np.asarray(detections.valid)
    assert np.all(scores[valid] > CONFIG.score_threshold) and np.all(scores[~valid] == 0)
    assert np.all(np.diff(scores[0][valid[0]]) <= 0)
    boxes = np.asarray(detections.boxes)
    assert np.all((boxes >= 0) & (boxes <= 64))


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_gpu_presets_build_with_fcos_paper_levels(backbone):
    config = FCOSConfig(num_classes=80, image_size=256, backbone=backbone, fpn_width=256, head_convs=4,
                        strides=(8, 16, 32, 64, 128), size_range_multiple=8.0)
    shapes = jax.eval_shape(FCOS(config).init, jax.random.key(0), jnp.zeros((1, 256, 256, 3)))
    out = jax.eval_shape(FCOS(config).apply, shapes, jnp.zeros((2, 256, 256, 3)))
    assert out.cls_logits.shape == (2, 32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2, 80)
    assert config.size_ranges[0] == (0.0, 64.0) and config.size_ranges[-1][0] == 512.0
