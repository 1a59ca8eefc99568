"""A typed experiment: the data and splits, the image geometry, the detector (backbone, its weights, precision),
the schedule and the losses of one training and its evaluation.

``autoloss train``, the search's proxy and final trainings and the benchmarks each build one
:class:`ExperimentSpec` and hand it to :func:`detection.experiment.run_experiment`; each part is a small frozen
record with the defaults of ``autoloss train``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from detection.detectors import get_detector
from detection.geometry import Geometry
from detection.optim import OptimizerConfig
from detection.pretrained import PRETRAINED_BACKBONE, load_backbone_params, pretrained_params

DEFAULT_BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What is trained on and what is evaluated on (dataset specs, ``detection.dataset_spec``)."""

    train: str = "shapes"
    eval: str | None = None  # separate evaluation data; None: ``eval_split`` (or the held-out part) of ``train``
    train_split: str = "train"
    eval_split: str = "final_val"
    root: str | None = None  # cache folder of generated/converted data
    workers: int = 0  # input pipeline worker processes (0: decode in threads)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The detector: its preset, optional pretrained backbone weights, compute precision and config overrides."""

    detector: str = "fcos"
    preset: str = "tiny"
    backbone_weights: str | None = None  # torchvision-layout ResNet weights (detection.pretrained)
    precision: str = "float32"  # or "bfloat16" (detection.backbone.PRECISIONS)
    overrides: tuple[tuple[str, Any], ...] = ()  # (config field, value) pairs

    def config(self, num_classes: int, canvas: tuple[int, int] | int):
        """Return the detector config for the data's classes and the landscape canvas."""
        fields = {**(PRETRAINED_BACKBONE if self.backbone_weights else {}), "precision": self.precision}
        fields.update(self.overrides)
        return get_detector(self.detector).make_config(num_classes, canvas, self.preset, **fields)

    def initial_params(self, config, seed: int):
        """Return the parameters training starts from: the pretrained backbone's, or None (``train`` initializes)."""
        return pretrained_params(config, self.backbone_weights, seed) if self.backbone_weights else None

    def check(self, canvas: tuple[int, int] | int) -> None:
        """Raise ValueError (or BackboneWeightsError) for bad settings or a weights file that does not fit."""
        config = self.config(1, canvas)
        if self.backbone_weights:
            load_backbone_params(self.backbone_weights, config)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Steps, batch, optimizer and seed; None takes the detector's default schedule.

    The default steps and optimizer are the detector's own (``Detector.default_steps``, ``default_optimizer``).
    AP still rises with more steps, so a longer run (or a GPU) gives a better detector.
    """

    steps: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    optimizer: OptimizerConfig | None = None
    seed: int = 0
    eval_batch_size: int = 32

    def for_detector(self, detector: str) -> Schedule:
        """Return the schedule with the detector's default steps and optimizer where none is given."""
        defaults = get_detector(detector)
        return dataclasses.replace(
            self, steps=self.steps or defaults.default_steps, optimizer=self.optimizer or defaults.default_optimizer
        )


@dataclasses.dataclass(frozen=True)
class Losses:
    """The classification and regression losses: registry names or callables, and how they are described."""

    cls: str | Callable | None = None  # None: the detector's default (focal or cross-entropy)
    reg: str | Callable = "giou"
    alpha_balance: float | None = None  # the authors' balancing of sigmoid-form searched losses
    descriptions: Mapping[str, Any] | None = None  # JSON-ready {"cls": ..., "reg": ...}; default their names

    def for_detector(self, detector: str) -> Losses:
        """Return the losses with the detector's default classification loss where none is given."""
        return dataclasses.replace(self, cls=self.cls or get_detector(detector).default_cls_loss)

    def describe(self) -> dict[str, Any]:
        """Return the JSON-ready description stored with a model."""
        described = dict(self.descriptions or {"cls": _name_of(self.cls), "reg": _name_of(self.reg)})
        return {**described, "alpha_balance": self.alpha_balance}


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """One detector training and its evaluation."""

    data: DataSpec = dataclasses.field(default_factory=DataSpec)
    geometry: Geometry = dataclasses.field(default_factory=Geometry)
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    losses: Losses = dataclasses.field(default_factory=Losses)

    def resolved(self) -> ExperimentSpec:
        """Return the spec with the detector's defaults filled in (steps, optimizer, classification loss)."""
        detector = self.model.detector
        return dataclasses.replace(
            self, schedule=self.schedule.for_detector(detector), losses=self.losses.for_detector(detector)
        )


def _name_of(loss: str | Callable | None) -> str | None:
    return loss if isinstance(loss, str) or loss is None else getattr(loss, "__name__", repr(loss))
