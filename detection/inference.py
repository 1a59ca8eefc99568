"""Inference of a trained detector over a whole dataset, and its COCO evaluation.

Images stream from the index (:func:`detection.pipeline.evaluation_batches`) in static-shape batches of one
canvas each (the last batch of a canvas is zero-padded and its padded rows dropped), so one compiled
program serves each canvas. The model's ``config.image_size`` is its landscape canvas (S, L) and so also
its geometry (:func:`detection.geometry.geometry_of`); a portrait batch runs with the config's canvas transposed.
Predictions are mapped back to original image pixels (divided by the image's scale, clipped to it).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from detection.dataset_index import DatasetIndex
from detection.detectors import detector_of
from detection.evaluation import evaluate_detections
from detection.geometry import config_for_canvas, geometry_of, to_original_pixels
from detection.pipeline import evaluation_batches


def detect(params, config, index: DatasetIndex, *, batch_size: int = 32,
           workers: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (boxes [N, K, 4], scores [N, K], classes [N, K], valid [N, K]) for every image of ``index``.

    Boxes are x1, y1, x2, y2 in original image pixels, K is ``config.max_detections``; row i is image i.
    """
    if index.num_classes != config.num_classes:
        raise ValueError(
            f"the data has {index.num_classes} classes but the model predicts {config.num_classes}; "
            "evaluate on data with the classes the model was trained on"
        )
    geometry = geometry_of(config)
    k = config.max_detections
    boxes = np.zeros((len(index), k, 4), np.float32)
    scores, classes, valid = np.zeros((len(index), k), np.float32), np.zeros((len(index), k), np.int32), \
        np.zeros((len(index), k), bool)
    predict = detector_of(config).predict
    for batch, entry in evaluation_batches(index, geometry, batch_size, workers=workers):
        canvas_config = config_for_canvas(config, geometry.canvases[entry.canvas])
        found = [np.asarray(array)[: entry.count] for array in jax.device_get(
            predict(params, batch["images"], canvas_config))]
        rows = entry.rows[: entry.count]
        boxes[rows] = to_original_pixels(found[0], batch["scales"][: entry.count], index.sizes[rows])
        scores[rows], classes[rows], valid[rows] = found[1], found[2], found[3]
    return boxes, scores, classes, valid


def evaluate_model(params, config, index: DatasetIndex, *, batch_size: int = 32, workers: int = 0) -> dict:
    """Return the COCO metrics of the model on ``index`` plus ``inference_seconds`` and ``images_per_second``.

    Keys: AP, AP50, AP75, AP_S, AP_M, AP_L, mAP50_voc (fractions), eval_seconds (COCOeval),
    inference_seconds and images_per_second (reading, inference and the first compile).
    """
    started = time.perf_counter()
    boxes, scores, classes, valid = detect(params, config, index, batch_size=batch_size, workers=workers)
    inference_seconds = time.perf_counter() - started
    metrics = evaluate_detections(index, boxes, scores, classes, valid, max_per_image=config.max_detections)
    metrics["inference_seconds"] = inference_seconds
    metrics["images_per_second"] = len(index) / inference_seconds if inference_seconds > 0 else 0.0
    return metrics
