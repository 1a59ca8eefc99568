"""Simulating candidates: scores, rejections with reasons, isolation inside a batch, determinism."""

import dataclasses
import math

import pytest

from simulate import SimulationConfig, Simulator
from symbolic import KNOWN_LOSSES, Candidate


@pytest.fixture(scope="module")
def tiny_config(tiny_train_spec):
    return SimulationConfig(data=tiny_train_spec, image_size=64, warm_start_steps=4, warm_start_batch_size=4,
                            steps=3, batch_size=3, min_relative_ap=0.0)


@pytest.fixture(scope="module")
def simulator(tiny_config, tmp_path_factory):
    return Simulator(tiny_config, cache_dir=tmp_path_factory.mktemp("warm"), progress=False)


def test_the_baseline_and_good_candidates_pass_with_an_ap_and_a_loss_curve(simulator):
    assert simulator.baseline.passed and 0.0 <= simulator.baseline.score <= 1.0
    bce = KNOWN_LOSSES["bce"].candidate
    (result,) = simulator.simulate_many([bce])
    assert result.passed and result.reason is None and result.key == bce.key
    assert len(result.loss_curve) == 3 and all(math.isfinite(v) for v in result.loss_curve)
    assert result.to_dict()["score"] == result.score


def test_a_nan_candidate_is_rejected_with_its_step_and_does_not_poison_its_batch(simulator):
    good = KNOWN_LOSSES["bce"].candidate
    overflowing = Candidate.parse("exp(x + 100)*(exp(x + 100) + 1)", "sigmoid")  # overflows float32
    mixed = simulator.simulate_many([good, overflowing, good])
    (alone,) = simulator.simulate_many([good])
    assert not mixed[1].passed and mixed[1].reason == "non-finite loss or gradient at step 1" and mixed[1].step == 1
    assert math.isnan(mixed[1].score)
    for result in (mixed[0], mixed[2]):
        assert result.passed and result.loss_curve == alone.loss_curve and result.score == alone.score


def test_poor_and_exploding_candidates_are_rejected_with_reasons(simulator):
    (bce,) = simulator.simulate_many([KNOWN_LOSSES["bce"].candidate])
    baseline, config = simulator.baseline, simulator.config
    # a baseline that scored above bce: bce falls under min_relative_ap x the baseline's AP
    simulator.baseline = dataclasses.replace(baseline, score=bce.score + 0.1)
    simulator.config = dataclasses.replace(config, min_relative_ap=1.0)
    try:
        (poor,) = simulator.simulate_many([KNOWN_LOSSES["bce"].candidate])
    finally:
        simulator.baseline, simulator.config = baseline, config
    assert not poor.passed and "below" in poor.reason and "baseline" in poor.reason
    simulator.config = dataclasses.replace(config, max_loss_ratio=1.0)
    try:
        (rising,) = simulator.simulate_many([Candidate.parse("x*(1 - y)", "sigmoid")])
    finally:
        simulator.config = config
    assert not rising.passed and rising.reason.startswith("loss exploded")


def test_the_same_seed_gives_the_same_results_and_the_form_is_checked(tiny_config, simulator, tmp_path):
    again = Simulator(tiny_config, cache_dir=simulator.warm_start_file.parent, progress=False)
    assert again.baseline.loss_curve == simulator.baseline.loss_curve
    assert again.baseline.score == simulator.baseline.score
    with pytest.raises(ValueError, match="takes the sigmoid form"):
        simulator.simulate_many([KNOWN_LOSSES["giou"].candidate])


@pytest.mark.parametrize("batching", ["interpreter", "linearized"])
def test_the_other_batchings_agree_with_the_stacked_one(tiny_config, simulator, batching):
    other = Simulator(dataclasses.replace(tiny_config, batching=batching), cache_dir=simulator.warm_start_file.parent,
                      progress=False)
    candidates = [KNOWN_LOSSES["bce"].candidate, KNOWN_LOSSES["cse_b_cls"].candidate]
    for a, b in zip(other.simulate_many(candidates), simulator.simulate_many(candidates), strict=True):
        assert a.passed == b.passed
        assert a.loss_curve == pytest.approx(b.loss_curve, rel=1e-3, abs=1e-4)


def test_a_linearized_batch_isolates_a_nan_candidate_too(tiny_config, simulator):
    linearized = Simulator(dataclasses.replace(tiny_config, batching="linearized"),
                           cache_dir=simulator.warm_start_file.parent, progress=False)
    good = KNOWN_LOSSES["bce"].candidate
    mixed = linearized.simulate_many([good, Candidate.parse("exp(x + 100)*(exp(x + 100) + 1)", "sigmoid"), good])
    assert not mixed[1].passed and mixed[1].reason == "non-finite loss or gradient at step 1"
    assert mixed[0].passed and mixed[0].loss_curve == mixed[2].loss_curve


@pytest.mark.parametrize(("detector", "branch", "names"), [
    ("fcos", "reg", ("giou", "cse_b_reg")),
    ("faster-rcnn", "cls", ("ce", "cse_a_cls")),
    ("faster-rcnn", "reg", ("giou", "cse_a_reg")),
])
def test_every_branch_of_both_detectors_simulates_alike_in_both_batchings(tiny_config, detector, branch, names,
                                                                          tmp_path_factory):
    config = dataclasses.replace(tiny_config, detector=detector, branch=branch)
    cache = tmp_path_factory.mktemp("warm")
    stacked, linearized = (Simulator(dataclasses.replace(config, batching=batching), cache_dir=cache, progress=False)
                           for batching in ("stacked", "linearized"))
    candidates = [KNOWN_LOSSES[name].candidate for name in names]
    for a, b in zip(linearized.simulate_many(candidates), stacked.simulate_many(candidates), strict=True):
        assert a.passed == b.passed and all(math.isfinite(v) for v in a.loss_curve)
        assert a.loss_curve == pytest.approx(b.loss_curve, rel=1e-3, abs=1e-4)


def test_settings_out_of_range_name_the_setting():
    with pytest.raises(ValueError, match=r"SimulationConfig.steps=0 is out of range"):
        SimulationConfig(steps=0)
    with pytest.raises(ValueError, match="SimulationConfig.branch='box'"):
        SimulationConfig(branch="box")


def test_training_the_whole_model_starts_where_the_heads_do_and_then_differs(tiny_config, simulator):
    whole = Simulator(dataclasses.replace(tiny_config, train="all"), cache_dir=simulator.warm_start_file.parent,
                      progress=False)
    candidates = [KNOWN_LOSSES["bce"].candidate, KNOWN_LOSSES["cse_b_cls"].candidate]
    for all_layers, heads in zip(whole.simulate_many(candidates), simulator.simulate_many(candidates), strict=True):
        assert all_layers.passed and 0.0 <= all_layers.score <= 1.0
        assert all_layers.loss_curve[0] == pytest.approx(heads.loss_curve[0], rel=1e-4)  # same model, same loss
        assert all_layers.loss_curve[1:] != pytest.approx(heads.loss_curve[1:], rel=1e-6)  # the backbone moved too
