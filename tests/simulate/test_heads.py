"""The heads-only tasks compute exactly what the detectors compute."""

import jax
import numpy as np

from detection import faster_rcnn, fcos
from detection.batching import BatchEntry, assemble_batch
from detection.datasets import load_dataset
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.geometry import Geometry
from simulate.heads import head_task


def test_fcos_linear_output_layers_on_cached_patches_equal_the_detector(tiny_train_spec):
    data = load_dataset(tiny_train_spec, split="all", progress=False)
    config = fcos.FCOSConfig(num_classes=data.num_classes, image_size=64)
    params = fcos.init_params(config, jax.random.key(0))
    params = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(1), x.shape), params)
    batch = assemble_batch(data, Geometry(64), BatchEntry(rows=np.arange(4), canvas=0, count=4))
    task = head_task("fcos", config, params, batch, jax.random.key(2))
    got = task.forward(task.trainable, task.frozen)
    expected = fcos.apply_model(params, batch["images"], config)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_faster_rcnn_box_head_on_cached_proposal_features_equals_the_detector(tiny_train_spec):
    data = load_dataset(tiny_train_spec, split="all", progress=False)
    config = FasterRCNNConfig(num_classes=data.num_classes, image_size=64)
    params = faster_rcnn.init_params(config, jax.random.key(0))
    batch = assemble_batch(data, Geometry(64), BatchEntry(rows=np.arange(2), canvas=0, count=2))
    task = head_task("faster-rcnn", config, params, batch, jax.random.key(2))
    found = task.detect(task.forward(task.trainable, task.frozen), task.frozen)
    expected = faster_rcnn.predict(params, batch["images"], config)
    np.testing.assert_allclose(np.asarray(found.scores), np.asarray(expected.scores), rtol=1e-4, atol=1e-5)
