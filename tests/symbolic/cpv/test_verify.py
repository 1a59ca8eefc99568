import json
import random
import time

import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.cpv.verify import PropertyResult, Verdict, format_verdict, verify
from symbolic.forms import e, i, u
from symbolic.variation import random_candidate
from symbolic.zoo import KNOWN_LOSSES


@pytest.fixture(scope="module")
def zoo_verdicts():
    return {name: verify(loss.candidate) for name, loss in KNOWN_LOSSES.items()}


@pytest.mark.parametrize("name", list(KNOWN_LOSSES))
def test_known_losses_pass(zoo_verdicts, name):
    verdict = zoo_verdicts[name]
    assert verdict.passed, format_verdict(verdict)


def test_proofs_are_reported_with_their_method_and_range(zoo_verdicts):
    bce = zoo_verdicts["bce"].result("monotonicity")
    assert bce.status == "proved" and "for all real inputs" in bce.detail
    cse_b = zoo_verdicts["cse_b_cls"].result("monotonicity")
    assert cse_b.status == "proved" and "branch and bound" in cse_b.detail and "[-100, 100]" in cse_b.detail
    assert zoo_verdicts["ce"].result("convergence").status == "proved"
    assert zoo_verdicts["giou"].result("distance_consistency").status == "proved"
    iou_aware = zoo_verdicts["cse_b_cls"].result("iou_aware")
    assert iou_aware.status == "sampled" and "points" in iou_aware.detail
    assert zoo_verdicts["iou"].result("finiteness").status == "sampled"


MUST_FAIL = [
    ("dot(y, log(softmax(x)))", "softmax", "monotonicity"),  # sign-flipped CE
    ("relu(x - 200)", "sigmoid", "monotonicity"),  # constant over the detector's range: flat
    ("sin(x)", "sigmoid", "monotonicity"),
    ("y*softplus(-x) + (1 - y)*softplus(x) + sin(x)", "sigmoid", "monotonicity"),
    ("-dot(y, log(softmax(x))) + dot(y, sin(x))", "softmax", "monotonicity"),
    ("x*x", "sigmoid", "monotonicity"),
    ("-log(sigmoid(x)) + x*x", "sigmoid", "monotonicity"),
    ("i/u", "reg", "distance_consistency"),  # rewards moving away
    ("2 - i/u - i/e", "reg", "distance_consistency"),  # reads e, flat once disjoint
    ("1 - i/u + tanh(e - u)", "reg", "distance_consistency"),  # reads e, saturates at large scales
]


@pytest.mark.parametrize(("text", "form", "prop"), MUST_FAIL)
def test_bad_losses_fail_for_the_right_property(text, form, prop):
    verdict = verify(Candidate.parse(text, form))
    assert not verdict.passed
    failed = verdict.result(prop)
    assert failed.status == "failed" and failed.counterexample, format_verdict(verdict)
    assert prop in verdict.failed_properties


def test_a_constant_is_no_candidate_and_a_flat_tree_fails_the_screen():
    from symbolic.canonical import InvalidCandidate
    from symbolic.cpv.batch import check_trees

    with pytest.raises(InvalidCandidate):
        Candidate(sympy.Integer(3), "sigmoid")
    assert check_trees([3, ("add", 1, "y")], "sigmoid").first_failure == ["monotonicity", "monotonicity"]


def test_flat_once_disjoint_is_allowed_when_the_loss_ignores_e(zoo_verdicts):
    detail = zoo_verdicts["iou"].result("distance_consistency").detail
    assert "does not read e" in detail
    assert "reads e" in zoo_verdicts["giou"].result("distance_consistency").detail
    weak = verify(Candidate.parse("1 - i/u + tanh(e - u)", "reg")).result("distance_consistency")
    assert "strictly" in weak.detail


def test_iou_aware_fails_when_the_optimum_moves_away_from_one(zoo_verdicts):
    # the positive's optimum sits at sigmoid(x) = 1 - w: it moves *away* from 1 as w grows
    text = "y*(sigmoid(x) - 1 + w)*(sigmoid(x) - 1 + w) + (1 - y)*softplus(x)"
    verdict = verify(Candidate.parse(text, "sigmoid"))
    assert verdict.result("iou_aware").status == "failed"
    assert zoo_verdicts["cse_b_cls"].result("iou_aware").status == "sampled"


def test_json_round_trip(zoo_verdicts):
    for verdict in zoo_verdicts.values():
        text = verdict.to_json()
        json.loads(text)
        assert Verdict.from_json(text) == verdict
    failing = verify(Candidate.parse("i/u", "reg"))
    assert Verdict.from_json(failing.to_json()) == failing
    assert "counterexample" in format_verdict(failing)


def test_verdict_passes_unless_a_required_property_failed():
    results = (PropertyResult("a", "sampled", True, ""), PropertyResult("b", "failed", False, ""))
    verdict = Verdict(True, "reg", "k", results, 0.0)
    assert verdict.failed_properties == ()


def test_regression_counterexample_names_the_path():
    verdict = verify(Candidate(i / u, "reg"))
    example = verdict.result("distance_consistency").counterexample
    assert {"i", "u", "e", "loss", "path", "t"} <= set(example)
    assert example["loss"] < example["loss at the previous step"]


def test_never_raises_and_respects_the_time_budget_on_random_candidates():
    rng = random.Random(11)
    candidates = [random_candidate(rng, form) for form in ("sigmoid", "reg", "softmax") for _ in range(35)]
    budget, slowest, statuses = 0.25, 0.0, set()
    for rep in range(2):  # the first pass also compiles JAX primitives (a one-time cost per process)
        for candidate in candidates:
            start = time.perf_counter()
            verdict = verify(candidate, time_budget=budget)
            if rep:
                slowest = max(slowest, time.perf_counter() - start)
            statuses |= {p.status for p in verdict.properties}
            assert all(not p.detail.startswith("could not be checked") for p in verdict.properties), verdict
            assert Verdict.from_json(verdict.to_json()) == verdict
    # proofs stop at the budget; one SymPy step and the sampled and float32 checks come on top
    assert slowest < budget + 1.0, slowest
    assert {"failed", "sampled"} <= statuses


def test_unsupported_derivative_falls_back_to_sampled(monkeypatch):
    import symbolic.cpv.regression as regression

    def broken(*args, **kwargs):
        raise RuntimeError("derivative unavailable")

    monkeypatch.setattr(regression, "prove_regression", broken)
    result = verify(Candidate(1 - i / u + (e - u) / e, "reg")).result("distance_consistency")
    assert result.status == "sampled" and "derivative unavailable" in result.detail
