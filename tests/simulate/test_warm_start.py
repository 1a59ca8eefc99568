"""The verification set: images per class, distinct, seeded; and the cached warm start."""

import numpy as np
import pytest

from detection.datasets import load_dataset
from detection.fcos import FCOSConfig
from detection.optim import OptimizerConfig
from simulate.warm_start import verification_indices, warm_start


def test_each_class_gets_its_own_images_and_the_draw_is_seeded(tiny_train_spec):
    data = load_dataset(tiny_train_spec, split="all", progress=False)
    indices = verification_indices(data, 1, seed=3)
    assert len(indices) == data.num_classes == len(set(indices.tolist()))
    present = data.classes_present()
    assert present[indices].any(axis=0).all()  # every class is in some chosen image
    np.testing.assert_array_equal(indices, verification_indices(data, 1, seed=3))
    assert len(verification_indices(data, 2, seed=3)) == 2 * data.num_classes


def test_too_few_images_for_a_class_is_a_clear_error(tiny_train_spec):
    data = load_dataset(tiny_train_spec, split="all", progress=False)
    with pytest.raises(ValueError, match="lower images_per_class"):
        verification_indices(data, 64, seed=0)


def test_the_warm_start_is_computed_once_and_read_back(tiny_train_spec, tmp_path):
    data = load_dataset(tiny_train_spec, split="all", progress=False)
    config = FCOSConfig(num_classes=data.num_classes, image_size=64)
    kwargs = {"data_spec": tiny_train_spec, "steps": 2, "batch_size": 2, "optimizer": OptimizerConfig(), "seed": 0,
              "cache_dir": tmp_path, "progress": False}
    first, path = warm_start(config, data, **kwargs)
    stamp = path.stat().st_mtime_ns
    again, same_path = warm_start(config, data, **kwargs)
    assert same_path == path and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.asarray(first["head"]["cls_logits"]["kernel"]),
                                  np.asarray(again["head"]["cls_logits"]["kernel"]))
    _, other = warm_start(config, data, **{**kwargs, "seed": 1})
    assert other != path
