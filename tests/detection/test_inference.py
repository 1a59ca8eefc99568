"""Inference over a dataset: static-shape batches, padded rows dropped, and COCO evaluation of the result."""

import dataclasses
import types

import jax
import numpy as np
import pytest

from detection import inference
from detection.boxes import Detections
from detection.fcos import FCOSConfig, init_params
from detection.inference import detect, evaluate_model

CONFIG = FCOSConfig(num_classes=8, image_size=128)


def ground_truth_predictor(data):
    """Return a stand-in for ``predict`` that detects exactly the ground truth of the image in each row."""
    seen = []

    def predict(params, images, config):
        images = np.asarray(images)
        rows = []
        for image in images:
            matches = np.flatnonzero((data.images.astype(np.float32) / 255.0 == image).all(axis=(1, 2, 3)))
            rows.append(matches[0] if len(matches) else -1)
        seen.append(len(images))
        k = config.max_detections
        boxes = np.zeros((len(images), k, 4), np.float32)
        scores, classes = np.zeros((len(images), k), np.float32), np.zeros((len(images), k), np.int32)
        valid = np.zeros((len(images), k), bool)
        for i, row in enumerate(rows):
            if row < 0:  # a padded row: detections here would be wrongly attributed if not dropped
                boxes[i], scores[i], valid[i] = [0, 0, 50, 50], 1.0, True
                continue
            m = data.valid[row].sum()
            boxes[i, :m], classes[i, :m] = data.boxes[row][data.valid[row]], data.labels[row][data.valid[row]]
            scores[i, :m], valid[i, :m] = 1.0, True
        return Detections(boxes, scores, classes, valid)

    return predict, seen


def test_perfect_detections_give_ap_one_through_the_padded_batches(tiny_shapes_data, monkeypatch):
    predict, seen = ground_truth_predictor(tiny_shapes_data)
    monkeypatch.setattr(inference, "detector_of", lambda config: types.SimpleNamespace(predict=predict))
    metrics = evaluate_model(None, CONFIG, tiny_shapes_data, batch_size=4)
    assert seen == [4, 4, 4]  # 10 images: static batches of 4, the last one padded
    for name in ("AP", "AP50", "AP75", "mAP50_voc"):
        assert metrics[name] == pytest.approx(1.0)
    assert metrics["images_per_second"] > 0 and metrics["eval_seconds"] > 0


def test_detect_returns_one_row_per_image_with_static_shapes(tiny_shapes_data):
    config = dataclasses.replace(CONFIG, score_threshold=0.0)
    params = init_params(config, jax.random.key(0))
    boxes, scores, classes, valid = detect(params, config, tiny_shapes_data, batch_size=4)
    assert boxes.shape == (10, 100, 4) and scores.shape == classes.shape == valid.shape == (10, 100)
    assert valid.all() and (classes >= 0).all() and (classes < 8).all()
    assert (boxes[..., 2:] >= boxes[..., :2]).all() and (boxes <= 128).all()
    # The last image is the same whether it comes in the padded batch or alone.
    alone = detect(params, config, tiny_shapes_data.select([9]), batch_size=4)
    np.testing.assert_allclose(alone[1][0], scores[9], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "config, message",
    [
        (FCOSConfig(num_classes=8, image_size=64), "images are 128x128 but the model expects 64x64"),
        (FCOSConfig(num_classes=3, image_size=128), "8 classes but the model predicts 3"),
    ],
)
def test_data_that_does_not_fit_the_model_is_rejected(tiny_shapes_data, config, message):
    with pytest.raises(ValueError, match=message):
        detect(None, config, tiny_shapes_data)
