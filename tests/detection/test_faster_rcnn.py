"""Faster R-CNN: sampling, every stage's shapes under jit, loss plug points, a smoke train and evaluation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from synthetic_batches import synthetic_batch

from detection.evaluation import evaluate_detections
from detection.faster_rcnn import (
    RESNET50_FPN,
    FasterRCNN,
    FasterRCNNConfig,
    FasterRCNNOutputs,
    apply_box_head,
    apply_features,
    detections_from_rois,
    init_params,
    predict,
)
from detection.faster_rcnn_loss import default_reg_weight, faster_rcnn_loss, roi_head_loss, sample_rois
from detection.losses import softmax_cross_entropy
from detection.roi_sampling import assign_by_iou, sample_fixed_count
from detection.rpn import propose, rpn_loss

CONFIG = FasterRCNNConfig(num_classes=3, image_size=64)
# The programs below run a few times on tiny inputs: compiling them unoptimized saves more time than it costs.
QUICK = {"xla_backend_optimization_level": 0}
sample = jax.jit(sample_fixed_count, static_argnames=("num_samples", "positive_fraction"))
assign = jax.jit(assign_by_iou, static_argnames=("positive_iou", "negative_iou", "min_positive_iou"))


@pytest.fixture(scope="module")
def params():
    return init_params(CONFIG, jax.random.key(0))


def test_sampling_respects_the_positive_fraction_when_positives_abound():
    positive = jnp.arange(600) < 100
    samples = sample(jax.random.key(0), positive, ~positive, num_samples=64, positive_fraction=0.25)
    index, is_positive = np.asarray(samples.index), np.asarray(samples.positive)
    assert np.all(samples.valid) and is_positive.sum() == 16 and len(set(index)) == 64
    assert np.all(index[is_positive] < 100) and np.all(index[~is_positive] >= 100)
    again = sample(jax.random.key(0), positive, ~positive, num_samples=64, positive_fraction=0.25)
    other = sample(jax.random.key(1), positive, ~positive, num_samples=64, positive_fraction=0.25)
    np.testing.assert_array_equal(again.index, samples.index)
    assert set(np.asarray(other.index)) != set(index)


def test_sampling_fills_with_negatives_then_pads():
    positive = jnp.arange(40) < 5
    negative = (jnp.arange(40) >= 5) & (jnp.arange(40) < 15)
    few = sample(jax.random.key(0), positive, negative, num_samples=64, positive_fraction=0.25)
    assert few.index.shape == (64,)
    assert int(few.positive.sum()) == 5 and int(few.valid.sum()) == 15
    np.testing.assert_array_equal(np.sort(np.asarray(few.index)[np.asarray(few.valid)]), np.arange(15))
    many_negatives = jnp.arange(40) >= 5
    filled = sample(jax.random.key(0), positive, many_negatives, num_samples=32, positive_fraction=0.25)
    assert int(filled.positive.sum()) == 5 and bool(filled.valid.all())


def test_assignment_thresholds_and_low_quality_matches():
    gt = jnp.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
    boxes = jnp.array(
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 14.0], [0.0, 0.0, 10.0, 30.0], [50.0, 50.0, 60.0, 60.0]]
    )
    plain = assign(boxes, jnp.ones(4, bool), gt, jnp.array([True, False]), positive_iou=0.7, negative_iou=0.3)
    np.testing.assert_array_equal(plain.positive, [True, True, False, False])
    np.testing.assert_array_equal(plain.negative, [False, False, False, True])  # IoU 1/3 is ignored
    lonely = assign(
        boxes[2:],
        jnp.ones(2, bool),
        gt,
        jnp.array([True, False]),
        positive_iou=0.7,
        negative_iou=0.3,
        min_positive_iou=0.3,
    )
    np.testing.assert_array_equal(lonely.positive, [True, False])  # the object's best box, IoU 1/3


def jitted_stages():
    """Return every stage of training and inference, each jitted on its own."""
    stages = {
        "features": lambda p, images: apply_features(p, images, CONFIG),
        "propose": lambda outputs: propose(outputs, CONFIG),
        "rpn_loss": lambda outputs, b, k: rpn_loss(outputs, b, k, CONFIG),
        "sample_rois": lambda proposals, b, k: sample_rois(proposals, b, k, CONFIG),
        "box_head": lambda p, pyramid, rois: apply_box_head(p, pyramid, rois, CONFIG),
        "roi_head_loss": lambda logits, deltas, targets: roi_head_loss(logits, deltas, targets, CONFIG),
    }
    return {name: jax.jit(stage, compiler_options=QUICK) for name, stage in stages.items()}


def run_stages(stages, params, batch, key):
    """Return the outputs of every stage on ``batch``."""
    pyramid, rpn_outputs = stages["features"](params, batch["images"])
    proposals = stages["propose"](rpn_outputs)
    targets = stages["sample_rois"](proposals, batch, key)
    logits, deltas = stages["box_head"](params, pyramid, targets.rois)
    return dict(
        pyramid=pyramid,
        rpn=rpn_outputs,
        proposals=proposals,
        rpn_values=stages["rpn_loss"](rpn_outputs, batch, key),
        targets=targets,
        logits=logits,
        deltas=deltas,
        head_values=stages["roi_head_loss"](logits, deltas, targets),
    )


@pytest.fixture(scope="module")
def stages():
    return jitted_stages()


@pytest.fixture(scope="module")
def stage_run(params, stages):
    return run_stages(stages, params, synthetic_batch(4, 64, 0), jax.random.key(0))


def test_every_stage_has_static_shapes_and_compiles_once(params, stages, stage_run):
    first = stage_run
    second = run_stages(stages, params, synthetic_batch(4, 64, 5), jax.random.key(7))
    num_anchors = CONFIG.anchors[0].shape[0]
    assert [p.shape for p in second["pyramid"]] == [(4, 8, 8, 32), (4, 4, 4, 32), (4, 2, 2, 32)]
    assert second["rpn"].objectness.shape == (4, num_anchors) and second["rpn"].deltas.shape == (4, num_anchors, 4)
    assert second["proposals"].boxes.shape == (4, CONFIG.rpn_post_nms_top_k, 4)
    assert second["targets"].rois.shape == (4, CONFIG.rois_per_image, 4)
    assert second["logits"].shape == (4, CONFIG.rois_per_image, 4)
    assert second["deltas"].shape == (4, CONFIG.rois_per_image, 3, 4)
    assert all(np.isfinite(v) for v in jax.tree.leaves(second["head_values"]))
    assert not np.array_equal(first["targets"].rois, second["targets"].rois)
    for name, stage in stages.items():
        assert stage._cache_size() == 1, name


def test_proposals_are_clipped_and_sampled_rois_hold_the_ground_truth(stage_run):
    outputs = stage_run
    boxes, valid = np.asarray(outputs["proposals"].boxes), np.asarray(outputs["proposals"].valid)
    assert valid.any() and np.all((boxes >= 0) & (boxes <= 64))
    targets = outputs["targets"]
    positive, labels = np.asarray(targets.positive), np.asarray(targets.labels)
    assert positive.any() and np.all(positive.sum(1) <= round(CONFIG.rois_per_image * CONFIG.roi_positive_fraction))
    assert np.all(labels[~positive] == CONFIG.num_classes) and np.all(labels[positive] < CONFIG.num_classes)
    assert np.all(np.asarray(targets.valid).sum(1) == CONFIG.rois_per_image)


def hand_written_cross_entropy(x, y, w):
    return -jnp.sum(y * jnp.log(jax.nn.softmax(x, axis=-1)), axis=-1)


def test_custom_softmax_form_loss_plugs_in_like_builtin_cross_entropy(stage_run):
    outputs = stage_run
    args = (outputs["logits"], outputs["deltas"], outputs["targets"], CONFIG)
    loss = jax.jit(lambda cls_loss, *a: roi_head_loss(*a, cls_loss=cls_loss, reg_loss="giou")[0], static_argnums=(0, 4))
    builtin = loss(softmax_cross_entropy, *args)
    np.testing.assert_allclose(loss(hand_written_cross_entropy, *args), builtin, rtol=1e-5)
    np.testing.assert_allclose(builtin, np.log(CONFIG.num_classes + 1), rtol=0.05)  # near-uniform at init


def test_classification_inputs_follow_the_softmax_form_contract(stage_run):
    outputs = stage_run

    @jax.jit
    def captured_inputs(logits, deltas, targets):
        seen = {}

        def spy(x, y, w):
            seen.update(x=x, y=y, w=w)
            return softmax_cross_entropy(x, y, w)

        roi_head_loss(logits, deltas, targets, CONFIG, cls_loss=spy)
        return seen["x"], seen["y"], seen["w"]

    x, y, w = (np.asarray(v) for v in captured_inputs(outputs["logits"], outputs["deltas"], outputs["targets"]))
    rows = 4 * CONFIG.rois_per_image
    assert x.shape == y.shape == w.shape == (rows, CONFIG.num_classes + 1)
    assert np.all(w == w[:, :1])  # row-constant
    background = y[:, -1] == 1
    assert np.all(w[background] == 1.0) and np.all((w[~background] >= 0) & (w[~background] <= 1))
    assert (~background).sum() == np.asarray(outputs["targets"].positive).sum()


def test_regression_weights_follow_where_the_loss_acts(stage_run):
    assert default_reg_weight("giou") == 10.0 and default_reg_weight(lambda i, u, e: 1 - i / u) == 10.0
    assert default_reg_weight("l1") == 1.0 and default_reg_weight("smooth_l1") == 1.0
    outputs = stage_run
    reg_value = jax.jit(lambda name, *a: roi_head_loss(*a, CONFIG, reg_loss=name)[1], static_argnums=0)
    values = {
        name: reg_value(name, outputs["logits"], outputs["deltas"], outputs["targets"]) for name in ("l1", "giou")
    }
    assert all(np.isfinite(v) and v > 0 for v in values.values())


def make_train_step(config, cls_loss="cross_entropy", reg_loss="giou", learning_rate=1e-3, compiler_options=None):
    """Return the AdamW state initializer and the jitted step ``(params, opt_state, batch, key)``."""
    optimizer = optax.adamw(learning_rate, weight_decay=1e-4)

    def step(params, opt_state, batch, key):
        loss = lambda p: faster_rcnn_loss(p, batch, key, config, cls_loss=cls_loss, reg_loss=reg_loss)
        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return optimizer.init, jax.jit(step, compiler_options=compiler_options)


def test_smoke_train_on_eight_images_lowers_the_loss(params):
    batch = synthetic_batch(8, 64, 3)
    init_state, step = make_train_step(CONFIG, compiler_options=QUICK)
    state, opt_state, losses = params, init_state(params), []
    for index in range(15):
        state, opt_state, metrics = step(state, opt_state, batch, jax.random.fold_in(jax.random.key(0), index))
        losses.append(float(metrics["loss"]))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert step._cache_size() == 1


def test_predict_returns_fixed_size_detections_like_fcos(params):
    detections = predict(params, synthetic_batch(2, 64, 1)["images"], CONFIG)
    assert detections.boxes.shape == (2, 100, 4)
    assert detections.scores.shape == detections.classes.shape == detections.valid.shape == (2, 100)
    scores, valid = np.asarray(detections.scores), np.asarray(detections.valid)
    assert valid.any() and np.all(scores[valid] > CONFIG.score_threshold) and np.all(scores[~valid] == 0)
    assert np.all(np.diff(scores[0][valid[0]]) <= 0)
    boxes = np.asarray(detections.boxes)
    assert np.all((boxes >= 0) & (boxes <= 64))
    compiled = predict._cache_size()  # other tests may have compiled other shapes already
    predict(params, synthetic_batch(2, 64, 2)["images"], CONFIG)
    assert predict._cache_size() == compiled


def test_perfect_box_head_outputs_give_ap_one(tiny_shapes_data, tiny_ground_truth):
    data, (boxes, labels, valid) = tiny_shapes_data, tiny_ground_truth
    config = FasterRCNNConfig(num_classes=data.num_classes, image_size=128)  # the shapes images are 128x128
    labels = np.where(valid, labels, config.num_classes)
    outputs = FasterRCNNOutputs(
        proposals=jnp.asarray(boxes),
        proposal_valid=jnp.asarray(valid),
        cls_logits=20.0 * jax.nn.one_hot(labels, config.num_classes + 1),
        deltas=jnp.zeros((*valid.shape, config.num_classes, 4)),
    )
    detections = jax.jit(detections_from_rois, static_argnums=1)(outputs, config)
    metrics = evaluate_detections(data, *detections)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(1.0)


def test_resnet50_preset_builds_with_fpn_levels():
    config = dataclasses.replace(RESNET50_FPN, image_size=256)
    images, rois = jnp.zeros((2, 256, 256, 3)), jnp.zeros((2, 8, 4))
    shapes = jax.eval_shape(FasterRCNN(config).init, jax.random.key(0), images, rois)
    rpn_outputs, (logits, deltas) = jax.eval_shape(FasterRCNN(config).apply, shapes, images, rois)
    anchors_per_image = 3 * (32 * 32 + 16 * 16 + 8 * 8 + 4 * 4 + 2 * 2)
    assert rpn_outputs.objectness.shape == (2, anchors_per_image) == (2, config.anchors[0].shape[0])
    assert logits.shape == (2, 8, 81) and deltas.shape == (2, 8, 80, 4)
    assert shapes["params"]["box_head"]["fc1"]["kernel"].shape == (7 * 7 * 256, 1024)
