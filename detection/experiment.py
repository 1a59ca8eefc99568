"""Train a detector as an :class:`~detection.experiment_spec.ExperimentSpec` says and evaluate it: the one entry
point of the CLI, the benchmarks and the search's final trainings.

A run directory holds the training checkpoint (:mod:`detection.checkpoints`) and ``experiment.json``,
everything needed to rebuild the model for evaluation: the detector and its config, class names, image size, the
data spec and splits, the losses and the schedule. :func:`load_trained_model` reads both back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from flax import serialization

from detection.checkpoints import STATE_FILE, write_atomically
from detection.dataset_index import DatasetIndex
from detection.datasets import evaluation_split, load_dataset
from detection.detectors import FCOS_PRESETS, get_detector
from detection.experiment_spec import ExperimentSpec
from detection.inference import evaluate_model
from detection.pipeline import training_stream
from detection.training import train

EXPERIMENT_FILE = "experiment.json"
PRESETS = FCOS_PRESETS  # the FCOS presets; every detector has its own (detection.detectors)


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


def run_experiment(spec: ExperimentSpec, out_dir: str | os.PathLike, *, progress: bool = True) -> ExperimentResult:
    """Train ``spec``'s detector on its training data, save it to ``out_dir``, evaluate it; return the result.

    Data are loaded as :func:`load_data_pair` does (the shapes dataset is generated into the cache when missing);
    bad settings and a backbone weights file that does not fit fail before. Running again with the same
    ``out_dir`` and spec resumes from its checkpoint, data position included.
    """
    spec = spec.resolved()
    data, geometry, model, schedule, losses = spec.data, spec.geometry, spec.model, spec.schedule, spec.losses
    model.check(geometry.canvases[0])
    train_data, eval_set, eval_split = load_data_pair(data.train, data.eval, data.train_split, data.eval_split,
                                                      root=data.root, progress=progress)
    config = model.config(train_data.num_classes, geometry.canvases[0])
    description = losses.describe()
    write_experiment_metadata(out_dir, experiment_metadata(spec, config, train_data, eval_split))
    started = time.perf_counter()
    with training_stream(train_data, geometry, batch_size=schedule.batch_size, seed=schedule.seed,
                         steps=schedule.steps, workers=data.workers) as batches:
        trained = train(
            config,
            batches,
            steps=schedule.steps,
            params=model.initial_params(config, schedule.seed),
            cls_loss=losses.cls,
            reg_loss=losses.reg,
            alpha_balance=losses.alpha_balance,
            optimizer=schedule.optimizer,
            seed=schedule.seed,
            out_dir=out_dir,
            checkpoint_every=max(schedule.steps // 10, 100),
            resume=True,
            progress=progress,
        )
    train_seconds = time.perf_counter() - started
    metrics = evaluate_model(trained.params, config, eval_set, batch_size=schedule.eval_batch_size,
                             workers=data.workers)
    return ExperimentResult(
        metrics=metrics,
        steps=schedule.steps,
        batch_size=schedule.batch_size,
        seed=schedule.seed,
        train_seconds=train_seconds,
        compile_seconds=trained.compile_seconds,
        images_per_second=trained.images_per_second,
        final_loss=trained.history[-1]["loss"] if trained.history else None,
        out_dir=str(out_dir),
        eval_split=eval_split,
        losses=description,
        datasets=describe_data(train_data, eval_set),
    )


def experiment_metadata(spec: ExperimentSpec, config, train_data: DatasetIndex, eval_split: str) -> dict:
    """Return the ``experiment.json`` of a resolved spec: what evaluation needs to rebuild the model, and what it
    was trained with (a rerun with other settings is refused rather than resumed)."""
    return {
        "detector": spec.model.detector,
        "preset": spec.model.preset,
        "backbone_weights": spec.model.backbone_weights,
        "config": dataclasses.asdict(config),
        "class_names": list(train_data.class_names),
        "image_size": list(config.image_size),
        "geometry": spec.geometry.to_dict(),
        "data": spec.data.train,
        "eval_data": spec.data.eval or spec.data.train,
        "train_split": spec.data.train_split,
        # the spec alone may name other images (a default that changed, files replaced under a path)
        "train_images": len(train_data),
        "eval_split": eval_split,
        "losses": spec.losses.describe(),
        "steps": spec.schedule.steps,
        "batch_size": spec.schedule.batch_size,
        "seed": spec.schedule.seed,
        "optimizer": dataclasses.asdict(spec.schedule.optimizer),
    }


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
