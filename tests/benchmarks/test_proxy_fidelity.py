"""``python -m benchmarks.proxy_fidelity``: rank statistics, the study's plan and resumption (fake trainings),
its section, and one tiny real proxy training through the study's own runner."""

import dataclasses
import json
import math

import numpy as np
import pytest
from search_fakes import unit_hash

from benchmarks import fidelity_trainings, proxy_fidelity, rank_agreement
from benchmarks.fidelity_candidates import FOUND_BY_DEMO_SEARCHES
from benchmarks.fidelity_report import CURRENT, render, variants
from benchmarks.fidelity_trainings import Training, run_training, training_spec
from benchmarks.proxy_fidelity import PRESETS, Study
from benchmarks.rank_agreement import (
    agreement,
    best_of,
    common,
    kendall_gain,
    picks,
    same_order,
    seeds_needed,
    successive_halving,
    trend,
)
from symbolic.candidate import Candidate

# --- rank statistics -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def few_resamples(monkeypatch):
    """Bootstrap intervals from 200 resamples (the study's 2000 take about a minute per section)."""
    monkeypatch.setattr(rank_agreement, "RESAMPLES", 200)


def test_agreement_counts_common_finite_candidates_and_bounds_tau():
    trained = {"a": 0.5, "b": 0.4, "c": 0.3, "d": 0.2, "e": 0.1, "f": 0.05}
    same = agreement({**trained, "z": 0.9}, trained)
    assert (same.n, same.spearman, same.kendall) == pytest.approx((6, 1.0, 1.0))
    reversed_ = agreement({n: -v for n, v in trained.items()}, trained)
    assert (reversed_.kendall, reversed_.kendall_low) == pytest.approx((-1.0, -1.0))
    noisy = agreement({"a": 0.5, "b": 0.3, "c": 0.4, "d": 0.1, "e": 0.2, "f": math.nan}, trained)
    assert noisy.n == 5 and noisy.kendall == pytest.approx(0.6)  # 8 of 10 pairs concordant
    assert noisy.kendall_low <= noisy.kendall <= noisy.kendall_high
    assert math.isnan(agreement({"a": 1.0, "b": 2.0}, trained).kendall)
    assert common({"a": 1.0, "b": None}, {"a": 2.0, "b": 1.0}) == ["a"]


def test_kendall_gain_is_the_difference_of_taus_on_common_candidates():
    trained = {n: v for n, v in zip("abcde", (5, 4, 3, 2, 1), strict=True)}
    base = {n: v for n, v in zip("abcde", (1, 2, 3, 4, 5), strict=True)}
    n, gain, low, high = kendall_gain(base, trained, trained)
    assert (n, gain) == (5, pytest.approx(2.0)) and low <= gain + 1e-9


def test_trend_best_of_and_same_order():
    assert trend({"a": 0.1, "b": 0.3}, {"a": 0.3, "b": 0.35, "c": 1.0}) == {"a": pytest.approx(0.5),
                                                                           "b": pytest.approx(0.4)}
    assert best_of({"a": 0.1, "b": 0.5}, {"a": 0.3, "b": 0.2}) == {"a": 0.3, "b": 0.5}
    assert same_order({"a": 1, "b": 2, "c": 3}, {"a": 0.1, "b": 0.2, "c": 0.9})
    assert not same_order({"a": 1, "b": 2, "c": 3}, {"a": 0.1, "b": 0.3, "c": 0.2})
    assert not same_order({"a": 1, "b": 1}, {"a": 0.1, "b": 0.2})
    # with a margin, only the pairs the first separates by more than it must keep their order
    assert same_order({"a": 1, "b": 1.05, "c": 3}, {"a": 0.2, "b": 0.1, "c": 0.9}, margin=0.1)
    assert not same_order({"a": 1, "b": 1.05, "c": 3}, {"a": 0.2, "b": 0.1, "c": 0.15}, margin=0.1)


def test_successive_halving_promotes_the_better_half_and_counts_only_what_ran():
    rungs = [{"a": 0.1, "b": 0.4, "c": 0.3, "d": 0.2}, {"a": 0.0, "b": 0.2, "c": 0.5}, {"b": 0.6, "c": 0.1}]
    costs = [{n: 1.0 for n in "abcd"}, {n: 2.0 for n in "abc"}, {n: 4.0 for n in "bc"}]
    scores, total = successive_halving(rungs, costs)
    assert total == 4 * 1.0 + 2 * 2.0 + 1 * 4.0  # b, c at rung 1; c alone at rung 2
    assert scores == {"a": 0.1, "d": 0.2, "b": 1.2, "c": 2.1}
    assert successive_halving([rungs[0], {"b": 0.2}], costs[:2]) is None  # c reached rung 1 without a result


def test_picks_enumerate_pools_and_compare_with_the_baseline():
    scores = {"a": 3, "b": 2, "c": 1, "focal": 9}
    trained = {"a": 0.40, "b": 0.55, "c": 0.50, "focal": 0.5}
    chosen = picks(scores, trained, 0.5, 2, exclude=("focal",))
    # pools ab, ac, bc pick a, a, b: trained 0.40, 0.40, 0.55
    assert (chosen.pools, chosen.pool) == (3, 2)
    assert chosen.beats_baseline == pytest.approx(1 / 3)
    assert chosen.mean_trained == pytest.approx(0.45)
    assert chosen.mean_regret == pytest.approx((0.15 + 0.10 + 0.0) / 3)
    assert picks({}, trained, 0.5, 2) is None


def test_seeds_needed():
    assert seeds_needed(0.01, 0.01) == 8  # 2 * (2 * 1)^2
    assert seeds_needed(0.002, 0.02) == 1
    assert seeds_needed(0.01, 0.0) is None


# --- the study with fake trainings ---------------------------------------------------------------


class FakeSimulator:
    """MOS by a hash of the candidate's key; the baseline passes."""

    baseline = type("Baseline", (), {"score": 0.15, "passed": True})()

    def simulate_many(self, candidates):
        return [type("Result", (), {"score": unit_hash(c.key) / 4, "passed": True})() for c in candidates]


def fake_trainer(agree: bool = True, fail_after: int | None = None):
    """A stand-in for ``run_training``: AP from a hash of the candidate; finals at 2 steps rank like at 4 steps
    when ``agree``; raises after ``fail_after`` calls (an interruption)."""
    calls = []

    def train(training, loss, config, work_dir):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt
        calls.append(training)
        base = unit_hash(training.candidate)
        noise = unit_hash(training.id) / 50 if training.kind == "proxy" else 0.0
        if training.kind == "final" and training.steps == 2 and not agree:
            base = 1 - base
        ap = base / 2 + noise + training.steps / 1000
        record = {"id": training.id, "training": dataclasses.asdict(training), "loss": loss, "status": "ok",
                  "reason": None, "ap": ap, "metrics": {"AP": ap}, "cpu_seconds": 10.0 * training.steps,
                  "wall_seconds": 12.0 * training.steps, "resumed_from_step": 0, "load_before": 1.0,
                  "load_after": 1.0}
        if training.normalized:
            record["loss_scale"] = 0.5
        return record

    train.calls = calls
    return train


SETTINGS = dataclasses.replace(PRESETS["smoke"], random_candidates=0, found=FOUND_BY_DEMO_SEARCHES, subset=5,
                               pool=3, search={**PRESETS["smoke"].search, "final_steps": 3})  # not the short final


def make_study(tmp_path):
    study = Study(SETTINGS, tmp_path / "study")
    study.load_candidates(FakeSimulator)
    return study


def test_records_live_apart_from_the_run_folders_and_a_fresh_work_folder_resumes_from_them(tmp_path):
    study = Study(SETTINGS, tmp_path / "scratch", records=tmp_path / "records")
    study.load_candidates(FakeSimulator)
    with pytest.raises(KeyboardInterrupt):
        study.run(trainer=fake_trainer(fail_after=3))
    assert (tmp_path / "records" / "candidates.json").is_file()
    assert len(list((tmp_path / "records" / "trainings").iterdir())) == 3 and not (tmp_path / "scratch").exists()
    fresh = Study(SETTINGS, tmp_path / "elsewhere", records=tmp_path / "records")
    fresh.load_candidates(lambda: pytest.fail("the stored candidates are reused, not simulated again"))
    trainer = fake_trainer()
    assert fresh.run(trainer=trainer) is True and len(trainer.calls) == len(fresh.plan()) - 3


def test_the_plan_runs_proxies_first_then_the_subset_and_resumes_after_an_interruption(tmp_path):
    study = make_study(tmp_path)
    assert study.names == ["focal", "bce", "demo-a", "demo-b", "demo-c", "demo-d"]
    assert study.candidate("focal").loss_entry() == {"name": "focal"}
    assert study.candidate("bce").loss_entry()["form"] == "sigmoid"
    with pytest.raises(KeyboardInterrupt):
        study.run(trainer=fake_trainer(fail_after=7))
    assert len(list((tmp_path / "study" / "trainings").iterdir())) == 7
    trainer = fake_trainer()
    resumed = make_study(tmp_path)
    assert resumed.run(trainer=trainer) is True
    first = trainer.calls[0]
    assert first == resumed.demo_final("focal")  # after the 6 proxies and focal's final
    planned = resumed.plan()
    assert [(t.kind, t.candidate) for t in planned[6:12]] == [("final", "focal")] * 3 + [("proxy", "focal")] * 3
    assert planned[7:9] == [resumed.demo_final("focal"), resumed.quick_final("focal")]
    assert [t.kind for t in planned[:6]] == ["proxy"] * 6 and len(trainer.calls) == len(planned) - 7
    assert resumed.reference_subset()[:2] == ["focal", "demo-a"] and len(resumed.reference_subset()) == 5
    assert resumed.short_agrees() is True
    assert not any(t.kind == "final" and t.steps == 4 and t.candidate not in resumed.reference_subset()
                   for t in planned)
    again = fake_trainer()
    assert make_study(tmp_path).run(trainer=again) is True and again.calls == []


def test_a_short_schedule_that_ranks_differently_brings_the_full_one_for_everyone(tmp_path):
    study = make_study(tmp_path)
    study.run(trainer=fake_trainer(agree=False))
    assert study.short_agrees() is False
    finals = {(t.candidate, t.seed) for t in study.plan() if t.kind == "final" and t.steps == 4}
    assert finals == {(n, 0) for n in study.names} | {("focal", 1)}


def test_a_swap_within_the_baselines_seed_noise_still_lets_the_short_schedule_stand_in(tmp_path):
    probe = make_study(tmp_path / "probe")
    probe.run(trainer=fake_trainer())
    short = {n: probe.ap(probe.final(n, 2)) for n in probe.reference_subset()}
    ordered = sorted(short, key=short.get)
    gaps = {(x, y): short[y] - short[x] for x, y in zip(ordered, ordered[1:], strict=False)}
    a, b = min(gaps, key=gaps.get)  # the two subset candidates closest at the short schedule
    base, noise = fake_trainer(), {"value": 0.0}

    def train(training, loss, config, work_dir):
        record = base(training, loss, config, work_dir)
        if training.kind == "final" and training.steps == 4 and training.candidate in (a, b):
            other = b if training.candidate == a else a  # the closest pair swaps at the full schedule
            record["ap"] = record["metrics"]["AP"] = short[other] + 0.002
        if training.kind == "final" and training.steps == 2 and training.candidate == "focal":
            record["ap"] = record["metrics"]["AP"] = record["ap"] + noise["value"] * training.seed
        return record

    exact = make_study(tmp_path / "exact")
    exact.run(trainer=train)
    assert exact.short_agrees() is False  # focal's seeds agree exactly: no noise, every pair counts
    noise["value"] = 2 * gaps[(a, b)]  # focal's seeds differ by more than the swapped pair's gap
    noisy = make_study(tmp_path / "noisy")
    noisy.run(trainer=train)
    assert noisy.seed_noise(2) > gaps[(a, b)] and noisy.short_agrees() is True


def test_the_section_reports_every_variant_with_its_cost_and_what_is_left(tmp_path):
    study = make_study(tmp_path)
    study.run(hours=1e-9, trainer=fake_trainer())  # one training, then the time is up
    partial = render(study, machine="test machine", command="python -m benchmarks.proxy_fidelity --report-only",
                     resume="python -m benchmarks.proxy_fidelity", session_seconds=1)
    assert "planned trainings are left" in partial and "`python -m benchmarks.proxy_fidelity` continues" in partial
    study.run(trainer=fake_trainer())
    section = render(study, machine="test machine", command="cmd", resume="cmd", session_seconds=3600)
    assert section.startswith("## Proxy fidelity") and "The study is complete." in section
    names = [v.name for v in variants(study)]
    assert names[:2] == ["MOS (the search's simulation)", CURRENT]
    assert any(n.startswith("successive halving 1x -> 2x") for n in names)
    assert any(n.startswith("proxy, best of lr") for n in names)
    assert "| demo-a | `exp(softplus(-cos(erf_s(x))))*erf_s(-w*x/2)` |" in section
    assert "(0.5) |" in section  # the normalized proxy's loss scale
    assert "Focal's seed spread at 4 steps" in section
    current = next(line for line in section.splitlines() if line.startswith(f"| {CURRENT} "))
    assert "| 6, +" in current  # every candidate against the (short) reference
    assert " of 5 |" in current  # verdicts vs focal of the 5 other candidates


def test_bad_command_lines_are_refused(tmp_path, capsys):
    for argv in (["--hours", "0"], ["--hours", "soon"]):
        with pytest.raises(SystemExit) as refused:
            proxy_fidelity.main(argv)
        assert refused.value.code == 2
        assert "is not a positive number of hours; write e.g. 6 or 0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        proxy_fidelity.main(["--report-only", "--work-dir", str(tmp_path), "--records", str(tmp_path / "records")])
    assert "holds no study yet" in capsys.readouterr().err
    with pytest.raises(ValueError, match="kind"):
        Training("focal", "scratch", 2, 1e-3)
    with pytest.raises(ValueError, match="from scratch"):
        Training("focal", "final", 2, 1e-3, normalized=True)


# --- the gradient-normalized proxy and one real training -----------------------------------------


def test_the_normalized_proxy_scales_the_candidate_to_the_baselines_gradient_norm(tmp_path, monkeypatch):
    norms = {"focal": 2.0}
    seen = {}

    def fake_norm(spec, cls_spec, batches=4):
        return norms.get(cls_spec.fn, 8.0) if isinstance(cls_spec.fn, str) else 8.0

    def fake_run(spec, cls_spec, reg_spec):
        seen["cls"] = cls_spec
        return {"metrics": {"AP": 0.25}, "train_seconds": 1.0}

    monkeypatch.setattr(fidelity_trainings, "cls_gradient_norm", fake_norm)
    monkeypatch.setattr(fidelity_trainings.proxy, "_proxy_run", fake_run)
    fidelity_trainings.baseline_gradient_norm.cache_clear()
    study = Study(PRESETS["smoke"], tmp_path)
    loss = {"prefix": "Neg(Log(Sig(X)))", "form": "sigmoid"}
    record = run_training(study.proxy("demo", normalized=True), loss, study.config, tmp_path)
    assert (record["status"], record["ap"], record["loss_scale"]) == ("ok", 0.25, 0.25)
    assert record["id"] == "proxy-demo-2steps-lr0.002-seed0-normalized" and record["cpu_seconds"] >= 0
    x, y, w = (np.array([0.3, -1.0], np.float32), np.array([1.0, 0.0], np.float32), np.zeros(2, np.float32))
    plain = Candidate.parse("Neg(Log(Sig(X)))", "sigmoid").to_jax()(x, y, w)
    np.testing.assert_allclose(seen["cls"].fn(x, y, w), 0.25 * plain, rtol=1e-6)
    assert seen["cls"].alpha_balance == 0.25  # the search's alpha balance stays
    focal = run_training(study.proxy("focal", normalized=True), {"name": "focal"}, study.config, tmp_path)
    assert focal["loss_scale"] == 1.0 and seen["cls"].fn == "focal"
    json.dumps(record)


def test_real_gradient_norms_and_a_real_final_training(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    study = Study(PRESETS["smoke"], tmp_path)
    loss = {"prefix": "Neg(Log(Sig(X)))", "form": "sigmoid"}
    spec = {**training_spec(study.proxy("demo"), loss, study.config, tmp_path), "init": None}
    bce = fidelity_trainings.proxy.loss_spec(loss, "cls", "fcos")
    norm = fidelity_trainings.cls_gradient_norm(spec, bce, batches=1)
    doubled = dataclasses.replace(bce, fn=fidelity_trainings.scaled_loss(bce.fn, 2.0))
    assert norm > 0 and fidelity_trainings.cls_gradient_norm(spec, doubled, batches=1) == pytest.approx(2 * norm,
                                                                                                        rel=1e-4)
    final = study.final("demo", 2)
    assert training_spec(final, loss, study.config, tmp_path)["eval_split"] == "final_val"
    record = run_training(final, loss, study.config, tmp_path)
    assert record["status"] == "ok" and 0.0 <= record["ap"] <= 1.0 and record["cpu_seconds"] > 0
    assert (tmp_path / "runs" / "final-demo-2steps-lr0.005-seed0" / "checkpoint.json").is_file()
