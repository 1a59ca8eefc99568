"""Inference of a trained detector over a whole dataset, and its COCO evaluation.

Images go through the detector's ``predict`` (``detection.detectors``) in static-shape batches (the last batch is
zero-padded and its padded rows dropped), so one compiled program serves the whole split.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from detection.batching import iterate_eval_batches
from detection.datasets import DetectionData
from detection.detectors import detector_of
from detection.evaluation import evaluate_detections


def detect(
    params, config, data: DetectionData, *, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (boxes [N, K, 4], scores [N, K], classes [N, K], valid [N, K]) for every image of ``data``.

    Boxes are x1, y1, x2, y2 in resized-image pixels, K is ``config.max_detections``.
    """
    if tuple(data.images.shape[1:3]) != tuple(config.image_size):
        raise ValueError(
            f"the data's images are {data.images.shape[1]}x{data.images.shape[2]} but the model expects "
            f"{config.image_size[0]}x{config.image_size[1]}; load the data with the model's image size"
        )
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"the data has {data.num_classes} classes but the model predicts {config.num_classes}; "
            "evaluate on data with the classes the model was trained on"
        )
    predict = detector_of(config).predict
    outputs: list[tuple[np.ndarray, ...]] = []
    for batch, _, count in iterate_eval_batches(data, batch_size):
        found = jax.device_get(predict(params, batch["images"], config))
        outputs.append(tuple(np.asarray(array)[:count] for array in found))
    if not outputs:
        k = config.max_detections
        return np.zeros((0, k, 4), np.float32), np.zeros((0, k)), np.zeros((0, k), np.int32), np.zeros((0, k), bool)
    boxes, scores, classes, valid = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
    return boxes, scores, classes, valid


def evaluate_model(params, config, data: DetectionData, *, batch_size: int = 32) -> dict:
    """Return the COCO metrics of the model on ``data`` plus ``inference_seconds`` and ``images_per_second``.

    Keys: AP, AP50, AP75, AP_S, AP_M, AP_L, mAP50_voc (fractions), eval_seconds (COCOeval),
    inference_seconds and images_per_second (inference, including the first compile).
    """
    started = time.perf_counter()
    boxes, scores, classes, valid = detect(params, config, data, batch_size=batch_size)
    inference_seconds = time.perf_counter() - started
    metrics = evaluate_detections(data, boxes, scores, classes, valid, max_per_image=config.max_detections)
    metrics["inference_seconds"] = inference_seconds
    metrics["images_per_second"] = len(data) / inference_seconds if inference_seconds > 0 else 0.0
    return metrics
