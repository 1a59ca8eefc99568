"""Detector training: train state, one jitted data-parallel train step, and the training loop.

Data parallelism: a 1-D ``Mesh`` over ``jax.devices()`` with axis ``"data"``; each batch is
sharded along its leading axis (``NamedSharding(mesh, P("data"))``) and the train state is
replicated. The step is written for the global batch, so XLA inserts the gradient all-reduce
and the loss normalizers (number of positives) are global totals; one device is the same code.

Divergence: the loop checks every step's metrics on the host; a non-finite value (or a loss
above ``max_loss``) raises :class:`TrainingDiverged` carrying the step and the metric values.
An exception rather than a status, because a NaN update has already corrupted the parameters;
a search that wants "failure as a value" catches it and scores the candidate as worst.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from detection.backbone import frozen_mask
from detection.checkpoints import load_checkpoint, save_checkpoint
from detection.detectors import detector_of
from detection.geometry import config_for_canvas
from detection.optim import OptimizerConfig, learning_rate_schedule, make_optimizer

DEFAULT_OPTIMIZER = OptimizerConfig()


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree."""

    params: Any
    opt_state: Any
    step: jax.Array


@dataclasses.dataclass
class TrainResult:
    """Outcome of :func:`train`: final state, logged metrics and measured speed."""

    state: TrainState
    history: list[dict[str, float]]  # one entry per log point, with "step"
    images_per_second: float  # after the first (compiling) step
    compile_seconds: float  # wall time of the first step

    @property
    def params(self) -> Any:
        """Return the trained parameters."""
        return self.state.params


class TrainingDiverged(RuntimeError):
    """Raised when a training step produces a non-finite (or exploding) loss."""

    def __init__(self, step: int, metrics: dict[str, float]):
        self.step = step
        self.metrics = metrics
        values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        super().__init__(
            f"training diverged at step {step}: {values}. Check the loss functions for NaN/inf at extreme "
            "inputs, or lower the learning rate / enable gradient clipping."
        )


def data_parallel_mesh(devices: Iterable[jax.Device] | None = None) -> Mesh:
    """Return a 1-D mesh with axis ``"data"`` over ``devices`` (default: all local devices)."""
    return Mesh(np.asarray(list(devices) if devices is not None else jax.devices()), ("data",))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Return ``batch`` placed on ``mesh`` split along the leading (image) axis."""
    num_devices = mesh.devices.size
    size = len(batch["images"])
    if size % num_devices:
        raise ValueError(
            f"batch of {size} images cannot be split over {num_devices} devices; "
            f"use a batch size divisible by {num_devices}"
        )
    return jax.device_put(dict(batch), NamedSharding(mesh, PartitionSpec("data")))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Return ``tree`` replicated on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def create_train_state(
    config: Any, optimizer: OptimizerConfig, total_steps: int, key: jax.Array, params: Any = None
) -> TrainState:
    """Return a fresh train state (params from ``key`` unless given, e.g. for a warm start)."""
    if params is None:
        params = detector_of(config).init_params(config, key)
    opt_state = make_optimizer(optimizer, total_steps).init(params)
    return TrainState(params=params, opt_state=opt_state, step=np.zeros((), np.int32))


@functools.lru_cache(maxsize=32)
def make_train_step(
    config: Any,
    optimizer: OptimizerConfig,
    total_steps: int,
    loss_options: tuple[tuple[str, Any], ...],
    mesh: Mesh,
) -> Callable[[TrainState, dict, jax.Array], tuple[TrainState, dict]]:
    """Return the jitted step ``(state, batch, key) -> (state, metrics)``; cached per settings.

    ``loss_options`` are the keyword arguments of the detector's loss as sorted
    ``(name, value)`` pairs (``Detector.loss_options``). The loss gets the step's own key,
    ``jax.random.fold_in(key, state.step)``, so a resumed run draws what an uninterrupted one would.
    """
    transform = make_optimizer(optimizer, total_steps)
    schedule = learning_rate_schedule(optimizer, total_steps)
    loss_fn = functools.partial(detector_of(config).loss, config=config, **dict(loss_options))

    def train_step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
        step_key = jax.random.fold_in(key, state.step)  # e.g. Faster R-CNN's RoI sampling
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, step_key)
        updates, opt_state = transform.update(grads, state.opt_state, state.params)
        updates = jax.tree.map(lambda u, frozen: jnp.zeros_like(u) if frozen else u, updates,
                               frozen_mask(state.params, config))  # weight decay too
        params = optax.apply_updates(state.params, updates)
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "learning_rate": schedule(state.step)}
        return TrainState(params=params, opt_state=opt_state, step=state.step + 1), metrics

    return jax.jit(train_step, out_shardings=NamedSharding(mesh, PartitionSpec()))


def _batch_source(data: Callable[[int], dict] | Iterable[dict], start_step: int,
                  data_state: dict | None) -> Callable[[int], dict]:
    """Return ``step -> batch`` continuing at ``start_step``.

    A stream with ``set_state`` is set to its saved state with the position ``start_step`` (the restored
    parameters' step decides: a crash between the two checkpoint files leaves the older metadata); another
    iterable is advanced past the ``start_step`` batches already used.
    """
    if callable(data):
        return data
    if hasattr(data, "set_state"):
        data.set_state({**(data_state or {}), "position": start_step})
        return lambda step: next(data)
    iterator = iter(data)
    for _ in range(start_step):
        next(iterator)
    return lambda step: next(iterator)


def _describe(value: Any) -> Any:
    """Return a JSON-friendly description of a loss option (a function by its name)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return getattr(getattr(value, "fn", value), "__name__", repr(value))


def _metadata(config, optimizer, total_steps, seed, step, loss_options, data=None) -> dict:
    state = data.get_state() if hasattr(data, "get_state") else None
    return {
        **({"data_state": state} if state is not None else {}),
        "step": step,
        "total_steps": total_steps,
        "seed": seed,
        "config": dataclasses.asdict(config),
        "optimizer": dataclasses.asdict(optimizer),
        "losses": {k: _describe(v) for k, v in loss_options},
    }


def _check_resumable(metadata: dict, expected: dict, out_dir) -> None:
    """Raise ValueError when a checkpoint was written with different settings than this run's."""
    fields = ("total_steps", "seed", "config", "optimizer")
    stored = json_roundtrip({k: metadata.get(k) for k in fields})
    wanted = json_roundtrip({k: expected[k] for k in fields})
    different = [k for k in fields if stored[k] != wanted[k]]
    if different:
        raise ValueError(
            f"{out_dir}: checkpoint was written with different {', '.join(different)}; "
            "resume with the same settings or use a fresh out_dir"
        )


def json_roundtrip(value: Any) -> Any:
    """Return ``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def train(
    config: Any,
    data: Callable[[int], dict] | Iterable[dict],
    *,
    steps: int,
    cls_loss: str | Callable | None = None,
    reg_loss: str | Callable = "giou",
    alpha_balance: float | None = None,
    reg_weight: float | None = None,
    quality_weight: float | None = None,
    optimizer: OptimizerConfig = DEFAULT_OPTIMIZER,
    seed: int = 0,
    params: Any = None,
    log_every: int = 10,
    out_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    max_loss: float | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the detector of ``config`` (FCOS or Faster R-CNN) for ``steps`` steps; return state and metrics.

    ``data`` is ``step -> batch``, a stream with ``get_state``/``set_state`` (:func:`detection.pipeline.
    training_stream`; its position is saved in the checkpoint and restored on resume), or another iterable
    of batches (advanced past the completed steps on resume). Batches follow the detection batch contract
    (:mod:`detection.batching`); a batch of another canvas than ``config.image_size`` runs with the config's
    canvas set to it (one compiled step per canvas). Losses
    and options go to the detector's loss (``detection.detectors``); no ``cls_loss`` means the
    detector's default (focal or cross-entropy), an option left None keeps the loss's own default,
    and an option the detector does not take raises. ``params`` warm-starts the model.
    With ``out_dir`` a checkpoint is written every ``checkpoint_every`` steps and at the end;
    ``resume=True`` continues from it (a missing checkpoint starts fresh) and gives the same
    result as an uninterrupted run. ``callback(step, metrics)`` runs at every log point.
    Raises :class:`TrainingDiverged` on a non-finite loss.
    """
    detector = detector_of(config)
    loss_options = detector.loss_options(
        detector.default_cls_loss if cls_loss is None else cls_loss,
        reg_loss,
        alpha_balance=alpha_balance,
        reg_weight=reg_weight,
        quality_weight=quality_weight,
    )
    mesh = data_parallel_mesh()
    init_key, step_key = jax.random.split(jax.random.key(seed))
    state = create_train_state(config, optimizer, steps, init_key, params)
    expected = _metadata(config, optimizer, steps, seed, 0, loss_options)
    data_state = None
    if resume and out_dir is not None:
        restored = load_checkpoint(out_dir, state)
        if restored is not None:
            _check_resumable(restored[1], expected, out_dir)
            state, data_state = restored[0], restored[1].get("data_state")
    start_step = int(state.step)
    state = replicate(state, mesh)
    next_batch = _batch_source(data, start_step, data_state)

    history: list[dict[str, float]] = []
    compile_seconds, timed_images, timed_seconds = 0.0, 0, 0.0
    bar = tqdm(range(start_step, steps), initial=start_step, total=steps, disable=not progress, desc="train")
    for step in bar:
        batch = shard_batch(next_batch(step), mesh)
        train_step = make_train_step(config_for_canvas(config, batch["images"].shape[1:3]), optimizer, steps,
                                     loss_options, mesh)
        started = time.perf_counter()
        state, metrics = train_step(state, batch, step_key)
        values = {k: float(v) for k, v in metrics.items()}  # waits for the step to finish
        elapsed = time.perf_counter() - started
        if step == start_step:
            compile_seconds = elapsed
        else:
            timed_images, timed_seconds = timed_images + len(batch["images"]), timed_seconds + elapsed
        if not all(math.isfinite(v) for v in values.values()) or (max_loss and values["loss"] > max_loss):
            bar.close()
            raise TrainingDiverged(step + 1, values)
        done = step + 1
        speed = timed_images / timed_seconds if timed_seconds else 0.0
        if out_dir is not None and (done == steps or (checkpoint_every and done % checkpoint_every == 0)):
            save_checkpoint(out_dir, state, _metadata(config, optimizer, steps, seed, done, loss_options, data))
        if done % log_every == 0 or done == steps:
            history.append({"step": done, **values, "images_per_second": speed})
            bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{speed:.0f}")
            if callback is not None:
                callback(done, values)
    bar.close()
    speed = timed_images / timed_seconds if timed_seconds else 0.0
    return TrainResult(state=state, history=history, images_per_second=speed, compile_seconds=compile_seconds)
