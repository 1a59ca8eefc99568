"""The detectors the package trains, behind one interface.

Training, inference, experiments and the command line see a detector only through a
``Detector``: its config class and presets, how to initialize parameters, its loss
``(params, batch, key, config, **options) -> (total, metrics)`` and its ``predict``, whose
output contract (boxes, scores, classes, valid; [B, 100]) is shared, so evaluation is one path.

| name          | classification loss form | regression | options                                         |
|---------------|--------------------------|------------|-------------------------------------------------|
| `fcos`        | `sigmoid` (per class)    | `reg`      | cls_loss, reg_loss, alpha_balance, reg_weight,   |
|               |                          |            | quality_weight                                  |
| `faster-rcnn` | `softmax` (C+1 classes)  | `reg`      | cls_loss, reg_loss, reg_weight                  |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from detection import faster_rcnn, fcos
from detection.faster_rcnn_config import PRESETS as FASTER_RCNN_PRESETS
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.faster_rcnn_loss import as_softmax_loss, faster_rcnn_loss
from detection.fcos import FCOSConfig
from detection.fcos_loss import fcos_loss_from_params
from detection.losses import as_cls_loss, as_reg_loss
from detection.optim import OptimizerConfig

# Backbone, FPN/head width, head depth and pyramid levels of each FCOS preset; "tiny" is the default.
FCOS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {},
    "resnet18": {"backbone": "resnet18", "fpn_width": 128, "head_convs": 2},
    "resnet50": {
        "backbone": "resnet50",
        "fpn_width": 256,
        "head_convs": 4,
        "strides": (8, 16, 32, 64, 128),
        "size_range_multiple": 8.0,  # the FCOS paper's ranges, for COCO-size images
    },
}


@dataclasses.dataclass(frozen=True)
class Detector:
    """One trainable detector: config, presets, parameters, loss and prediction."""

    name: str
    config_type: type
    cls_form: str  # the loss form its classification branch takes
    presets: dict[str, dict[str, Any]]  # config fields per preset name
    init_params: Callable[..., Any]  # (config, key) -> params
    loss: Callable[..., tuple[Any, dict]]  # (params, batch, key, config, **options) -> (total, metrics)
    predict: Callable[..., Any]  # (params, images, config) -> Detections
    as_cls_loss: Callable[[Any], Any]  # a registry name or callable -> what ``loss`` takes
    options: frozenset[str]  # the loss options it accepts besides cls_loss and reg_loss
    default_cls_loss: str
    # The default schedule (batch 16): steps and optimizer. The steps are about 10 minutes of training
    # at 128 px on two CPU cores with the tiny preset (benchmarks/RESULTS.md, "Detector training").
    default_steps: int
    default_optimizer: OptimizerConfig
    default_reg_loss: str = "giou"

    def make_config(self, num_classes: int, image_size, preset: str = "tiny", **overrides):
        """The config of ``preset`` for the data's classes and image size."""
        if preset not in self.presets:
            raise ValueError(f"unknown {self.name} preset {preset!r}; choose one of {', '.join(self.presets)}")
        return self.config_type(num_classes=num_classes, image_size=image_size, **{**self.presets[preset], **overrides})

    def loss_options(self, cls_loss, reg_loss, **options) -> tuple[tuple[str, Any], ...]:
        """Sorted, hashable loss options; None means the loss's own default. Raises on foreign options."""
        given = {name: value for name, value in options.items() if value is not None}
        foreign = sorted(set(given) - self.options)
        if foreign:
            raise ValueError(f"the {self.name} detector takes no {', '.join(foreign)}; "
                             f"its loss options are {', '.join(sorted(self.options))}")
        given["cls_loss"] = self.as_cls_loss(cls_loss)
        given["reg_loss"] = as_reg_loss(reg_loss)
        return tuple(sorted(given.items()))


def _fcos_loss(params, batch, key, config, **options):
    del key  # FCOS has no stochastic part
    return fcos_loss_from_params(params, batch, config, **options)


DETECTORS: dict[str, Detector] = {
    "fcos": Detector(
        name="fcos",
        config_type=FCOSConfig,
        cls_form="sigmoid",
        presets=FCOS_PRESETS,
        init_params=fcos.init_params,
        loss=_fcos_loss,
        predict=fcos.predict,
        as_cls_loss=as_cls_loss,
        options=frozenset({"alpha_balance", "reg_weight", "quality_weight"}),
        default_cls_loss="focal",
        default_steps=6000,
        default_optimizer=OptimizerConfig(learning_rate=5e-3, warmup_steps=200),
    ),
    "faster-rcnn": Detector(
        name="faster-rcnn",
        config_type=FasterRCNNConfig,
        cls_form="softmax",
        presets={
            name: {k: v for k, v in dataclasses.asdict(config).items() if k not in ("num_classes", "image_size")}
            for name, config in FASTER_RCNN_PRESETS.items()
        },
        init_params=faster_rcnn.init_params,
        loss=faster_rcnn_loss,
        predict=faster_rcnn.predict,
        as_cls_loss=as_softmax_loss,
        options=frozenset({"reg_weight"}),
        default_cls_loss="cross_entropy",
        default_steps=3000,
        default_optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=200),
    ),
}


def get_detector(name: str) -> Detector:
    """The detector called ``name``; a clear error listing the names otherwise."""
    try:
        return DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}") from None


def detector_of(config) -> Detector:
    """The detector whose config ``config`` is."""
    for detector in DETECTORS.values():
        if isinstance(config, detector.config_type):
            return detector
    raise TypeError(f"{type(config).__name__} is not the config of a known detector")
