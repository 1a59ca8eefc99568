"""Detectors and data: datasets as indexes (the built-in shapes dataset, COCO, VOC with any classes) and a
streaming input pipeline, detection-standard resizing, box ops, the FCOS and Faster R-CNN flax detectors,
baseline losses, training and COCO evaluation.

Takes loss callables; knows nothing of search (never imports symbolic, simulate or autoloss).

The public names below are imported on first use (PEP 562), so a process that needs one module — an input
pipeline worker reading images, which imports ``detection.pipeline`` — does not import flax, optax and
pycocotools with the whole package.
"""

import importlib

_SOURCES = {
    "detection.boxes": ("aligned_areas", "aligned_iou", "batched_nms", "box_iou", "decode_ltrb", "encode_ltrb"),
    "detection.dataset_index": ("DatasetIndex",),
    "detection.dataset_spec": ("DatasetSpec", "parse_dataset_spec"),
    "detection.datasets": ("evaluation_split", "load_coco", "load_dataset", "load_voc"),
    "detection.errors": ("DatasetError",),
    "detection.detectors": ("DETECTORS", "Detector", "detector_of", "get_detector"),
    "detection.evaluation": ("evaluate_detections", "format_ap_table"),
    "detection.experiment": ("PRESETS", "ExperimentResult", "evaluate_checkpoint", "load_data_pair",
                             "load_trained_model", "make_config", "run_experiment"),
    "detection.experiment_spec": ("DataSpec", "ExperimentSpec", "Losses", "ModelSpec", "Schedule"),
    "detection.faster_rcnn_config": ("FasterRCNNConfig",),
    "detection.fcos": ("FCOSConfig", "init_params", "predict"),
    "detection.fcos_loss": ("fcos_loss",),
    "detection.geometry": ("Geometry",),
    "detection.inference": ("detect", "evaluate_model"),
    "detection.losses": ("CLS_LOSSES", "REG_LOSSES"),
    "detection.pipeline": ("BatchStream", "evaluation_batches", "training_stream"),
    "detection.pretrained": ("BackboneWeightsError", "load_backbone_params", "read_state_dict"),
    "detection.shapes": ("ShapesConfig", "ensure_shapes_dataset"),
    "detection.training": ("TrainingDiverged", "TrainResult", "train"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    """Import a public name from its module on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'detection' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
