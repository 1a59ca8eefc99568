"""Train an FCOS detector on a dataset and evaluate it: the one entry point of the CLI, the benchmarks
and the search's proxy task.

A run directory holds the training checkpoint (:mod:`detection.checkpoints`) and ``experiment.json``,
everything needed to rebuild the model for evaluation: the detector and its config, class names, image size, the
data spec and splits, the losses and the schedule. :func:`load_trained_model` reads both back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flax import serialization

from detection.checkpoints import STATE_FILE, write_atomically
from detection.dataset_index import DatasetIndex
from detection.datasets import evaluation_split, load_dataset
from detection.detectors import FCOS_PRESETS, get_detector
from detection.geometry import Geometry
from detection.inference import evaluate_model
from detection.optim import OptimizerConfig
from detection.pipeline import training_stream
from detection.pretrained import PRETRAINED_BACKBONE, load_backbone_params, pretrained_params
from detection.training import train

EXPERIMENT_FILE = "experiment.json"
PRESETS = FCOS_PRESETS  # the FCOS presets; every detector has its own (detection.detectors)
# The default schedule's steps and optimizer are the detector's own (``Detector.default_steps``,
# ``default_optimizer``). AP still rises with more steps, so a longer run (or a GPU) gives a better detector.
DEFAULT_BATCH_SIZE = 16


@dataclasses.dataclass
class ExperimentResult:
    """Outcome of :func:`run_experiment`: evaluation metrics, training speed and where it was saved."""

    metrics: dict[str, float]  # AP, AP50, ..., mAP50_voc, eval_seconds, inference_seconds, images_per_second
    steps: int
    batch_size: int
    seed: int
    train_seconds: float  # wall time of the training loop, compile included
    compile_seconds: float
    images_per_second: float  # training, after the compiling step
    final_loss: float | None  # None when a finished run was resumed without new steps
    out_dir: str
    eval_split: str
    losses: dict[str, Any]
    datasets: dict[str, Any]  # what was trained and evaluated on (describe_data)

    def to_dict(self) -> dict:
        """Return the result as a JSON-ready dict."""
        return dataclasses.asdict(self)


def make_config(
    num_classes: int, image_size: int | tuple[int, int], preset: str = "tiny", detector: str = "fcos", **overrides
):
    """Return the config of ``detector``'s ``preset`` for the data's classes and image size."""
    return get_detector(detector).make_config(num_classes, image_size, preset, **overrides)


def run_experiment(
    *,
    detector: str = "fcos",
    data: str = "shapes",
    eval_data: str | None = None,
    image_size: int = 128,
    max_size: int | None = None,
    train_short_sides: tuple[int, ...] = (),
    preset: str = "tiny",
    backbone_weights: str | os.PathLike | None = None,
    config_overrides: dict[str, Any] | None = None,
    cls_loss: str | Callable | None = None,
    reg_loss: str | Callable = "giou",
    alpha_balance: float | None = None,
    loss_descriptions: dict[str, Any] | None = None,
    steps: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    optimizer: OptimizerConfig | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike,
    train_split: str = "train",
    eval_split: str = "final_val",
    data_root: str | os.PathLike | None = None,
    eval_batch_size: int = 32,
    workers: int = 0,
    progress: bool = True,
) -> ExperimentResult:
    """Train on ``data``'s train split, save the model to ``out_dir``, evaluate on ``eval_split``; return the result.

    ``data``/``eval_data`` are dataset specs (:func:`load_data_pair`; the shapes dataset is generated into
    the cache when missing). Images are resized to shorter side ``image_size`` with the longer side at most
    ``max_size`` (default ``image_size``: fit into a square), multi-scale training draws the shorter side
    from ``train_short_sides`` (:class:`detection.geometry.Geometry`); ``workers`` > 0 decodes in that many
    processes. Losses are names or callables as for :func:`detection.training.train`;
    ``loss_descriptions`` (JSON-ready) are stored with the model. ``backbone_weights`` is a file of
    ImageNet-pretrained ResNet weights in torchvision's layout (:mod:`detection.pretrained`), fine-tuned with
    frozen BatchNorm and a frozen stem and first stage. ``steps`` and ``optimizer`` default to
    the detector's default schedule. Running again with the same ``out_dir`` and settings resumes from its
    checkpoint, data position included.
    """
    defaults = get_detector(detector)
    cls_loss = cls_loss or defaults.default_cls_loss
    steps = steps or defaults.default_steps
    optimizer = optimizer or defaults.default_optimizer
    geometry = Geometry(short_side=image_size, max_size=max_size, train_short_sides=train_short_sides)
    config_overrides = {**(PRETRAINED_BACKBONE if backbone_weights else {}), **(config_overrides or {})}
    config = make_config(1, geometry.canvases[0], preset, detector, **config_overrides)  # bad settings fail before data
    if backbone_weights:
        load_backbone_params(backbone_weights, config)  # a bad file too
    train_data, eval_set, eval_split = load_data_pair(data, eval_data, train_split, eval_split, root=data_root,
                                                      progress=progress)
    config = make_config(train_data.num_classes, geometry.canvases[0], preset, detector, **config_overrides)
    losses = loss_descriptions or {"cls": _name_of(cls_loss), "reg": _name_of(reg_loss)}
    losses = {**losses, "alpha_balance": alpha_balance}
    write_experiment_metadata(
        out_dir,
        {
            "detector": detector,
            "preset": preset,
            "backbone_weights": None if backbone_weights is None else str(backbone_weights),
            "config": dataclasses.asdict(config),
            "class_names": list(train_data.class_names),
            "image_size": list(config.image_size),
            "geometry": geometry.to_dict(),
            "data": data,
            "eval_data": eval_data or data,
            "train_split": train_split,
            # the spec alone may name other images (a default that changed, files replaced under a path)
            "train_images": len(train_data),
            "eval_split": eval_split,
            "losses": losses,
            "steps": steps,
            "batch_size": batch_size,
            "seed": seed,
            "optimizer": dataclasses.asdict(optimizer),
        },
    )
    started = time.perf_counter()
    with training_stream(train_data, geometry, batch_size=batch_size, seed=seed, steps=steps,
                         workers=workers) as batches:
        trained = train(
            config,
            batches,
            steps=steps,
            params=pretrained_params(config, backbone_weights, seed) if backbone_weights else None,
            cls_loss=cls_loss,
            reg_loss=reg_loss,
            alpha_balance=alpha_balance,
            optimizer=optimizer,
            seed=seed,
            out_dir=out_dir,
            checkpoint_every=max(steps // 10, 100),
            resume=True,
            progress=progress,
        )
    train_seconds = time.perf_counter() - started
    metrics = evaluate_model(trained.params, config, eval_set, batch_size=eval_batch_size, workers=workers)
    return ExperimentResult(
        metrics=metrics,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        train_seconds=train_seconds,
        compile_seconds=trained.compile_seconds,
        images_per_second=trained.images_per_second,
        final_loss=trained.history[-1]["loss"] if trained.history else None,
        out_dir=str(out_dir),
        eval_split=eval_split,
        losses=losses,
        datasets=describe_data(train_data, eval_set),
    )


def load_data_pair(data: str, eval_data: str | None, train_split: str, eval_split: str, *, root=None,
                   progress: bool = True) -> tuple[DatasetIndex, DatasetIndex, str]:
    """Return (training index, evaluation index, the evaluation's split) of a training and its evaluation.

    Without ``eval_data`` (or with the same spec), evaluation reads ``eval_split`` of ``data`` — for a
    dataset without splits of its own, its held-out part (``detection.datasets``). Separate ``eval_data``
    is read with :func:`detection.datasets.evaluation_split` (the whole of a coco file). The evaluation
    classes must be the training classes (in any order); DatasetError lists both otherwise.
    """
    train_data = load_dataset(data, split=train_split, root=root, progress=progress)
    if eval_data not in (None, data):
        eval_split = evaluation_split(eval_data, eval_split)
    eval_set = load_dataset(eval_data or data, split=eval_split, root=root, progress=progress)
    return train_data, eval_set.with_class_order(train_data.class_names), eval_split


def describe_data(train_data: DatasetIndex, eval_set: DatasetIndex) -> dict[str, Any]:
    """What a training saw and was evaluated on: names and image counts, and the images the two share."""
    shared = len(set(train_data.paths) & set(eval_set.paths))
    return {"train": train_data.name, "train_images": len(train_data), "eval": eval_set.name,
            "eval_images": len(eval_set), "shared_images": shared}


def _name_of(loss: str | Callable) -> str:
    return loss if isinstance(loss, str) else getattr(loss, "__name__", repr(loss))


def write_experiment_metadata(out_dir: str | os.PathLike, metadata: dict) -> Path:
    """Write ``experiment.json`` into ``out_dir`` atomically; return its path.

    Raises ValueError when ``out_dir`` already holds a run with other settings (it would be resumed).
    """
    path = Path(out_dir) / EXPERIMENT_FILE
    if path.is_file():
        stored = read_experiment_metadata(out_dir)
        wanted = json.loads(json.dumps(metadata))
        different = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
        if different:
            raise ValueError(
                f"{out_dir} holds a run with different {', '.join(different)}; "
                "use a fresh --out directory, or the same settings to resume it"
            )
    write_atomically(path, json.dumps(metadata, indent=2, sort_keys=True).encode())
    return path


def run_directory(checkpoint: str | os.PathLike) -> Path:
    """Return the run directory of ``checkpoint`` (the directory itself or its state file)."""
    path = Path(checkpoint)
    return path.parent if path.is_file() else path


def read_experiment_metadata(checkpoint: str | os.PathLike) -> dict:
    """Return the ``experiment.json`` of a run directory (or of its checkpoint file's directory)."""
    path = run_directory(checkpoint) / EXPERIMENT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; give a run directory written by `autoloss train` (or its {STATE_FILE})"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON ({error}); retrain or restore the file") from error


def load_trained_model(checkpoint: str | os.PathLike) -> tuple[dict, Any, dict]:
    """Return (params, detector config, experiment metadata) of a run directory or its checkpoint file.

    Raises FileNotFoundError naming what is missing, ValueError when the files are unreadable.
    """
    folder = run_directory(checkpoint)
    metadata = read_experiment_metadata(folder)
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{state_path} not found; the run in {folder} has not saved a checkpoint yet")
    try:
        config = get_detector(metadata.get("detector", "fcos")).config_type(**metadata["config"])
        state = serialization.msgpack_restore(state_path.read_bytes())
        params = state["params"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder}: unreadable checkpoint or {EXPERIMENT_FILE} ({error!r}); retrain") from error
    return params, config, metadata


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    data: str | None = None,
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    batch_size: int = 32,
    workers: int = 0,
) -> dict:
    """Return the metrics of a saved model on ``data``/``split`` (default: the ones it was evaluated on).

    ``data`` other than the model's training data is read as separate evaluation data
    (:func:`detection.datasets.evaluation_split`); the model's own data gives its held-out part.
    """
    params, config, metadata = load_trained_model(checkpoint)
    data, split = data or metadata["eval_data"], split or metadata["eval_split"]
    if data != metadata["data"]:
        split = evaluation_split(data, split)
    eval_set = load_dataset(data, split=split, root=data_root, progress=False)
    eval_set = eval_set.with_class_order(metadata["class_names"])
    return evaluate_model(params, config, eval_set, batch_size=batch_size, workers=workers)
