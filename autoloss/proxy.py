"""The proxy task and the final training: one detector training with given losses, then COCO AP.

:func:`train_and_evaluate` is a top-level function of one plain dict (picklable, JSON-ready), so
it runs in a worker process of any ``concurrent.futures`` executor, local or Dask. A task spec::

    {"detector": "fcos", "detector_preset": "tiny", "data": "shapes", "data_root": None,
     "eval_data": None, "eval_split": "search_val", "image_size": 128, "image_max_size": None, "data_workers": 0,
     "steps": 150, "batch_size": 16, "optimizer": "adamw", "learning_rate": 0.002, "seed": 0,
     "cls": {"name": "focal"} or {"prefix": "Neg(Log(Sig(X)))", "form": "sigmoid"},
     "reg": {"name": "giou"} or {"prefix": "...", "form": "reg"},
     "time_limit": 600.0, "out_dir": None,
     "init": None or {"warm_start": {"warm_start_steps": 1000, ...}, "fresh_branch": "cls"}}

With ``init`` the proxy training starts from the search's warm start — the model optimization
simulation's, ``simulate.simulation.warm_start_of`` of the ``SimulationConfig`` fields in
``init["warm_start"]``, read from the disk cache or trained once by whichever process needs it
first — with the searched branch's output layer re-initialized. So a short proxy measures how well
the candidate trains that branch on top of features that already detect, rather than the noise of
the first steps from scratch. The final evaluation always trains from scratch.

Searched classification losses of the sigmoid form are trained with the authors' alpha balancing
(``autoloss.loss_specs``). Without ``out_dir`` (the proxy task) the model lives in memory; the datasets'
indexes (annotations, not pixels) are loaded once per worker process, training images stream
(``detection.pipeline``) and a small evaluation split is decoded once and kept; with ``out_dir`` (the final
evaluation)
``detection.experiment.run_experiment`` saves a model that ``autoloss evaluate`` can read and that
a restarted task resumes. The result is a plain dict: ``{"status": "ok", "metrics": {...},
"seconds": ..., ...}`` or ``{"status": "failed", "reason": ...}`` when training diverged, the time
limit passed or a loss could not be built — never an exception for a bad candidate.

The time limit stops a proxy training at its next log point (every 10 steps); ``run_experiment``
takes no callback, so a final training past its limit is only abandoned by the executor
(``autoloss.executors.call_with_time_limit``) and finishes in the background.
"""

from __future__ import annotations

import functools
import json
import math
import time

import jax

from autoloss.loss_specs import LossSpec, loss_spec_of, resolve_cls_loss, resolve_reg_loss
from detection.detectors import get_detector
from detection.experiment import load_data_pair, make_config, run_experiment
from detection.geometry import Geometry
from detection.inference import evaluate_model
from detection.optim import OptimizerConfig
from detection.pipeline import training_stream
from detection.training import TrainingDiverged, train
from simulate.heads import with_fresh_output_layer
from simulate.simulation import SimulationConfig, warm_start_of
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.parser import ParseError


class ProxyTimeout(RuntimeError):
    """Raised inside training when a task passes its time limit."""


def warmup_steps(steps: int) -> int:
    """Linear warmup length of a schedule of ``steps``: a fifth of it, at most the default 200."""
    return min(200, steps // 5)


def optimizer_config(spec: dict) -> OptimizerConfig:
    """The optimizer of a task spec."""
    return OptimizerConfig(name=spec["optimizer"], learning_rate=spec["learning_rate"],
                           warmup_steps=warmup_steps(spec["steps"]))


def loss_spec(entry: dict, role: str, detector: str) -> LossSpec:
    """The loss of a spec entry: ``{"name": ...}`` (a baseline or zoo name) or ``{"prefix": ..., "form": ...}``."""
    if "prefix" in entry:
        return loss_spec_of(Candidate.parse(entry["prefix"], entry["form"]), {"name": None, "source": "search"})
    if role == "cls":
        return resolve_cls_loss(entry["name"], get_detector(detector).cls_form)
    return resolve_reg_loss(entry["name"])


@functools.lru_cache(maxsize=4)
def _data_pair(data: str, eval_data: str | None, eval_split: str, root: str | None):
    """The (train, eval) indexes of a task, loaded once per worker process (annotations only)."""
    return load_data_pair(data, eval_data, "train", eval_split, root=root, progress=False)[:2]


def geometry(spec: dict) -> Geometry:
    """The image geometry of a task spec (shorter side, longer side at most)."""
    return Geometry(short_side=spec["image_size"], max_size=spec.get("image_max_size"))


def train_and_evaluate(spec: dict) -> dict:
    """Train with the spec's losses on the train split, evaluate on its eval split; a plain result dict."""
    started = time.perf_counter()
    try:
        cls_spec = loss_spec(spec["cls"], "cls", spec["detector"])
        reg_spec = loss_spec(spec["reg"], "reg", spec["detector"])
    except (ParseError, InvalidCandidate, ValueError) as error:
        return {"status": "failed", "reason": f"the loss cannot be built: {error}", "seconds": 0.0}
    deadline = started + spec["time_limit"] if spec.get("time_limit") else math.inf

    def check_time(step, metrics):
        if time.perf_counter() > deadline:
            raise ProxyTimeout(f"stopped at step {step}: past the time limit of {spec['time_limit']:g} s")

    try:
        if spec.get("out_dir"):
            result = _final_run(spec, cls_spec, reg_spec)
        else:
            result = _proxy_run(spec, cls_spec, reg_spec, check_time)
    except TrainingDiverged as error:
        return {"status": "failed", "reason": f"diverged at step {error.step}", "seconds": _since(started)}
    except ProxyTimeout as error:
        return {"status": "failed", "reason": str(error), "seconds": _since(started)}
    return {"status": "ok", **result, "seconds": _since(started)}


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _proxy_run(spec: dict, cls_spec: LossSpec, reg_spec: LossSpec, callback) -> dict:
    train_data, eval_data = _data_pair(spec["data"], spec.get("eval_data"), spec["eval_split"], spec.get("data_root"))
    shape, workers = geometry(spec), spec.get("data_workers", 0)
    config = make_config(train_data.num_classes, shape.canvases[0], spec["detector_preset"], spec["detector"])
    started = time.perf_counter()
    with training_stream(train_data, shape, batch_size=spec["batch_size"], seed=spec["seed"],
                         steps=spec["steps"], workers=workers) as batches:  # closed also when training raises
        trained = train(
            config,
            batches,
            steps=spec["steps"],
            params=initial_params(spec, config),
            cls_loss=cls_spec.fn,
            reg_loss=reg_spec.fn,
            alpha_balance=cls_spec.alpha_balance,
            optimizer=optimizer_config(spec),
            seed=spec["seed"],
            callback=callback,
            progress=False,
        )
    train_seconds = time.perf_counter() - started
    metrics = evaluate_model(trained.params, config, eval_data, workers=workers)
    return {"metrics": metrics, "final_loss": trained.history[-1]["loss"] if trained.history else None,
            "train_seconds": round(train_seconds, 3), "compile_seconds": round(trained.compile_seconds, 3),
            "images_per_second": round(trained.images_per_second, 1)}


def initial_params(spec: dict, config):
    """The parameters a proxy training starts from: None (scratch), or the warm start with the branch layer fresh."""
    init = spec.get("init")
    if not init:
        return None
    params = _warm_start(json.dumps(init["warm_start"], sort_keys=True))
    if init.get("fresh_branch"):
        fresh = get_detector(spec["detector"]).init_params(config, jax.random.key(spec["seed"] + 1))  # as MOS does
        params = with_fresh_output_layer(spec["detector"], init["fresh_branch"], params, fresh)
    return params


@functools.lru_cache(maxsize=2)
def _warm_start(settings: str):
    return warm_start_of(SimulationConfig(**json.loads(settings)), progress=False)[0]


def _final_run(spec: dict, cls_spec: LossSpec, reg_spec: LossSpec) -> dict:
    result = run_experiment(
        detector=spec["detector"],
        data=spec["data"],
        eval_data=spec.get("eval_data"),
        image_size=spec["image_size"],
        max_size=spec.get("image_max_size"),
        workers=spec.get("data_workers", 0),
        preset=spec["detector_preset"],
        cls_loss=cls_spec.fn,
        reg_loss=reg_spec.fn,
        alpha_balance=cls_spec.alpha_balance,
        loss_descriptions={"cls": cls_spec.description, "reg": reg_spec.description},
        steps=spec["steps"],
        batch_size=spec["batch_size"],
        optimizer=optimizer_config(spec),
        seed=spec["seed"],
        out_dir=spec["out_dir"],
        eval_split=spec["eval_split"],
        data_root=spec.get("data_root"),
        progress=False,
    )
    return {"metrics": result.metrics, "final_loss": result.final_loss,
            "train_seconds": round(result.train_seconds, 3), "compile_seconds": round(result.compile_seconds, 3),
            "images_per_second": round(result.images_per_second, 1), "out_dir": result.out_dir,
            "datasets": result.datasets}
