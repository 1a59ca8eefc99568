"""The proxy task and the final training: one detector training with given losses, then COCO AP.

:func:`train_and_evaluate` is a top-level function of one plain dict (picklable), so it runs in a
worker process of any executor, local or Dask (``autoloss.executors``). A task spec::

    {"detector": "fcos", "detector_preset": "tiny", "backbone_weights": None, "precision": "float32",
     "data": "shapes", "data_root": None,
     "eval_data": None, "eval_split": "search_val", "image_size": 128, "image_max_size": None, "data_workers": 0,
     "steps": 150, "batch_size": 16, "optimizer": "adamw", "learning_rate": 0.002, "seed": 0,
     "cls": {"name": "focal"} or {"prefix": "Neg(Log(Sig(X)))", "form": "sigmoid"},
     "reg": {"name": "giou"} or {"prefix": "...", "form": "reg"},
     "out_dir": None, "return_model": False,
     "init": None or {"warm_start": {"warm_start_steps": 1000, ...}, "fresh_branch": "cls",
                      "params": WARM_START_PARAMS (optional)}}

With ``init`` the proxy training starts from the search's warm start — the model optimization
simulation's: its ``params`` (a pytree of arrays) where they travel with the task, for a worker
without the search's files (Dask), else ``simulate.simulation.warm_start_of`` of the
``SimulationConfig`` fields in ``init["warm_start"]``, read from the disk cache (or trained once by
whichever process needs it first) — with the searched branch's output layer re-initialized. So a
short proxy measures how well the candidate trains that branch on top of features that already
detect, rather than the noise of the first steps from scratch. The final evaluation always trains
from scratch.

Searched classification losses of the sigmoid form are trained with the authors' alpha balancing
(``autoloss.loss_specs``). Without ``out_dir`` (the proxy task) the model lives in memory; the datasets'
indexes (annotations, not pixels) are loaded once per worker process, training images stream
(``detection.pipeline``) and a small evaluation split is decoded once and kept; with ``out_dir`` (the final
evaluation)
``detection.experiment.run_experiment`` saves a model that ``autoloss evaluate`` can read and that
a restarted task resumes. With ``return_model`` (a worker without the search's filesystem, e.g. on
Dask) it trains into a folder of the worker and the result carries the model's files (``files``:
name -> bytes) for the search to write into ``out_dir``. The result is a plain dict:
``{"status": "ok", "metrics": {...}, "seconds": ..., ...}`` or ``{"status": "failed", "reason": ...}``
when training diverged or a loss could not be built — never an exception for a bad candidate.

Time limits are the executor's: it kills the worker process of a training past its limit. Progress
goes to the executor through ``autoloss.task_process.report_progress`` (``autoloss.training_progress``
says what the fields mean): a proxy training reports its step every 10 steps; a final training, run
by ``run_experiment``, which takes no step callback, reports the step of each checkpoint it writes.
"""


from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import jax

from autoloss.loss_specs import LossSpec, loss_spec_of, losses_of, resolve_cls_loss, resolve_reg_loss
from autoloss.task_process import report_progress
from detection.checkpoints import METADATA_FILE
from detection.detectors import get_detector
from detection.experiment import load_data_pair, run_experiment
from detection.experiment_spec import DataSpec, ExperimentSpec, Losses, ModelSpec, Schedule
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

CHECKPOINT_POLL_SECONDS = 2.0


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


def experiment_spec(spec: dict, losses: Losses | None = None) -> ExperimentSpec:
    """The typed experiment of a task spec (the proxy's or the final training's) with ``losses``."""
    return ExperimentSpec(
        data=DataSpec(train=spec["data"], eval=spec.get("eval_data"), eval_split=spec["eval_split"],
                      root=spec.get("data_root"), workers=spec.get("data_workers", 0)),
        geometry=Geometry(short_side=spec["image_size"], max_size=spec.get("image_max_size")),
        model=ModelSpec(detector=spec["detector"], preset=spec["detector_preset"],
                        backbone_weights=spec.get("backbone_weights"), precision=spec.get("precision", "float32")),
        schedule=Schedule(steps=spec["steps"], batch_size=spec["batch_size"], optimizer=optimizer_config(spec),
                          seed=spec["seed"]),
        losses=losses or Losses(),
    )


def train_and_evaluate(spec: dict) -> dict:
    """Train with the spec's losses on the train split, evaluate on its eval split; a plain result dict."""
    started = time.perf_counter()
    try:
        cls_spec = loss_spec(spec["cls"], "cls", spec["detector"])
        reg_spec = loss_spec(spec["reg"], "reg", spec["detector"])
    except (ParseError, InvalidCandidate, ValueError) as error:
        return {"status": "failed", "reason": f"the loss cannot be built: {error}", "seconds": 0.0}
    try:
        result = _final_run(spec, cls_spec, reg_spec) if spec.get("out_dir") else _proxy_run(spec, cls_spec, reg_spec)
    except TrainingDiverged as error:
        return {"status": "failed", "reason": f"diverged at step {error.step}", "seconds": _since(started)}
    return {"status": "ok", **result, "seconds": _since(started)}


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _step_reporter(spec: dict):
    """The training callback that reports the step, images/s and seconds per step (from the second log point on)."""
    last: list[tuple[int, float]] = []

    def report(step: int, metrics: dict) -> None:
        now = time.perf_counter()
        rates = {}
        if last:
            seconds_per_step = (now - last[-1][1]) / max(1, step - last[-1][0])
            rates = {"seconds_per_step": seconds_per_step, "images_per_second": spec["batch_size"] / seconds_per_step}
        last[:] = [(step, now)]
        report_progress(phase="train", step=step, steps=spec["steps"], loss=metrics.get("loss"), **rates)

    return report


def _proxy_run(spec: dict, cls_spec: LossSpec, reg_spec: LossSpec) -> dict:
    report_progress(phase="data")
    experiment = experiment_spec(spec, losses_of(cls_spec, reg_spec))
    data, schedule, losses = experiment.data, experiment.schedule, experiment.losses
    train_data, eval_data = _data_pair(data.train, data.eval, data.eval_split, data.root)
    config = experiment.model.config(train_data.num_classes, experiment.geometry.canvases[0])
    report_progress(phase="train", step=0, steps=schedule.steps)
    started = time.perf_counter()
    with training_stream(train_data, experiment.geometry, batch_size=schedule.batch_size, seed=schedule.seed,
                         steps=schedule.steps, workers=data.workers) as batches:  # closed also when training raises
        trained = train(
            config,
            batches,
            steps=schedule.steps,
            params=initial_params(spec, config),
            cls_loss=losses.cls,
            reg_loss=losses.reg,
            alpha_balance=losses.alpha_balance,
            optimizer=schedule.optimizer,
            seed=schedule.seed,
            callback=_step_reporter(spec),
            progress=False,
        )
    train_seconds = time.perf_counter() - started
    report_progress(phase="evaluate")
    metrics = evaluate_model(trained.params, config, eval_data, workers=data.workers)
    return {"metrics": metrics, "final_loss": trained.history[-1]["loss"] if trained.history else None,
            "train_seconds": round(train_seconds, 3), "compile_seconds": round(trained.compile_seconds, 3),
            "images_per_second": round(trained.images_per_second, 1)}


def initial_params(spec: dict, config):
    """The parameters a proxy training starts from: None (scratch), or the warm start with the branch layer fresh."""
    init = spec.get("init")
    if not init:
        return experiment_spec(spec).model.initial_params(config, spec["seed"])
    params = init["params"] if "params" in init else _warm_start(json.dumps(init["warm_start"], sort_keys=True))
    if init.get("fresh_branch"):
        fresh = get_detector(spec["detector"]).init_params(config, jax.random.key(spec["seed"] + 1))  # as MOS does
        params = with_fresh_output_layer(spec["detector"], init["fresh_branch"], params, fresh)
    return params


@functools.lru_cache(maxsize=2)
def _warm_start(settings: str):
    return warm_start_of(SimulationConfig(**json.loads(settings)), progress=False)[0]


def _final_run(spec: dict, cls_spec: LossSpec, reg_spec: LossSpec) -> dict:
    if not spec.get("return_model"):
        with _checkpoint_reports(spec["out_dir"], spec["steps"]):
            return _experiment(spec, cls_spec, reg_spec, spec["out_dir"])
    # A folder of this worker named after the task, so a retry here resumes from its checkpoint.
    digest = hashlib.sha256(json.dumps({k: v for k, v in spec.items() if k != "init"}, sort_keys=True,
                                       default=str).encode()).hexdigest()[:16]
    local = Path(tempfile.gettempdir()) / "autoloss-final" / digest
    with _checkpoint_reports(local, spec["steps"]):
        result = _experiment(spec, cls_spec, reg_spec, local)
    files = {path.name: path.read_bytes() for path in sorted(local.iterdir()) if path.is_file()
             and not path.name.startswith(".")}
    shutil.rmtree(local, ignore_errors=True)
    return {**result, "out_dir": spec["out_dir"], "files": files}


@contextlib.contextmanager
def _checkpoint_reports(out_dir, steps: int):
    """Report the step of every checkpoint written into ``out_dir`` while the block runs."""
    report_progress(phase="final", steps=steps)
    done = threading.Event()

    def watch():
        seen, last, finished = 0, time.perf_counter(), False
        while not finished:  # one more look once the block ended: its last checkpoint is always reported
            finished = done.wait(CHECKPOINT_POLL_SECONDS)
            with contextlib.suppress(OSError, ValueError):
                step = int(json.loads((Path(out_dir) / METADATA_FILE).read_text())["step"])
                if step > seen:
                    now = time.perf_counter()
                    report_progress(phase="train", step=step, steps=steps,
                                    seconds_per_step=(now - last) / (step - seen) if seen else None)
                    seen, last = step, now

    watcher = threading.Thread(target=watch, name="autoloss-checkpoint-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _experiment(spec: dict, cls_spec: LossSpec, reg_spec: LossSpec, out_dir) -> dict:
    result = run_experiment(experiment_spec(spec, losses_of(cls_spec, reg_spec)), out_dir, progress=False)
    return {"metrics": result.metrics, "final_loss": result.final_loss,
            "train_seconds": round(result.train_seconds, 3), "compile_seconds": round(result.compile_seconds, 3),
            "images_per_second": round(result.images_per_second, 1), "out_dir": result.out_dir,
            "datasets": result.datasets}
