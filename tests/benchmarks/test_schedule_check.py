"""The found-vs-baseline check at a longer schedule: seeds as the final stage chooses them, resumable, reusing
recorded trainings."""

from __future__ import annotations

import dataclasses

from autoloss.search_config import SearchConfig
from benchmarks.fidelity_trainings import Training, TrainingStore
from benchmarks.schedule_check import FOUND, candidate_name, check_found

FOUND_LOSS = {"prefix": "Mul(X,Y)", "form": "sigmoid"}


def fake_trainer(ap_by_candidate_seed):
    """A stand-in for ``run_training`` with AP from a table {(candidate, seed): AP}; records its calls."""
    calls = []

    def train(training, loss, config, work_dir):
        calls.append(training)
        ap = ap_by_candidate_seed[(training.candidate, training.seed)]
        return {"id": training.id, "training": dataclasses.asdict(training), "loss": loss, "status": "ok",
                "reason": None, "ap": ap, "metrics": {"AP": ap}, "wall_seconds": 1.0}

    train.calls = calls
    return train


def test_a_clear_difference_stops_at_the_final_seeds_and_says_so(tmp_path):
    config = SearchConfig.preset("demo", final_seeds=2, final_max_seeds=3)
    found = candidate_name(FOUND_LOSS)
    trainer = fake_trainer({("focal", 0): 0.40, ("focal", 1): 0.41, (found, 0): 0.30, (found, 1): 0.31})
    table = check_found(config, FOUND_LOSS, "x*y", 3000, tmp_path, trainer=trainer, progress=lambda _: None)
    assert sorted((t.candidate, t.seed, t.steps, t.learning_rate) for t in trainer.calls) == sorted(
        (c, s, 3000, 0.005) for c in ("focal", found) for s in (0, 1))
    comparison = table[FOUND]["comparison"]
    assert comparison["verdict"] == "worse" and abs(comparison["delta"] + 0.10) < 1e-9
    assert table[FOUND]["losses"] == {"cls": "x*y", "reg": "giou"}


def test_a_difference_within_the_spread_gets_a_third_seed_of_both(tmp_path):
    config = SearchConfig.preset("demo", final_seeds=2, final_max_seeds=3)
    found = candidate_name(FOUND_LOSS)
    aps = {("focal", 0): 0.40, ("focal", 1): 0.44, (found, 0): 0.41, (found, 1): 0.43,
           ("focal", 2): 0.42, (found, 2): 0.42}
    trainer = fake_trainer(aps)
    table = check_found(config, FOUND_LOSS, "x*y", 3000, tmp_path, trainer=trainer, progress=lambda _: None)
    assert len(trainer.calls) == 6 and table[FOUND]["comparison"]["seeds"] == [0, 1, 2]


def test_recorded_trainings_are_read_not_trained_again(tmp_path):
    config = SearchConfig.preset("demo", final_seeds=2, final_max_seeds=2)
    found = candidate_name(FOUND_LOSS)
    aps = {("focal", 0): 0.40, ("focal", 1): 0.41, (found, 0): 0.30, (found, 1): 0.31}
    reuse = tmp_path / "study"
    for seed in (0, 1):  # the baseline, recorded by another study with the same preset and seed
        record = fake_trainer(aps)(Training("focal", "final", 3000, 0.005, seed), {"name": "focal"}, config, reuse)
        TrainingStore(reuse).put(record)
    first = fake_trainer(aps)
    check_found(config, FOUND_LOSS, "x*y", 3000, tmp_path / "check", reuse=reuse, trainer=first,
                progress=lambda _: None)
    assert sorted(t.candidate for t in first.calls) == [found, found]
    again = fake_trainer(aps)  # a rerun reads its own records too
    table = check_found(config, FOUND_LOSS, "x*y", 3000, tmp_path / "check", reuse=reuse, trainer=again,
                        progress=lambda _: None)
    assert again.calls == [] and table[FOUND]["comparison"]["verdict"] == "worse"
