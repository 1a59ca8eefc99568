"""Detectors and data: the built-in shapes dataset, COCO/VOC loading, box ops, the FCOS-style
flax detector, baseline losses, training and COCO evaluation.

Takes loss callables; knows nothing of search (never imports symbolic, simulate or autoloss).
"""

from detection.batching import iterate_batches, iterate_eval_batches
from detection.boxes import aligned_areas, aligned_iou, batched_nms, box_iou, decode_ltrb, encode_ltrb
from detection.datasets import DatasetError, DetectionData, load_coco, load_dataset, load_voc
from detection.detectors import DETECTORS, Detector, detector_of, get_detector
from detection.evaluation import evaluate_detections, format_ap_table
from detection.experiment import (
    PRESETS,
    ExperimentResult,
    evaluate_checkpoint,
    load_trained_model,
    make_config,
    run_experiment,
)
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.fcos import FCOSConfig, init_params, predict
from detection.fcos_loss import fcos_loss
from detection.inference import detect, evaluate_model
from detection.losses import CLS_LOSSES, REG_LOSSES
from detection.shapes import ShapesConfig, ensure_shapes_dataset
from detection.training import TrainingDiverged, TrainResult, train

__all__ = [
    "CLS_LOSSES",
    "PRESETS",
    "REG_LOSSES",
    "DatasetError",
    "DetectionData",
    "ExperimentResult",
    "DETECTORS",
    "Detector",
    "FCOSConfig",
    "FasterRCNNConfig",
    "detector_of",
    "get_detector",
    "ShapesConfig",
    "TrainResult",
    "TrainingDiverged",
    "aligned_areas",
    "aligned_iou",
    "batched_nms",
    "box_iou",
    "decode_ltrb",
    "detect",
    "encode_ltrb",
    "ensure_shapes_dataset",
    "evaluate_checkpoint",
    "evaluate_detections",
    "evaluate_model",
    "fcos_loss",
    "format_ap_table",
    "init_params",
    "iterate_batches",
    "iterate_eval_batches",
    "load_coco",
    "load_dataset",
    "load_trained_model",
    "load_voc",
    "make_config",
    "predict",
    "run_experiment",
    "train",
]
