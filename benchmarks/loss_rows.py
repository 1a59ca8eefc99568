"""Rows of the loss tables (``benchmarks.loss_combination``, ``benchmarks.transfer``) and how they are trained.

A :class:`Row` is one loss pair on one detector and dataset. Each (row, seed) is one task of
``autoloss.proxy.train_and_evaluate`` with a run directory, that is one
``detection.experiment.run_experiment`` (what ``autoloss train`` runs): trained from scratch on the
data's train split with the preset's schedule, evaluated on final_val. Tasks with the same settings
(a row listed twice, e.g. GIoU as a variant and in the baseline) are trained once.

Where the tasks run: in this process by default; in N local worker processes with ``workers=N``;
as Dask tasks with ``dask_scheduler="tcp://HOST:PORT"`` (``autoloss.executors``: one task per
(row, seed), each retried once if its worker dies). The workers need this package installed; the
shapes datasets are generated on first use into each worker's cache.

Each run directory is named by a hash of its task under the work folder, so with a kept work folder
(``--work-dir``) running a table again, or the other table with the same preset, evaluates a finished
run again instead of retraining it (the table says "reused"), and an interrupted run resumes from its
last checkpoint. With a records folder (``--records``), each finished (row, seed) also leaves a small JSON
file there under the same name, its task and its result: a later run, on any machine, reads it instead of
training, so a study of many hours can be committed and continued (the run folders, with their
checkpoints, stay out of the repository).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

from autoloss.executors import TaskRunner, TrainingTask
from autoloss.proxy import train_and_evaluate
from autoloss.search_config import SearchConfig
from detection.checkpoints import write_atomically
from detection.detectors import DETECTORS
from detection.experiment_spec import DEFAULT_BATCH_SIZE

DETECTOR_ORDER = ("fcos", "faster-rcnn")
# The authors' searched losses of each detector (zoo names): (cls, reg, the pair's name in the paper)
PUBLISHED = {"fcos": ("cse_b_cls", "cse_b_reg", "CSE-Autoloss-B"),
             "faster-rcnn": ("cse_a_cls", "cse_a_reg", "CSE-Autoloss-A")}
# The second dataset of the transfer table: another seed family, fewer classes (6 of 8), no tiny
# and no near-full-image objects (sqrt(area) 12-60% of the side instead of 6-86%), at most 6 per image.
VARIANT_OPTIONS = "seed=1,classes=6,sizes=0.12-0.6,max_objects=6"


@dataclasses.dataclass(frozen=True)
class Loss:
    """One branch's loss in a row: a baseline or zoo name, or a found formula (the authors' prefix)."""

    label: str
    name: str | None = None
    prefix: str | None = None
    form: str | None = None

    @classmethod
    def named(cls, name: str) -> Loss:
        """The baseline or zoo loss ``name``."""
        return cls(label=name, name=name)

    def task_entry(self) -> dict:
        """The loss as ``autoloss.proxy`` task specs write it."""
        return {"name": self.name} if self.name else {"prefix": self.prefix, "form": self.form}


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: a loss pair on a detector and a dataset (a key of ``Schedule.datasets``)."""

    detector: str
    role: str
    cls: Loss
    reg: Loss
    data: str = "shapes"
    reference: bool = False  # the row the others are compared with (same detector and data)
    not_applicable: str | None = None  # why this pair cannot be trained; shown instead of numbers


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How every row of a preset is trained: steps per detector, batch, seeds, input size, datasets."""

    steps: dict[str, int]
    batch_size: int
    seeds: int
    image_size: int
    detector_preset: str
    datasets: dict[str, str]  # label -> dataset spec; "shapes" is the main one, "variant" the second
    # the rate of a search's proxy and final trainings for both detectors; None: each detector's default rate
    learning_rate: float | None = SearchConfig.learning_rate
    optimizer: str = SearchConfig.optimizer
    caveat: str = ""  # what the preset's numbers can and cannot say, written under its table

    def rate(self, detector: str) -> float:
        """The peak learning rate of ``detector``'s trainings."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DETECTORS[detector].default_optimizer.learning_rate

    def describe(self) -> str:
        """One line with the schedule's settings."""
        steps = ", ".join(f"{name} {self.steps[name]}" for name in DETECTOR_ORDER)
        rate = (f"{self.optimizer} {self.learning_rate:g}" if self.learning_rate is not None else
                f"{self.optimizer} at each detector's default rate ("
                + ", ".join(f"{name} {self.rate(name):g}" for name in DETECTOR_ORDER) + ")")
        return (f"steps {steps}; batch {self.batch_size}; {self.seeds} seed(s); {self.image_size} px input; "
                f"{self.detector_preset} detectors; {rate}; trained on the train split, AP on final_val")


def _shapes(options: str, extra: str = "") -> str:
    joined = ",".join(part for part in (options, extra) if part)
    return f"shapes:{joined}" if joined else "shapes"


PRESETS: dict[str, Schedule] = {
    # a few steps on 8 generated 64 px images: checks that every row runs, says nothing about losses
    "smoke": Schedule({"fcos": 2, "faster-rcnn": 2}, 2, 1, 64, "tiny",
                      {"shapes": _shapes("image_size=64,train=8,search_val=2,final_val=4"),
                       "variant": _shapes(VARIANT_OPTIONS, "image_size=64,train=8,search_val=2,final_val=4")},
                      caveat="The smoke preset only checks that every row runs; its numbers mean nothing."),
    # 2 CPU cores: the Faster R-CNN step costs about 3.5x the FCOS one, hence fewer steps
    "demo": Schedule({"fcos": 600, "faster-rcnn": 300}, 16, 2, 128, "tiny",
                     {"shapes": "shapes", "variant": _shapes(VARIANT_OPTIONS)},
                     caveat="The demo preset is a short schedule for two CPU cores: the detectors are far from "
                     "trained and two seeds give only a rough spread, so differences between rows are mostly "
                     "noise; compare losses with the small or paper preset."),
    # `autoloss train`'s default schedule of the tiny detectors (FCOS 6000 steps at 5e-3, Faster R-CNN 3000
    # at 2e-3): trained detectors (about 50 AP) in 8-12 minutes a run on two CPU cores
    "default": Schedule({name: d.default_steps for name, d in DETECTORS.items()}, DEFAULT_BATCH_SIZE, 3, 128, "tiny",
                        {"shapes": "shapes", "variant": _shapes(VARIANT_OPTIONS)}, learning_rate=None,
                        caveat="The default preset trains every row with `autoloss train`'s default schedule of "
                        "the tiny detectors; with three seeds, a difference is real only beyond the seeds' "
                        "spread (focal + GIoU varies by about 1 AP between seeds)."),
    "small": Schedule({"fcos": 2000, "faster-rcnn": 1000}, 16, 3, 128, "tiny",
                      {"shapes": "shapes", "variant": _shapes(VARIANT_OPTIONS)}),
    # the default schedule of `autoloss train` with ResNet-50 detectors on 512 px images: GPUs
    "paper": Schedule({name: d.default_steps for name, d in DETECTORS.items()}, DEFAULT_BATCH_SIZE, 3, 512, "resnet50",
                      {"shapes": _shapes("image_size=512"), "variant": _shapes(VARIANT_OPTIONS, "image_size=512")}),
}


def task_spec(row: Row, schedule: Schedule, seed: int, work_dir: Path) -> dict:
    """The ``autoloss.proxy.train_and_evaluate`` task of ``row`` at ``seed``, its run directory under ``work_dir``."""
    spec = {
        "detector": row.detector, "detector_preset": schedule.detector_preset,
        "data": schedule.datasets[row.data], "data_root": None, "eval_data": None, "eval_split": "final_val",
        "image_size": schedule.image_size, "steps": schedule.steps[row.detector],
        "batch_size": schedule.batch_size, "optimizer": schedule.optimizer,
        "learning_rate": schedule.rate(row.detector), "seed": seed,
        "cls": row.cls.task_entry(), "reg": row.reg.task_entry(), "time_limit": None,
    }
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return {**spec, "out_dir": str(work_dir / f"{row.detector}-{digest}")}


RECORD_FIELDS = ("status", "reason", "metrics", "final_loss", "train_seconds", "compile_seconds",
                 "images_per_second", "seconds")


def _record_of(records: Path, spec: dict) -> tuple[Path, dict]:
    """(the record file of the task ``spec``, named like its run folder; the task as recorded, without it)."""
    return records / f"{Path(spec['out_dir']).name}.json", {k: v for k, v in spec.items() if k != "out_dir"}


def read_record(records: Path, spec: dict) -> dict | None:
    """The recorded result of the task ``spec`` in the records folder, or None when it has none."""
    path, task = _record_of(records, spec)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("task") != task:
        raise ValueError(f"{path} records another task than its name says (a changed task format?); "
                         "move it away to train this task again")
    return {**record["result"], "recorded": str(path)}


def write_record(records: Path, spec: dict, result: dict) -> None:
    """Keep the task ``spec``'s finished result (its plain fields) in the records folder."""
    path, task = _record_of(records, spec)
    kept = {k: result[k] for k in RECORD_FIELDS if k in result}
    if "metrics" in kept:
        kept["metrics"] = {k: v if math.isfinite(v) else None  # NaN: no object of that size (strict JSON has none)
                           for k, v in kept["metrics"].items() if isinstance(v, int | float)}
    write_atomically(path, json.dumps({"task": task, "result": kept}, indent=1, sort_keys=True).encode())


def run_rows(
    rows: list[Row],
    schedule: Schedule,
    *,
    work_dir: Path,
    records: Path | None = None,
    train: bool = True,
    workers: int = 0,
    dask_scheduler: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[Row, list[dict]]:
    """Train every applicable row at every seed (reading finished ones from ``records``); each row's results.

    With ``train=False`` nothing is trained: a task without a record gets the result ``{"status": "missing"}``.
    """
    tasks: dict[str, dict] = {}
    names: dict[str, str] = {}
    keys_of: dict[Row, list[str]] = {}
    for row in rows:
        if row.not_applicable is None:
            specs = [task_spec(row, schedule, seed, work_dir) for seed in range(schedule.seeds)]
            keys_of[row] = [spec["out_dir"] for spec in specs]
            for spec in specs:
                tasks[spec["out_dir"]] = spec
                names[spec["out_dir"]] = f"{row.detector} on {row.data}: {row.cls.label} + {row.reg.label}"
    results: dict[str, dict] = {}

    def record(key: str, result: dict) -> None:
        results[key] = result
        if records is not None and "recorded" not in result:
            write_record(records, tasks[key], result)
        outcome = (f"AP {100 * result['metrics']['AP']:.1f}, {result['seconds']:.0f} s"
                   if result["status"] == "ok" else f"failed: {result['reason']}")
        where = " (recorded)" if "recorded" in result else ""
        log(f"[{len(results)}/{len(tasks)}] {names[key]}, seed {tasks[key]['seed']}: {outcome}{where}")

    todo = {}
    for key, spec in tasks.items():
        found = read_record(records, spec) if records is not None else None
        if found is not None:
            record(key, found)
        elif train:
            todo[key] = spec
        else:
            results[key] = {"status": "missing", "reason": "not trained yet"}
    if workers == 0 and dask_scheduler is None:
        for key, spec in todo.items():
            record(key, train_and_evaluate(spec))
    elif todo:
        runner = TaskRunner.dask(dask_scheduler) if dask_scheduler else TaskRunner.local(workers)
        try:
            runner.run(train_and_evaluate, {key: TrainingTask(spec, None, names[key]) for key, spec in todo.items()},
                       record)
        finally:
            runner.close()
    return {row: [results[key] for key in keys] for row, keys in keys_of.items()}
