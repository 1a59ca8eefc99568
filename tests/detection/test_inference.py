"""Inference over a dataset: static-shape batches per canvas, padded rows dropped, boxes back in original pixels."""

import dataclasses
import json
import types

import jax
import numpy as np
import pytest
from PIL import Image

from detection import inference
from detection.boxes import Detections
from detection.datasets import load_coco
from detection.fcos import FCOSConfig, init_params
from detection.geometry import geometry_of
from detection.inference import detect, evaluate_model

CONFIG = FCOSConfig(num_classes=8, image_size=128)


def solid_coco(tmp_path, sizes):
    """A COCO set of solid images (image i has value 20 * (i + 1)) with one box each; returns its index."""
    images, annotations = [], []
    for number, (height, width) in enumerate(sizes, start=1):
        Image.fromarray(np.full((height, width, 3), 20 * number, np.uint8)).save(tmp_path / f"{number}.png")
        images.append({"id": number, "file_name": f"{number}.png", "width": width, "height": height})
        box = [width / 8, height / 4, width / 2, height / 2]
        annotations.append({"id": number, "image_id": number, "category_id": 1 + number % 2, "bbox": box,
                            "area": box[2] * box[3], "iscrowd": 0})
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return load_coco(tmp_path / "ann.json", tmp_path)


def oracle(index):
    """A stand-in ``predict`` that finds the image of each row by its pixel value and returns its box, resized."""
    calls = []

    def predict(params, images, config):
        images = np.asarray(images)
        calls.append((len(images), tuple(config.image_size)))
        k = config.max_detections
        boxes, scores = np.zeros((len(images), k, 4), np.float32), np.zeros((len(images), k), np.float32)
        classes, valid = np.zeros((len(images), k), np.int32), np.zeros((len(images), k), bool)
        geometry = geometry_of(config)
        for i, image in enumerate(images):
            row = int(image[0, 0, 0]) // 20 - 1
            if row < 0:  # a padded row: a detection here would be wrongly attributed if not dropped
                boxes[i, 0], scores[i, 0], valid[i, 0] = [0, 0, 5, 5], 1.0, True
                continue
            found, labels = index.boxes_of(row)
            boxes[i, : len(found)] = found * geometry.scales(index.sizes[row])[0]
            classes[i, : len(found)], scores[i, : len(found)], valid[i, : len(found)] = labels, 1.0, True
        return Detections(boxes, scores, classes, valid)

    return predict, calls


def test_landscape_and_portrait_images_run_in_their_canvases_and_map_back(tmp_path, monkeypatch):
    index = solid_coco(tmp_path, [(30, 60), (60, 30), (40, 40), (20, 70), (70, 20)])
    predict, calls = oracle(index)
    monkeypatch.setattr(inference, "detector_of", lambda config: types.SimpleNamespace(predict=predict))
    config = FCOSConfig(num_classes=2, image_size=(32, 48))  # S = 32, L = 48
    metrics = evaluate_model(None, config, index, batch_size=2)
    assert sorted(calls) == [(2, (32, 48)), (2, (32, 48)), (2, (48, 32))]  # 3 landscape/square, 2 portrait
    for name in ("AP", "AP50", "AP75", "mAP50_voc"):
        assert metrics[name] == pytest.approx(1.0)
    boxes, *_ = detect(None, config, index, batch_size=2)
    np.testing.assert_allclose(boxes[1, 0], index.boxes_of(1)[0][0], atol=1e-4)  # original pixels again


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


def test_data_with_other_classes_than_the_model_is_rejected(tiny_shapes_data):
    with pytest.raises(ValueError, match="8 classes but the model predicts 3"):
        detect(None, FCOSConfig(num_classes=3, image_size=128), tiny_shapes_data)
