"""Model optimization simulation (MOS): short optimizations of many candidates in one compiled program.

A :class:`Simulator` is built once per search: it loads the data, gets the cached warm start
(:mod:`simulate.warm_start`), draws the verification set, caches the features below the
prediction layers (:mod:`simulate.heads`) and simulates the branch's default loss as the
*baseline*. Then :meth:`Simulator.simulate_many` takes candidates in batches of ``batch_size``,
with the parameters stacked across the batch and each optimizer step one jitted call for all:

- ``batching="linearized"`` (default): one compiled step shared by every batch, in which each
  candidate's loss enters as its value and input derivatives at the current point, computed by a
  small compiled function of the batch's lowered losses (:mod:`simulate.linearized`); only that
  small function compiles per batch;
- ``batching="stacked"``: each candidate's own lowered JAX loss (``Candidate.to_jax``'s program) is
  written into the batch's step function, which compiles once per batch (the compile grows with
  the batch and is most of its time on a CPU);
- ``batching="interpreter"``: the losses are data for the loss interpreter
  (:mod:`simulate.interpreter`), mapped over the batch (``lax.map``: each instruction runs only
  its own operator; vectorizing instead evaluates every operator of the form, measured slower);
  it compiles once per length class and never again, but each step runs slower.

The three give the same results up to float rounding; ``benchmarks/RESULTS.md`` has their speed.

For each candidate, from the warm start: ``steps`` optimizer steps on the verification images
with the candidate in its branch (the other branch keeps its default), the loss recorded every
step; then detections on the same images scored by COCO AP (pycocotools). Outcomes:

- rejected, ``non-finite loss or gradient at step t``: that candidate's parameters stop updating
  at the first non-finite step (the others in the batch are separate and unaffected);
- rejected, ``loss exploded``: ``|loss|`` grew past ``max_loss_ratio`` times its first value;
- rejected, ``AP ... below ...``: AP under ``min_relative_ap`` times the baseline's simulated AP;
- passed, with its AP as the score that ranks candidates for the proxy task.

Searched ``sigmoid``-form losses are alpha-balanced as the authors' FCOS release trains them
(0.25 on positives, 0.75 on negatives); the baseline runs through the same batching (the
zoo's focal, GIoU or CE formula), so baseline and candidates differ only in the loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from detection.datasets import load_dataset
from detection.detectors import get_detector
from detection.evaluation import evaluate_detections
from detection.geometry import Geometry, geometry_of, to_original_pixels
from detection.optim import OptimizerConfig, make_optimizer
from detection.pretrained import PRETRAINED_BACKBONE
from simulate.heads import TRAIN_CHOICES, head_task, with_fresh_output_layer
from simulate.interpreter import encode, encode_tree, length_class, run_program
from simulate.linearized import derivatives_fn, first_order_loss, loss_inputs
from simulate.warm_start import verification_set, warm_start
from symbolic.candidate import Candidate
from symbolic.zoo import KNOWN_LOSSES

AUTHORS_ALPHA = 0.25  # positive-entry weight of searched sigmoid-form losses (their FCOS release)
BASELINE_LOSSES = {"sigmoid": "focal", "softmax": "ce", "reg": "giou"}  # zoo names of the detectors' defaults
BATCHING_CHOICES = ("stacked", "interpreter", "linearized")
_RANGES = {
    "image_size": (32, 2048),
    "images_per_class": (1, 64),
    "warm_start_steps": (0, 1_000_000),
    "warm_start_batch_size": (1, 4096),
    "steps": (1, 100_000),
    "learning_rate": (1e-7, 1.0),
    "batch_size": (1, 4096),
    "min_relative_ap": (0.0, 10.0),
    "max_loss_ratio": (1.0, 1e12),
}


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Every setting of a simulation; JSON-ready with ``dataclasses.asdict``."""

    detector: str = "fcos"
    data: str = "shapes"
    data_root: str | None = None
    image_size: int = 128  # shorter side S of the images
    image_max_size: int | None = None  # longer side at most L (None: L = S, a square canvas)
    preset: str = "tiny"
    backbone_weights: str | None = None  # pretrained ResNet weights (detection.pretrained) for the warm start
    branch: str = "cls"  # "cls" or "reg": the branch the candidates replace
    seed: int = 0
    images_per_class: int = 1
    warm_start_steps: int = 1000
    warm_start_batch_size: int = 16
    steps: int = 40  # optimizer steps per candidate on the verification images
    learning_rate: float = 1e-2  # AdamW, constant, gradient clipped at 35 as in training
    train: str = "heads"  # "heads": heads on cached features; "all": the whole detector
    reset_output: bool = True  # re-initialize the branch's output layer, so the candidate must train it
    batch_size: int = 16  # candidates simulated together
    batching: str = "linearized"  # linearized | stacked | interpreter: how a batch's losses enter its compiled step
    min_relative_ap: float = 0.5  # reject below this fraction of the baseline's simulated AP
    max_loss_ratio: float = 100.0  # reject when |loss| exceeds this multiple of its first value

    def __post_init__(self):
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"SimulationConfig.{name}={value!r} is out of range [{low}, {high}]")
        choices = {"branch": ("cls", "reg"), "train": TRAIN_CHOICES, "batching": BATCHING_CHOICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"SimulationConfig.{name}={getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        get_detector(self.detector)
        Geometry(short_side=self.image_size, max_size=self.image_max_size)  # raises for an impossible pair

    @property
    def form(self) -> str:
        """The loss form the candidates must have: the detector's cls form, or ``reg``."""
        return get_detector(self.detector).cls_form if self.branch == "cls" else "reg"


@dataclasses.dataclass
class SimulationResult:
    """The simulated outcome of one candidate."""

    key: str
    infix: str
    passed: bool  # False: rejected by the simulation
    score: float  # AP on the verification images (fraction); nan when the run was not finite
    reason: str | None  # why it was rejected
    step: int | None  # the step at which it failed, when it did
    loss_curve: list[float]
    seconds: float  # this candidate's share of its batch's wall time
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # AP50, AP75, ...

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (nan as None)."""
        out = dataclasses.asdict(self)
        out["score"] = None if math.isnan(self.score) else self.score
        out["loss_curve"] = [None if not math.isfinite(v) else v for v in self.loss_curve]
        out["metrics"] = {k: (None if not math.isfinite(v) else v) for k, v in self.metrics.items()}
        return out


def warm_start_of(config: SimulationConfig, *, cache_dir=None, progress: bool = True):
    """(params, cache file, detector config, train data) of the warm start of ``config`` (cached on disk).

    The one recipe behind the MOS warm start and the proxy task's warm start (``autoloss.proxy``), so
    both start from the same file.
    """
    detector = get_detector(config.detector)
    train_data = load_dataset(config.data, split="train", root=config.data_root, progress=progress)
    canvas = Geometry(short_side=config.image_size, max_size=config.image_max_size).canvases[0]
    detector_config = detector.make_config(train_data.num_classes, canvas, config.preset,
                                           **(PRETRAINED_BACKBONE if config.backbone_weights else {}))
    params, path = warm_start(
        detector_config,
        train_data,
        data_spec=config.data,
        steps=config.warm_start_steps,
        batch_size=config.warm_start_batch_size,
        optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=min(200, config.warm_start_steps // 4)),
        seed=config.seed,
        backbone_weights=config.backbone_weights,
        cache_dir=cache_dir,
        progress=progress,
    )
    return params, path, detector_config, train_data


class Simulator:
    """Simulates candidates of one branch against a cached warm start; build once per search."""

    def __init__(self, config: SimulationConfig | None = None, *, cache_dir=None, progress: bool = True):
        self.config = config = config or SimulationConfig()
        self.progress = progress
        self.form = config.form
        detector = get_detector(config.detector)
        params, self.warm_start_file, self.detector_config, train_data = warm_start_of(
            config, cache_dir=cache_dir, progress=progress)
        if config.reset_output:
            fresh = detector.init_params(self.detector_config, jax.random.key(config.seed + 1))
            params = with_fresh_output_layer(config.detector, config.branch, params, fresh)
        self.verification_data, batch = verification_set(train_data, config.images_per_class, config.seed,
                                                         geometry_of(self.detector_config))
        self._scales = batch["scales"]
        self.task = head_task(config.detector, self.detector_config, params, batch,
                              jax.random.key(config.seed + 2), train=config.train)
        self._shared_steps: dict[tuple[int | str, int], Any] = {}
        # Wall time by phase: the first step call of a batch (compile when new), the other steps, AP evaluation.
        self.timings = {"first_step_seconds": 0.0, "steps_seconds": 0.0, "evaluation_seconds": 0.0}
        self._detect = jax.jit(jax.vmap(lambda p, frozen: self.task.detect(self.task.forward(p, frozen), frozen),
                                        in_axes=(0, None)))
        self.baseline = None
        self.baseline = self.simulate_many([KNOWN_LOSSES[BASELINE_LOSSES[self.form]].candidate], _baseline=True)[0]

    def simulate_many(self, candidates: Sequence[Candidate], *, _baseline: bool = False) -> list[SimulationResult]:
        """Simulate ``candidates`` (all of this simulator's form); results in the same order, never raises for one."""
        for candidate in candidates:
            if candidate.form.name != self.form:
                raise ValueError(f"candidate {candidate.infix()} is a {candidate.form.name}-form loss; "
                                 f"this simulator's {self.config.branch} branch takes the {self.form} form")
        groups: dict[int, list[int]] = {}
        for index, candidate in enumerate(candidates):
            length = len(encode_tree(candidate.tree, self.form)[0]) if self.config.batching == "interpreter" else 0
            groups.setdefault(length_class(max(length, 1)), []).append(index)
        size = self.config.batch_size
        chunks = [rows[i : i + size] for _, rows in sorted(groups.items()) for i in range(0, len(rows), size)]
        results: list[SimulationResult | None] = [None] * len(candidates)
        bar = tqdm(total=len(candidates), desc="simulate", disable=not self.progress or _baseline, leave=False)
        for rows in chunks:
            chunk = [candidates[i] for i in rows]
            for row, result in zip(rows, self._simulate_chunk(chunk, baseline=_baseline), strict=True):
                results[row] = result
            bar.update(len(rows))
        bar.close()
        return results

    def _simulate_chunk(self, candidates: list[Candidate], *, baseline: bool) -> list[SimulationResult]:
        started = time.perf_counter()
        count, size = len(candidates), self.config.batch_size
        padded = [candidates[i] for i in np.resize(np.arange(count), size)]  # pad by repeating
        # (positive, negative) entry weights of a sigmoid-form loss: the authors' alpha balance for searched ones.
        balanced = self.form == "sigmoid" and not baseline
        weights = np.tile([AUTHORS_ALPHA, 1 - AUTHORS_ALPHA] if balanced else [1.0, 1.0], (size, 1)).astype(np.float32)
        derivatives = None
        if self.config.batching == "interpreter":
            programs, registers = encode(padded, self.form)
            registers = _register_class(registers)
            step = self._shared_step(programs.opcodes.shape[1], registers)
            data = programs.as_tuple()
        elif self.config.batching == "linearized":
            step, data = self._shared_step("linearized"), None
            derivatives = derivatives_fn([c.to_jax() for c in padded], self.form)
        else:
            step, data = _build_step(self.task, self.config, self.form, [c.to_jax() for c in padded]), None
        params = jax.tree.map(lambda x: jnp.broadcast_to(x, (size, *x.shape)), self.task.trainable)
        opt_state = jax.vmap(_optimizer(self.config).init)(params)
        state = (params, opt_state, jnp.ones(size, bool), jnp.zeros(size, jnp.int32))
        key = jax.random.key(self.config.seed)
        curves = []
        for t in range(self.config.steps):
            if derivatives is not None:
                data = derivatives(*self._loss_inputs(state[0], weights, self.task.frozen, key, t))
            *state, loss = step(*state, data, weights, self.task.frozen, key, t)
            curves.append(loss)
            if t == 0:
                jax.block_until_ready(loss)
                self.timings["first_step_seconds"] += time.perf_counter() - started
        losses = np.asarray(jax.device_get(jnp.stack(curves, axis=1)))
        failed_at = np.asarray(jax.device_get(state[3]))
        detections = [np.asarray(a) for a in jax.device_get(self._detect(state[0], self.task.frozen))]
        detections[0] = to_original_pixels(detections[0], self._scales, self.verification_data.sizes)
        evaluated = time.perf_counter()
        results = [
            self._judge(candidate, losses[k], int(failed_at[k]), [array[k] for array in detections])
            for k, candidate in enumerate(candidates)
        ]
        finished = time.perf_counter()
        self.timings["evaluation_seconds"] += finished - evaluated
        self.timings["steps_seconds"] += evaluated - started
        for result in results:
            result.seconds = (finished - started) / count
        return results

    def _shared_step(self, kind: int | str, registers: int = 0):
        """The compiled step shared by every batch: an interpreter step (by program length and registers)
        or the linearized step; built on first use."""
        if (kind, registers) not in self._shared_steps:
            lowered = "linearized" if kind == "linearized" else None
            self._shared_steps[kind, registers] = _build_step(self.task, self.config, self.form, lowered, registers)
        return self._shared_steps[kind, registers]

    @functools.cached_property
    def _loss_inputs(self):
        """The compiled inputs of each candidate's loss at the current parameters (linearized batching)."""
        return _build_inputs(self.task, self.config, self.form)

    def _judge(self, candidate: Candidate, losses: np.ndarray, failed_at: int, detections) -> SimulationResult:
        curve = [float(v) for v in losses]
        result = SimulationResult(key=candidate.key, infix=candidate.infix(), passed=False, score=math.nan,
                                  reason=None, step=None, loss_curve=curve, seconds=0.0)
        if failed_at:
            result.reason, result.step = f"non-finite loss or gradient at step {failed_at}", failed_at
            return result
        metrics = evaluate_detections(self.verification_data, *detections,
                                      max_per_image=self.detector_config.max_detections)
        result.metrics = {k: float(v) for k, v in metrics.items() if k != "eval_seconds"}
        result.score = metrics["AP"] if math.isfinite(metrics["AP"]) else 0.0
        start = max(abs(curve[0]), 1e-3)
        exploded = [t for t, v in enumerate(curve) if abs(v) > self.config.max_loss_ratio * start]
        if exploded:
            result.step = exploded[0] + 1
            result.reason = (f"loss exploded to {curve[exploded[0]]:.3g} at step {result.step} "
                             f"(more than {self.config.max_loss_ratio:g}x its first value {curve[0]:.3g})")
            return result
        if self.baseline is not None:
            floor = self.config.min_relative_ap * self.baseline.score
            if result.score < floor:
                result.reason = (f"AP {100 * result.score:.1f} below {100 * floor:.1f} ({self.config.min_relative_ap:g}"
                                 f" x the baseline's {100 * self.baseline.score:.1f})")
                return result
        result.passed = True
        return result


def _register_class(registers: int) -> int:
    """Round the register count up to a multiple of 4, so batches share compiled programs."""
    return max(8, -(-registers // 4) * 4)


def _optimizer(config: SimulationConfig) -> optax.GradientTransformation:
    """AdamW at a constant rate, clipped as in training."""
    return make_optimizer(OptimizerConfig(learning_rate=config.learning_rate, warmup_steps=0, decay_fractions=()),
                          config.steps)


def _branch_losses(config: SimulationConfig, form: str, loss: Callable, weight) -> tuple:
    """(cls, reg) losses of the detector with ``loss`` in the simulated branch (alpha-balanced when sigmoid)."""
    if config.branch == "reg":
        return get_detector(config.detector).default_cls_loss, loss
    if form != "sigmoid":
        return loss, "giou"
    return (lambda x, y, w: (weight[0] * y + weight[1] * (1.0 - y)) * loss(x, y, w)), "giou"


def _build_inputs(task, config: SimulationConfig, form: str):
    """The jitted ``(params, weights, frozen, key, t) -> inputs`` of each candidate's loss, stacked."""
    def one(params, weight, frozen, key):
        output = task.forward(params, frozen)
        return loss_inputs(lambda probe: task.loss(output, frozen, key, *_branch_losses(config, form, probe, weight)),
                           form)

    def inputs(params, weights, frozen, key, t):
        return jax.vmap(one, in_axes=(0, 0, None, None))(params, weights, frozen, jax.random.fold_in(key, t))

    return jax.jit(inputs)


def _build_step(task, config: SimulationConfig, form: str, lowered: list | str | None, registers: int = 0):
    """The jitted step ``(params, opt_state, alive, failed_at, programs, weights, frozen, key, t)`` for a batch.

    Parameters are stacked over the batch. ``lowered`` holds each candidate's JAX loss (stacked
    batching; ``programs`` is then None), is None (interpreter; ``programs`` are the encoded arrays),
    or is ``"linearized"`` (``programs`` are the losses' stacked derivatives, :mod:`simulate.linearized`).
    A candidate whose loss or gradient is not finite stops updating and records the step.
    """
    optimizer = _optimizer(config)

    def candidate_losses(params, programs, weights, frozen, key):
        outputs = jax.vmap(task.forward, in_axes=(0, None))(params, frozen)
        if lowered == "linearized":
            def linear(output, derivatives, weight):
                loss = first_order_loss(derivatives, form)
                return task.loss(output, frozen, key, *_branch_losses(config, form, loss, weight))[0]

            return jax.vmap(linear)(outputs, programs, weights)
        if lowered is None:
            def one(output, program, weight):
                interpreted = functools.partial(_interpreted_loss, program, form, registers)
                return task.loss(output, frozen, key, *_branch_losses(config, form, interpreted, weight))[0]

            return jax.lax.map(lambda args: one(*args), (outputs, programs, weights))
        return jnp.stack([
            task.loss(jax.tree.map(lambda x, k=k: x[k], outputs), frozen, key,
                      *_branch_losses(config, form, fn, weights[k]))[0]
            for k, fn in enumerate(lowered)
        ])

    def step(params, opt_state, alive, failed_at, programs, weights, frozen, key, t):
        step_key = jax.random.fold_in(key, t)
        total = lambda p: (lambda losses: (jnp.sum(jnp.where(alive, losses, 0.0)), losses))(
            candidate_losses(p, programs, weights, frozen, step_key))
        (_, losses), grads = jax.value_and_grad(total, has_aux=True)(params)
        norms = jax.vmap(optax.tree.norm)(grads)
        finite = jnp.isfinite(losses) & jnp.isfinite(norms)
        keep = alive & finite
        expand = lambda mask, x: mask.reshape(mask.shape + (1,) * (x.ndim - 1))
        grads = jax.tree.map(lambda g: jnp.where(expand(keep, g), g, 0.0), grads)
        updates, new_state = jax.vmap(optimizer.update)(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        select = lambda new, old: jnp.where(expand(keep, new), new, old)
        params = jax.tree.map(select, new_params, params)
        opt_state = jax.tree.map(select, new_state, opt_state)
        failed_at = jnp.where(alive & ~finite, t + 1, failed_at)
        return params, opt_state, keep, failed_at, losses

    return jax.jit(step)


def _interpreted_loss(program, form: str, registers: int, *inputs):
    return run_program(program, inputs, form, registers)


def simulate_many(candidates: Sequence[Candidate], config: SimulationConfig | None = None, *, cache_dir=None,
                  progress: bool = True) -> list[SimulationResult]:
    """Simulate ``candidates`` with a fresh :class:`Simulator` (build one and reuse it across calls in a search)."""
    return Simulator(config, cache_dir=cache_dir, progress=progress).simulate_many(candidates)
