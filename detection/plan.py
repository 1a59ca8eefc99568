"""A dry run of an experiment: every problem found up front, then the plan of what the training will do and cost.

:func:`experiment_problems` checks the spec, the backbone weights and both datasets and returns every problem
(not only the first). :func:`plan_stage` loads the dataset indexes (annotations, no pixels), compiles the
train step at the first canvas for its memory (XLA's own count: parameters, optimizer state, batch and
temporaries) and times a few steps on a synthetic batch of that canvas, which gives the estimated wall time.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np

from detection.datasets import evaluation_split, load_dataset
from detection.detectors import detector_of
from detection.experiment import load_data_pair
from detection.experiment_spec import ExperimentSpec
from detection.training import create_train_state, data_parallel_mesh, make_train_step, replicate, shard_batch


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """What one stage of trainings (a training, or a search's proxy or final trainings) will do and cost."""

    name: str
    trainings: int
    train_images: int
    eval_images: int
    eval_data: str
    canvases: tuple[tuple[int, int], ...]
    batch_size: int
    steps: int
    step_memory_bytes: int | None  # the compiled train step's arguments, outputs and temporaries
    compile_seconds: float | None
    seconds_per_step: float | None  # None when no step was timed

    @property
    def estimated_seconds(self) -> float | None:
        """Wall time of the stage's trainings from the timed steps (compile included, evaluation not)."""
        if self.seconds_per_step is None:
            return None
        return self.trainings * (self.steps * self.seconds_per_step + (self.compile_seconds or 0.0))

    def to_dict(self) -> dict:
        """The plan as a JSON-ready dict."""
        return {
            **dataclasses.asdict(self),
            "canvases": [list(c) for c in self.canvases],
            "estimated_seconds": self.estimated_seconds,
            "platform": jax.devices()[0].platform,
        }


def experiment_problems(spec: ExperimentSpec) -> list[str]:
    """Every problem of ``spec`` found without training: settings, backbone weights, training and evaluation data."""
    problems, data = [], spec.data

    def attempt(what: str, load):
        try:
            return load()
        except (ValueError, OSError) as error:
            problems.append(f"{what}{error}")
            return None

    attempt("", lambda: spec.model.check(spec.geometry.canvases[0]))
    train = attempt(
        f"training data {data.train!r}: ",
        lambda: load_dataset(data.train, split=data.train_split, root=data.root, progress=False),
    )
    separate = data.eval not in (None, data.train)
    evaluation = attempt(
        f"evaluation data {data.eval or data.train!r}: ",
        lambda: load_dataset(
            data.eval if separate else data.train,
            split=evaluation_split(data.eval, data.eval_split) if separate else data.eval_split,
            root=data.root,
            progress=False,
        ),
    )
    if train is not None and evaluation is not None:
        attempt("", lambda: evaluation.with_class_order(train.class_names))
    return problems


def plan_stage(spec: ExperimentSpec, name: str = "train", *, trainings: int = 1, timed_steps: int = 2) -> StagePlan:
    """The plan of ``trainings`` trainings of ``spec`` (whose problems were checked); ``timed_steps`` 0 times none."""
    spec = spec.resolved()
    train_data, eval_data, _ = load_data_pair(
        spec.data.train,
        spec.data.eval,
        spec.data.train_split,
        spec.data.eval_split,
        root=spec.data.root,
        progress=False,
    )
    canvas = spec.geometry.canvases[0]
    config = spec.model.config(train_data.num_classes, canvas)
    memory, compile_seconds, seconds_per_step = _time_steps(spec, config, canvas, timed_steps)
    return StagePlan(
        name,
        trainings,
        len(train_data),
        len(eval_data),
        eval_data.name,
        spec.geometry.canvases,
        spec.schedule.batch_size,
        spec.schedule.steps,
        memory,
        compile_seconds,
        seconds_per_step,
    )


def _time_steps(spec: ExperimentSpec, config, canvas: tuple[int, int], steps: int):
    """(memory bytes, compile seconds, seconds per step) of the train step on a synthetic batch of ``canvas``."""
    schedule, mesh = spec.schedule, data_parallel_mesh()
    options = detector_of(config).loss_options(
        spec.losses.cls, spec.losses.reg, alpha_balance=spec.losses.alpha_balance
    )
    step = make_train_step(config, schedule.optimizer, schedule.steps, options, mesh)
    state = replicate(create_train_state(config, schedule.optimizer, schedule.steps, jax.random.key(0)), mesh)
    batch = shard_batch(_synthetic_batch(schedule.batch_size, canvas), mesh)
    key = jax.random.key(schedule.seed)
    started = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    compile_seconds = time.perf_counter() - started
    analysis = compiled.memory_analysis()
    memory = (
        None
        if analysis is None
        else int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes)
    )
    if steps < 1:
        return memory, compile_seconds, None
    state, metrics = compiled(state, batch, key)  # the first run may still warm up
    jax.block_until_ready(metrics)
    started = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch, key)
    jax.block_until_ready(metrics)
    return memory, compile_seconds, (time.perf_counter() - started) / steps


def _synthetic_batch(batch_size: int, canvas: tuple[int, int]) -> dict:
    height, width = canvas
    box = np.array([0.1 * width, 0.1 * height, 0.6 * width, 0.7 * height], np.float32)
    return {
        "images": np.random.default_rng(0).integers(0, 256, (batch_size, height, width, 3), np.uint8),
        "boxes": np.tile(box, (batch_size, 1, 1)),
        "labels": np.zeros((batch_size, 1), np.int32),
        "valid": np.ones((batch_size, 1), bool),
    }


def format_plan(stages: list[dict]) -> str:
    """The plan (``StagePlan.to_dict()`` of each stage) as text: one paragraph per stage."""
    lines = []
    for stage in stages:
        canvases = " and ".join(f"{h}x{w}" for h, w in stage["canvases"])
        memory = stage["step_memory_bytes"]
        estimate = stage["estimated_seconds"]
        timing = (
            "-"
            if estimate is None
            else (
                f"{_duration(estimate)} ({stage['seconds_per_step']:.3f} s/step on {stage['platform']}, compile "
                f"{stage['compile_seconds']:.0f} s; evaluation not included)"
            )
        )
        lines += [
            f"{stage['name']}: {stage['trainings']} training(s) of {stage['steps']} steps, batch "
            f"{stage['batch_size']}, canvas {canvases}",
            f"  images: {stage['train_images']} training, {stage['eval_images']} evaluation ({stage['eval_data']})",
            "  per-step memory (compiled step: parameters, optimizer state, batch, activations): "
            + ("-" if memory is None else f"{memory / 2**30:.2f} GiB"),
            f"  estimated time: {timing}",
        ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
