"""Signs through monotone differences (``symbolic.cpv.monotone_differences``) and the proofs they decide."""

import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.cpv.classification_proofs import prove_classification, prove_monotonicity, softmax_curves
from symbolic.cpv.monotone_differences import sign_reduction
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.sign_proofs import prove_sign
from symbolic.cpv.softmax_reduction import N
from symbolic.forms import FORMS, w
from symbolic.functions import Relu, Sigmoid
from symbolic.lowering import evaluate_numpy

x = sympy.Symbol("x", real=True)
BOX = {x: (-np.inf, np.inf), N: (1.0, np.inf), w: (0.0, 1.0)}
# the target's slope of dot(softmax(erf_s(-x)), softmax(softmax(w*y))): a common positive factor times the
# difference of the other classes' and the target's exponentials, which meet as n → ∞ or w → 0
SHARES = sympy.exp(-x**2) * (sympy.exp(1 / (N + sympy.exp(w))) - sympy.exp(sympy.exp(w) / (N + sympy.exp(w))))


def test_a_difference_of_one_monotone_function_is_decided_by_its_arguments_order():
    reduced, sign = sign_reduction(SHARES, BOX, "nonpositive")
    assert not reduced.has(sympy.exp(w) / (N + sympy.exp(w)))  # the exponentials are gone
    proof = prove_sign(SHARES, BOX, "nonpositive", deadline=clock() + 5.0)
    assert proof.status == "proved" and proof.argument.startswith("monotone differences")
    assert proof.domain == "all real x, n >= 1, w in [0, 1]"
    # the interval bound alone cannot: both terms tend to 1 and the bound of their difference straddles 0
    alone = prove_sign(SHARES, BOX, "nonpositive", deadline=clock() + 5.0, reduce=False)
    assert alone.status != "proved"
    assert prove_sign(-SHARES, BOX, "nonnegative", deadline=clock() + 5.0).status == "proved"


def test_an_exponential_against_a_level_is_its_exponent_against_the_log_of_the_level():
    box = {w: (0.0, 1.0)}
    # 1 − e^w ≤ 0 on w ≥ 0; its interval bound is [1 − e, 2e−15] after outward rounding
    assert prove_sign(1 - sympy.exp(w), box, "nonpositive", deadline=clock() + 2.0).status == "proved"
    assert prove_sign(1 - sympy.exp(w), box, "nonpositive", deadline=clock() + 2.0, reduce=False).status != "proved"
    assert sign_reduction(3 - 2 * sympy.exp(w), box, "nonnegative") is not None
    wrong = prove_sign(3 - 2 * sympy.exp(w), box, "nonnegative", deadline=clock() + 2.0)  # false for w > log 1.5
    assert wrong.status == "refuted" and wrong.counterexample["w"] > np.log(1.5)


def test_a_failed_reduction_neither_proves_nor_refutes_and_the_original_is_still_decided():
    # relu(−x)·(e^x − 2) ≤ 0 everywhere; dropping relu(−x) ≥ 0 leaves x ≤ log 2, false beyond
    expr = Relu(-x) * (sympy.exp(x) - 2)
    assert sign_reduction(expr, {x: (-10.0, 10.0)}, "nonpositive") is not None
    proof = prove_sign(expr, {x: (-10.0, 10.0)}, "nonpositive", deadline=clock() + 5.0)
    assert proof.status == "proved" and "monotone differences" not in proof.argument
    # the same reduction where the original's sign is really wrong: refuted by the original, not the reduction
    refuted = prove_sign(Relu(x) * (sympy.exp(x) - 2), {x: (-10.0, 10.0)}, "nonpositive", deadline=clock() + 5.0)
    assert refuted.status == "refuted" and refuted.counterexample["x"] > np.log(2)


def test_an_s_curve_difference_with_complementary_arguments_reduces_too():
    # σ(v) − σ(−v) has the sign of v; written with 1 − σ it needs the complement rewrite first
    v = Sigmoid(w) - Sigmoid(-w)
    assert prove_sign(Sigmoid(v) - (1 - Sigmoid(v)), {w: (0.0, 1.0)}, "nonnegative",
                      deadline=clock() + 2.0).argument.startswith("monotone differences")


def _target_slope(candidate, logits, iou):
    step, rows = 1e-4, np.array([logits, logits], dtype=np.float64)
    rows[:, 0] += (-step, step)
    c = len(logits)
    low, high = evaluate_numpy(candidate.expr, FORMS["softmax"],
                               {"x": rows, "y": np.tile(np.eye(c)[0], (2, 1)), "w": np.full((2, c), iou)})
    return (high - low) / (2 * step)


def test_a_softmax_loss_of_label_shares_is_proved_for_every_number_of_classes_and_agrees_with_explicit_logits():
    candidate = Candidate.parse("dot(softmax(erf_s(-x)), softmax(softmax(w*y)))", "softmax")
    proof = prove_monotonicity(softmax_curves(candidate.expr), deadline=clock() + 10.0)
    assert proof.status == "proved" and "monotone differences" in proof.argument
    assert "three or more classes" in proof.domain
    rng = np.random.default_rng(0)
    for classes in (3, 20, 81):
        for _ in range(5):
            logits = rng.uniform(-4, 4, classes)
            assert _target_slope(candidate, logits, rng.uniform(0.05, 1.0)) <= 1e-12


@pytest.mark.parametrize("formula", ["log(softplus(exp(-x + y)*cos(log(w))))"])
def test_an_error_in_one_property_proof_leaves_the_others_decided(formula):
    # the convergence's leading term met ∞ − ∞ (a nan exponent); monotonicity was lost with it
    proofs = prove_classification(Candidate.parse(formula, "sigmoid").expr, "sigmoid", clock() + 5.0)
    assert proofs["monotonicity"].status == "proved"
    assert proofs["convergence"].status in ("proved", "undecided") and "TypeError" not in proofs["convergence"].detail
