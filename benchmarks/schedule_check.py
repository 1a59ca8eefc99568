"""A search's found loss against the baseline at a longer final schedule: does its verdict hold?

The demo search's final stage trains a short schedule (1000 steps) so that the whole search fits about ten
minutes; a loss that wins there can lose at the detector's default schedule (RESULTS.md, "Proxy fidelity").
:func:`check_found` trains the found row and the baseline from scratch at ``steps`` with the detector's default
learning rate and decides with the final stage's own rule (``autoloss.final_comparison``): ``final_seeds``
seeds of each, one more of both while the difference is within the seed spread, up to ``final_max_seeds``.

The trainings are the proxy-fidelity study's (``benchmarks.fidelity_trainings``): one JSON record per finished
training and a run folder per training, so an interrupted check resumes where it stopped. A training already
recorded under ``reuse`` (the fidelity study's records of the same preset and seed hold the baseline at 3000
steps, seeds 0-2) is read instead of trained again: a final training depends on the data, detector, batch,
steps, rate, seed and loss only, all of which its id and record name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from autoloss.final_comparison import BASELINE, final_table, round_plan
from autoloss.search_config import SearchConfig
from benchmarks.fidelity_trainings import Training, TrainingStore, run_training
from detection.detectors import get_detector

FOUND = "found"


def candidate_name(loss: dict) -> str:
    """A file-name-safe name of a classification loss entry: its zoo name, or ``found-`` and a hash of its prefix."""
    if "name" in loss:
        return loss["name"]
    return "found-" + hashlib.sha1(loss["prefix"].encode()).hexdigest()[:10]


def check_found(config: SearchConfig, found: dict, label: str, steps: int, work_dir: Path, reuse: Path | None = None,
                trainer: Callable = run_training, progress: Callable[[str], None] = print) -> dict[str, dict]:
    """The final table (``final_table``) of ``found`` (a classification loss entry, shown as ``label``) and the
    detector's default losses, trained at ``steps`` with the default rate, seeds chosen as the final stage would."""
    detector = get_detector(config.detector)
    rate = detector.default_optimizer.learning_rate
    rows = {BASELINE: {"name": detector.default_cls_loss}, FOUND: found}
    shown = {BASELINE: detector.default_cls_loss, FOUND: label}
    store, reused = TrainingStore(work_dir), TrainingStore(reuse) if reuse is not None else None
    trainings: dict[str, dict] = {}
    while True:
        plan = round_plan(trainings, rows, config.seed, config.final_seeds, config.final_max_seeds)
        missing = {key: value for key, value in plan.items() if key not in trainings}
        if not missing:
            return final_table(trainings)
        for key, (row, seed) in missing.items():
            training = Training(candidate_name(rows[row]), "final", steps, rate, seed)
            record = store.get(training) or (reused.get(training) if reused is not None else None)
            if record is None:
                progress(f"{training.describe()} ...")
                record = trainer(training, rows[row], config, Path(work_dir))
                store.put(record)
            if record["status"] == "ok":
                progress(f"    {row} seed {seed}: AP {100 * record['ap']:.1f}")
            trainings[key] = {
                "row": row, "seed": seed, "status": record["status"], "reason": record.get("reason"),
                "losses": {"cls": shown[row], "reg": detector.default_reg_loss},
                "metrics": record.get("metrics") or {}, "seconds": record.get("wall_seconds")}
