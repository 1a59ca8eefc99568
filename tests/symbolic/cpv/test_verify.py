import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.cpv import PropertyResult, Verdict, format_verdict, verify
from symbolic.cpv.proof_worker import KILL_MARGIN, proof_worker
from symbolic.forms import e, i, u
from symbolic.variation import random_candidate
from symbolic.zoo import KNOWN_LOSSES

ZOO_BUDGET = 30.0  # a ceiling: the zoo's proofs take well under a second each on an idle machine
# proving this takes tens of seconds (rational sign analysis of a product of six ratios)
PATHOLOGICAL = "(1 - i/u)*" + "*".join(f"(1 + (e - u)/(e + {k % 3 + 1}*u*i + {k % 2 + 1}))" for k in range(5))


@pytest.fixture(scope="module")
def zoo_verdicts():
    return {name: verify(loss.candidate, time_budget=ZOO_BUDGET) for name, loss in KNOWN_LOSSES.items()}


@pytest.mark.parametrize("name", list(KNOWN_LOSSES))
def test_every_property_of_every_known_loss_is_proved(zoo_verdicts, name):
    verdict = zoo_verdicts[name]
    assert verdict.passed, format_verdict(verdict)
    for result in verdict.properties:
        if result.name != "finiteness":  # sampled by nature: a property of the float32 numerics
            assert result.status == "proved", format_verdict(verdict)


def test_proofs_say_which_argument_decided_them_and_on_what_domain(zoo_verdicts):
    bce = zoo_verdicts["bce"].result("monotonicity")
    assert bce.argument.startswith("sign of the derivative") and "all real" in bce.domain
    cse_b = zoo_verdicts["cse_b_cls"].result("monotonicity")
    assert "branch and bound" in cse_b.argument and "all real x" in cse_b.domain
    assert "leading-term analysis" in zoo_verdicts["cse_b_cls"].result("convergence").argument
    iou_aware = zoo_verdicts["cse_b_cls"].result("iou_aware")  # its cross derivative is affine in w
    assert "Topkis" in iou_aware.argument and "every w in [0, 1]" in iou_aware.domain
    ce = zoo_verdicts["cse_a_cls"].result("monotonicity")  # every number of classes, every IoU
    assert "all real rho" in ce.domain and "w in [0, 1]" in ce.domain
    assert "x_t -> +inf" in zoo_verdicts["ce"].result("convergence").domain
    assert "area e > 0" in zoo_verdicts["giou"].result("distance_consistency").domain
    assert "every box area A > 0" in zoo_verdicts["cse_b_reg"].result("distance_consistency").domain
    finiteness = zoo_verdicts["iou"].result("finiteness")
    assert finiteness.status == "sampled" and finiteness.argument == "sampled check"


MUST_FAIL = [
    ("dot(y, log(softmax(x)))", "softmax", "monotonicity"),  # sign-flipped CE
    ("relu(x - 200)", "sigmoid", "monotonicity"),  # constant over the detector's range: flat
    ("sin(x)", "sigmoid", "monotonicity"),
    ("y*softplus(-x) + (1 - y)*softplus(x) + sin(x)", "sigmoid", "monotonicity"),
    ("-dot(y, log(softmax(x))) + dot(y, sin(x))", "softmax", "monotonicity"),
    ("x*x", "sigmoid", "monotonicity"),
    ("-log(sigmoid(x)) + x*x", "sigmoid", "monotonicity"),
    ("i/u", "reg", "distance_consistency"),  # rewards moving away
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
    from symbolic.cpv import check_trees

    with pytest.raises(InvalidCandidate):
        Candidate(sympy.Integer(3), "sigmoid")
    assert check_trees([3, ("add", 1, "y")], "sigmoid").first_failure == ["monotonicity", "monotonicity"]


def test_one_principle_for_every_regression_loss_however_it_is_written(zoo_verdicts):
    # 2 − i/u − i/e reads e and is flat once disjoint, like 1 − i/u, which does not: the same verdict for both
    reads_e = verify(Candidate.parse("2 - i/u - i/e", "reg"), time_budget=ZOO_BUDGET)
    for result in (reads_e.result("distance_consistency"), zoo_verdicts["iou"].result("distance_consistency")):
        assert result.status == "proved" and "is flat (as IoU is)" in result.detail
    assert "the loss grows" in zoo_verdicts["giou"].result("distance_consistency").detail


def test_iou_aware_fails_when_the_optimum_moves_away_from_one():
    # the positive's optimum sits at sigmoid(x) = 1 - w: it moves *away* from 1 as w grows
    text = "y*(sigmoid(x) - 1 + w)*(sigmoid(x) - 1 + w) + (1 - y)*softplus(x)"
    assert verify(Candidate.parse(text, "sigmoid")).result("iou_aware").status == "failed"


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
    # proofs stop at the budget (a stuck worker at the budget plus the kill margin); the sampled and float32
    # checks come on top
    assert slowest < budget + KILL_MARGIN + 1.0, slowest
    assert {"failed", "sampled", "proved"} <= statuses


def test_a_pathological_formula_returns_within_its_budget_plus_a_small_margin():
    candidate = Candidate.parse(PATHOLOGICAL, "reg")
    verify(candidate, time_budget=0.0)  # sampled checks and JAX compiled
    proof_worker().call(abs, (1,), 60.0)  # the worker started (its start-up is charged to no budget)
    start = time.perf_counter()
    checks_only = verify(candidate, time_budget=0.0)
    without_proofs = time.perf_counter() - start
    budget = 0.5
    start = time.perf_counter()
    verdict = verify(candidate, time_budget=budget)
    proof_time = time.perf_counter() - start - without_proofs
    result = verdict.result("distance_consistency")
    assert checks_only.result("distance_consistency").status == "sampled"
    assert result.status == "sampled" and f"ran out of its time budget ({budget:g} s)" in result.detail
    assert proof_time < budget + KILL_MARGIN + 0.5, proof_time


def test_verify_bounds_proofs_off_the_main_thread():
    with ThreadPoolExecutor(1) as pool:
        verdict = pool.submit(verify, KNOWN_LOSSES["giou"].candidate, time_budget=ZOO_BUDGET).result()
    assert verdict.result("distance_consistency").status == "proved"


@pytest.mark.parametrize("budget", [-1.0, float("nan"), float("inf"), "1"])
def test_a_bad_time_budget_is_refused_with_what_to_give(budget):
    with pytest.raises(ValueError, match="finite number of seconds >= 0"):
        verify(KNOWN_LOSSES["iou"].candidate, time_budget=budget)


def test_a_failing_proof_worker_leaves_the_sampled_verdict(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("derivative unavailable")

    monkeypatch.setattr(proof_worker(), "call", broken)
    result = verify(Candidate(1 - i / u + (e - u) / e, "reg")).result("distance_consistency")
    assert result.status == "sampled" and "derivative unavailable" in result.detail
