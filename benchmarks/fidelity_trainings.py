"""The trainings of the proxy-fidelity study: what one training is, how it runs, and where its result is kept.

A :class:`Training` is one detector training of one study candidate: a *proxy* training (the search's proxy
task, ``autoloss.proxy``: from the MOS warm start with the classifier re-initialized, AP on ``search_val``),
possibly with other steps, learning rate, warm start or a loss scaled to the baseline's gradient norm; or a
*final* training (from scratch, AP on ``final_val``, the path of ``autoloss train``). Every spec comes from
the search's own ``autoloss.training_tasks.task_spec``, so the study measures the search's proxy, not a copy.

:func:`run_training` measures the process CPU seconds (``time.process_time``: every thread of this process,
so the other jobs on a shared machine do not count) and the wall seconds, and :class:`TrainingStore` keeps
one JSON file per finished training; a final training also keeps its run folder, so an interrupted one
resumes from its last checkpoint.

Gradient-scale normalization (``normalized``): the candidate's classification loss is multiplied by
``g_baseline / g_candidate``, the global norms of the gradient of the classification term with respect to
the parameters at the proxy's starting point (mean over the proxy's first batches), so every loss starts
with the baseline's gradient scale. It wraps the loss callable and trains through ``autoloss.proxy``'s own
proxy run (``_proxy_run``), so nothing but the loss differs from the proxy.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
import optax

from autoloss import proxy
from autoloss.loss_specs import LossSpec
from autoloss.search_config import SearchConfig
from autoloss.training_tasks import default_losses, task_spec
from detection.checkpoints import METADATA_FILE, write_atomically
from detection.detectors import get_detector
from detection.pipeline import training_stream
from detection.training import TrainingDiverged

KINDS = ("proxy", "final")
GRADIENT_BATCHES = 4  # batches the gradient scale is averaged over (the proxy's first ones)


@dataclasses.dataclass(frozen=True)
class Training:
    """One training of one study candidate; ``id`` names its result file (and run folder)."""

    candidate: str
    kind: str  # proxy | final
    steps: int
    learning_rate: float
    seed: int = 0
    warm_start_steps: int | None = None  # proxy: steps of its warm start (None: the search's)
    normalized: bool = False  # proxy: loss scaled to the baseline's gradient norm at the start

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Training.kind={self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind == "final" and (self.warm_start_steps is not None or self.normalized):
            raise ValueError("a final training starts from scratch with the plain loss")

    @property
    def id(self) -> str:
        """A file-name-safe identifier of every setting."""
        parts = [self.kind, self.candidate, f"{self.steps}steps", f"lr{self.learning_rate:g}", f"seed{self.seed}"]
        if self.warm_start_steps is not None:
            parts.append(f"warm{self.warm_start_steps}")
        if self.normalized:
            parts.append("normalized")
        return "-".join(parts)

    def describe(self) -> str:
        """One line for progress output."""
        extra = (f", warm start {self.warm_start_steps}" if self.warm_start_steps is not None else "") + (
            ", gradient-normalized" if self.normalized else "")
        return (f"{self.kind} {self.steps} steps lr {self.learning_rate:g} seed {self.seed}{extra} "
                f"of {self.candidate}")


def training_spec(training: Training, loss: dict, config: SearchConfig, work_dir: Path) -> dict:
    """The ``autoloss.proxy.train_and_evaluate`` spec of ``training`` with classification loss entry ``loss``."""
    losses = {**default_losses(config), "cls": loss}
    if training.kind == "final":
        final = config.replace(final_steps=training.steps, final_learning_rate=training.learning_rate,
                               seed=training.seed)
        return task_spec(final, losses, final=True, out_dir=work_dir / "runs" / training.id)
    proxy_config = config.replace(proxy_steps=training.steps, learning_rate=training.learning_rate,
                                  seed=training.seed)
    if training.warm_start_steps is not None:  # the search's own setting
        proxy_config = proxy_config.replace(proxy_warm_start_steps=training.warm_start_steps)
    return task_spec(proxy_config, losses, branch="cls")


def cls_gradient_norm(spec: dict, cls_spec: LossSpec, batches: int = GRADIENT_BATCHES) -> float:
    """Mean global norm of the classification term's parameter gradient at the proxy's start, first batches."""
    data, _ = proxy._data_pair(spec["data"], spec.get("eval_data"), spec["eval_split"], spec.get("data_root"))
    experiment = proxy.experiment_spec(spec)
    shape = experiment.geometry
    config = experiment.model.config(data.num_classes, shape.canvases[0])
    detector = get_detector(spec["detector"])
    params = proxy.initial_params(spec, config)
    if params is None:  # a proxy from scratch starts where train() would
        params = detector.init_params(config, jax.random.split(jax.random.key(spec["seed"]))[0])
    options = dict(detector.loss_options(cls_spec.fn, "giou", alpha_balance=cls_spec.alpha_balance))
    key = jax.random.key(spec["seed"])
    gradient = jax.jit(jax.grad(lambda p, batch: detector.loss(p, batch, key, config=config, **options)[1]["loss_cls"]))
    with training_stream(data, shape, batch_size=spec["batch_size"], seed=spec["seed"], steps=batches,
                         workers=spec.get("data_workers", 0)) as stream:  # the proxy's own first batches
        norms = [float(optax.tree.norm(gradient(params, batch))) for batch in stream]
    return float(np.mean(norms))


def scaled_loss(fn, scale: float):
    """``fn`` (a sigmoid-form loss callable) multiplied by ``scale``."""

    def loss(x, y, w):
        return scale * fn(x, y, w)

    loss.__name__ = f"scaled_{getattr(fn, '__name__', 'loss')}"
    return loss


def normalized_proxy(spec: dict) -> dict:
    """The proxy training of ``spec`` with its classification loss scaled to the baseline's gradient norm."""
    started = time.perf_counter()
    cls_spec = proxy.loss_spec(spec["cls"], "cls", spec["detector"])
    reg_spec = proxy.loss_spec(spec["reg"], "reg", spec["detector"])
    baseline = proxy.loss_spec(default_losses_entry(spec), "cls", spec["detector"])
    g_baseline = baseline_gradient_norm(json.dumps({**spec, "cls": None}, sort_keys=True))
    g_candidate = cls_gradient_norm(spec, cls_spec)
    scale = g_baseline / g_candidate if g_candidate > 0 else 1.0
    scales = {"baseline_gradient_norm": g_baseline, "gradient_norm": g_candidate, "loss_scale": scale}
    if cls_spec.fn != baseline.fn:
        cls_spec = dataclasses.replace(cls_spec, fn=scaled_loss(cls_spec.fn, scale))
    try:
        result = proxy._proxy_run(spec, cls_spec, reg_spec)
    except TrainingDiverged as error:
        return {"status": "failed", "reason": f"diverged at step {error.step}", **scales,
                "seconds": time.perf_counter() - started}
    return {"status": "ok", **result, **scales, "seconds": time.perf_counter() - started}


@functools.lru_cache(maxsize=4)
def baseline_gradient_norm(spec_text: str) -> float:
    """:func:`cls_gradient_norm` of the baseline loss at the start of the proxy spec ``spec_text`` (JSON)."""
    spec = json.loads(spec_text)
    return cls_gradient_norm(spec, proxy.loss_spec(default_losses_entry(spec), "cls", spec["detector"]))


def default_losses_entry(spec: dict) -> dict:
    """The loss entry of the detector's default classification loss (the baseline)."""
    return {"name": get_detector(spec["detector"]).default_cls_loss}


def run_training(training: Training, loss: dict, config: SearchConfig, work_dir: Path) -> dict:
    """Train ``training`` (resuming a final training's run folder); the JSON-ready record with CPU and wall time."""
    spec = training_spec(training, loss, config, work_dir)
    resumed_from = _checkpoint_step(spec.get("out_dir"))
    load_before = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    result = normalized_proxy(spec) if training.normalized else proxy.train_and_evaluate(spec)
    metrics = result.get("metrics") or {}
    return {
        "id": training.id,
        "training": dataclasses.asdict(training),
        "loss": loss,
        "status": result["status"],
        "reason": result.get("reason"),
        "ap": metrics.get("AP") if result["status"] == "ok" else None,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "wall_seconds": round(time.perf_counter() - wall, 2),
        "resumed_from_step": resumed_from,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        **{k: result[k] for k in ("loss_scale", "gradient_norm", "baseline_gradient_norm", "train_seconds",
                                  "compile_seconds", "images_per_second") if k in result},
    }


def _checkpoint_step(out_dir: str | None) -> int:
    path = Path(out_dir) / METADATA_FILE if out_dir else None
    if path is None or not path.is_file():
        return 0
    return int(json.loads(path.read_text()).get("step", 0))


class TrainingStore:
    """One JSON result file per finished training under ``work_dir/trainings``."""

    def __init__(self, work_dir: Path):
        self.folder = Path(work_dir) / "trainings"

    def path(self, training: Training) -> Path:
        """The result file of ``training``."""
        return self.folder / f"{training.id}.json"

    def get(self, training: Training) -> dict | None:
        """The stored record of ``training``, or None when it has not finished."""
        path = self.path(training)
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, record: dict) -> None:
        """Store a finished training's record (atomically)."""
        write_atomically(self.folder / f"{record['id']}.json", json.dumps(record, indent=1, sort_keys=True).encode())
