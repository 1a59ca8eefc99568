"""The any-number-of-classes reduction agrees with the loss evaluated on explicit classes."""

import random

import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv.classification_proofs import prove_monotonicity, softmax_curves
from symbolic.cpv.intervals import Hull, IntervalProgram, IntervalUnsupported, Meet
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.softmax_reduction import (
    A_O,
    D_O,
    Q_O,
    RHO,
    X_J,
    X_O,
    X_T,
    N,
    OthersSum,
    OutsideReduction,
    Reduced,
    Special,
    reduce_loss,
    relax,
)
from symbolic.forms import FORMS, w
from symbolic.lowering import evaluate_numpy
from symbolic.variation import random_tree
from symbolic.zoo import KNOWN_LOSSES


def _numeric(reduced, logits, target, varied, iou):
    """The reduced loss at explicit logits: ρ, n and each sum over the other classes computed from them."""
    others = [k for k in range(len(logits)) if k not in (target, varied)]
    values = {X_T: logits[target], w: iou, N: len(others) or 1e-300}  # no others: their mass tends to 0
    if varied is not None:
        values[X_J] = logits[varied]
    mass = reduced.others_argument
    if mass is not None:
        a = [float(mass.subs(X_O, logits[k])) for k in others]
        values[RHO] = float(np.log(np.sum(np.exp(a)))) if others else -700.0
        shares = np.exp(np.array(a) - values[RHO]) if others else []
    expr = reduced.expr.replace(lambda node: isinstance(node, OthersSum), lambda node: sympy.Add(*[
        node.args[0].subs({X_O: logits[k], Q_O: shares[m] if mass is not None else 0}) for m, k in enumerate(others)]))
    return float(expr.subs(values).evalf())


def _explicit(candidate, logits, target, iou):
    c = len(logits)
    inputs = {"x": np.array([logits]), "y": np.eye(c)[[target]], "w": np.full((1, c), iou)}
    return float(evaluate_numpy(candidate.expr, FORMS["softmax"], inputs)[0])


def _candidates(count):
    rng, out = random.Random(4), [KNOWN_LOSSES["ce"].candidate, KNOWN_LOSSES["cse_a_cls"].candidate]
    while len(out) < count:
        try:
            out.append(Candidate.from_tree(random_tree(rng, "softmax", max_depth=4), "softmax"))
        except InvalidCandidate:
            continue
    return out


@pytest.mark.parametrize("classes", [2, 3, 6])
def test_reduction_equals_explicit_classes(classes):
    rng = np.random.default_rng(classes)
    compared = 0
    for candidate in _candidates(14):
        logits = list(rng.normal(0, 2, classes))
        iou = float(rng.uniform(0.3, 1.0))
        explicit = _explicit(candidate, logits, 0, iou)
        for specials, varied in [((Special(X_T, 1),), None), ((Special(X_T, 1), Special(X_J, 0)), 1)]:
            try:
                reduced = reduce_loss(candidate.expr, specials)
            except OutsideReduction:
                continue
            try:
                value = _numeric(reduced, logits, 0, varied, iou)
            except TypeError:  # complex: a root or log of a negative number, outside the formula's domain
                continue
            if np.isfinite(explicit) and abs(explicit) < 1e6:
                assert value == pytest.approx(explicit, rel=1e-7, abs=1e-9), (candidate.infix(), classes)
                compared += 1
    assert compared >= 12


def test_cross_entropy_reduces_to_a_softplus_of_the_margin_for_every_number_of_classes():
    reduced = reduce_loss(KNOWN_LOSSES["ce"].candidate.expr, (Special(X_T, 1),))
    assert reduced.others_argument == X_O and reduced.expr.free_symbols == {X_T, RHO}
    for target, rho in [(0.3, -1.2), (5.0, 2.0), (-40.0, 30.0)]:
        value = float(reduced.expr.subs({X_T: target, RHO: rho}))
        assert value == pytest.approx(float(np.logaddexp(0.0, rho - target)), rel=1e-12)


def test_a_softmax_of_a_softmax_is_outside_the_reduction():
    # the inner softmax gives each other class its own share q_o, so the outer one's others differ: no n·e^(a)
    candidate = Candidate.parse("dot(y, softmax(softmax(x)))", "softmax")
    with pytest.raises(OutsideReduction):
        reduce_loss(candidate.expr, (Special(X_T, 1),))


# --- the relaxation of the sums over the other classes (per class, or a hull on each sub-box) ---------------------

def _curve_inputs(logits, varied, iou, reduced, relaxed):
    """Per other class o, its weight q_o and the point of the relaxed box that stands for it (n ≥ 1 others)."""
    others = [k for k in range(len(logits)) if k not in (0, varied)]
    argument = [float(reduced.others_argument.subs(X_O, logits[k])) for k in others] if reduced.others_argument \
        is not None else [0.0] * len(others)
    rho = float(np.log(np.sum(np.exp(argument))))
    base = {X_T: logits[0], X_J: logits[varied] if varied else 0.0, w: iou, N: float(len(others)), RHO: rho}
    for k, a in zip(others, argument, strict=True):
        point = {**base, A_O: a, D_O: rho - a, X_O: logits[k]}
        yield float(np.exp(a - rho)), {s: (point.get(s, -np.inf), point.get(s, np.inf)) for s in relaxed.box}


SUMS_OVER_OTHERS = [  # losses whose derivatives hold sums over the other classes, per class and as hulls
    "dot(x, softmax(x))", "dot(softmax(x), softmax(x))", "dot(sin(x), softmax(x))", "tanh(dot(softmax(x), x))",
    "dot(erf_s(-y), erf_s(softmax(sigmoid(x))))", "dot(cos(sqrt(y)), erf_s(softmax(erf_s(x))))",
    "gd_s(dot(y + exp(sin(w)), -softmax(sigmoid(x)) + softplus(w)))",
    "dot((-tanh(sin(y)) + erf_s(-3))*tanh(erf_s(-w)), exp(erf_s(softmax(tanh(x)))))",
    "dot(cos(gd_s(1 - y)), erf_s(softmax(erf_s(-relu(x)))))", "dot(softmax(x)*x, log(softmax(x)))",
    "dot((-2 + alf_s(2))/softmax(tanh(y)), -erf_s(w) + softmax(erf_s(-x)) - log(2))",
]


@pytest.mark.parametrize("classes", [3, 5, 9])
def test_the_relaxed_derivative_encloses_the_true_one_on_explicit_classes(classes):
    # sound for every number of classes: Σ_o q_o·[bracket(o)] (a convex combination) contains the exact derivative
    rng = np.random.default_rng(10 + classes)
    checked = 0
    for candidate in _candidates(30) + [Candidate.parse(f, "softmax") for f in SUMS_OVER_OTHERS]:
        logits = list(rng.normal(0, 2, classes))
        iou = float(rng.uniform(0.3, 1.0))
        for specials, varied, symbol in [((Special(X_T, 1),), None, X_T),
                                         ((Special(X_T, 1), Special(X_J, 0)), 1, X_J)]:
            try:
                reduced = reduce_loss(candidate.expr, specials)
                derivative = sympy.diff(reduced.expr, symbol)
                exact = _numeric(Reduced(derivative, reduced.others_argument), logits, 0, varied, iou)
            except (OutsideReduction, TypeError):
                continue
            box = {symbol: (-np.inf, np.inf), X_T: (-np.inf, np.inf), RHO: (-np.inf, np.inf), N: (1.0, np.inf),
                   w: (0.0, 1.0)}
            relaxed = relax(derivative, reduced.others_argument, box)
            if not np.isfinite(exact) or abs(exact) > 1e6:
                continue
            try:
                program = IntervalProgram(relaxed.expr, tuple(relaxed.box))
            except IntervalUnsupported:
                continue
            low = high = 0.0
            for weight, point in _curve_inputs(logits, varied, iou, reduced, relaxed):
                lo, hi = program(np.array([[point[s][0] for s in relaxed.box]]),
                                 np.array([[point[s][1] for s in relaxed.box]]))
                low, high = low + weight * lo[0], high + weight * hi[0]
            slack = 1e-9 * max(1.0, abs(exact))
            assert low - slack <= exact <= high + slack, (candidate.infix(), classes, specials, exact, low, high)
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize("formula", [
    # softmax(y): rational in n
    "(-gd_s(1) + erf_s(-3) + softplus(erf_s(-2)))/dot(softmax(y)/tanh(3), softmax(tanh(x)))",
    "gd_s(dot(y + exp(sin(w)), -softmax(sigmoid(x)) + softplus(w)))",  # the others' shares per class
])
def test_monotonicity_only_sampled_before_is_now_proved_for_every_number_of_classes(formula):
    candidate = Candidate.parse(formula, "softmax")
    proof = prove_monotonicity(softmax_curves(candidate.expr), deadline=clock() + 10.0)
    assert proof.status == "proved", proof.detail
    assert "two classes" in proof.domain and "three or more classes" in proof.domain


def test_a_loss_that_rises_with_the_target_logit_for_many_classes_is_refuted_with_explicit_logits():
    # relu(cos(S)): S, a sum over the other classes, grows with their number, and cos turns around
    candidate = Candidate.parse("relu(cos(dot(-sqrt(y) + sigmoid(3), erf_s(-sigmoid(x)))))", "softmax")
    proof = prove_monotonicity(softmax_curves(candidate.expr), deadline=clock() + 10.0)
    assert proof.status == "refuted"
    example = proof.counterexample
    assert example["classes"] > 3 and _explicit_slope(candidate, example["x"], example["w"]) > 0


def _explicit_slope(candidate, logits, iou):
    step = 1e-4
    up, down = list(logits), list(logits)
    up[0] += step
    down[0] -= step
    return (_explicit(candidate, up, 0, iou) - _explicit(candidate, down, 0, iou)) / (2 * step)


def test_hull_and_meet_enclose_what_they_stand_for():
    r, s, x_h = sympy.Symbol("r", real=True), sympy.Symbol("s", real=True), sympy.Symbol("x_h", real=True)
    hull = Hull(r * sympy.sin(x_h), (x_h, -sympy.oo, sympy.oo))
    assert hull.free_symbols == {r}
    program = IntervalProgram(Meet(s, hull) + hull, (r, s))
    lo, hi = program(np.array([[1.0, 0.5]]), np.array([[2.0, 10.0]]))
    assert lo[0] <= 0.5 - 2.0 and hi[0] >= 2.0 + 2.0 and hi[0] <= 4.0 + 1e-9  # the meet is s ∩ [−2, 2]


def test_a_later_curve_refutes_with_explicit_logits_where_an_earlier_one_is_undecided():
    # the target's curve runs out of boxes; the non-target's, with two classes, has the wrong sign at w = 0.1:
    # its coefficient sin(−1) + cos(gd_s(w)) is small and positive, and −alf_s + gd_s∘gd_s falls at x ≈ −4
    candidate = Candidate.parse("sigmoid(dot(sin(y - 1) + cos(gd_s(w)), -alf_s(x) + gd_s(gd_s(x))))", "softmax")
    proof = prove_monotonicity(softmax_curves(candidate.expr), deadline=clock() + 10.0)
    assert proof.status == "refuted" and proof.detail.startswith("non-target logit")
    example = proof.counterexample
    step, logits = 1e-3, np.array(example["x"])
    up, down = logits.copy(), logits.copy()
    up[1] += step
    down[1] -= step
    slope = (_explicit(candidate, list(up), 0, example["w"]) - _explicit(candidate, list(down), 0, example["w"])) / (
        2 * step)
    assert example["classes"] == 2 and slope < 0  # the loss falls as the non-target logit rises


def test_an_undecided_curve_is_searched_with_more_classes_and_refuted_where_the_loss_turns():
    # the target's coefficient log softmax(y)_t + cos 6 = cos 6 − log(1 + (C − 1)/e) is negative from C = 6 on:
    # fine on the three classes the sampled check probes, rising with the target logit for many classes
    candidate = Candidate.parse("-dot((log(softmax(y)) + cos(6))*erf_s(x/w), alf_s(cos(w)*erf_s(-sin(2))))",
                                "softmax")
    proof = prove_monotonicity(softmax_curves(candidate.expr), deadline=clock() + 10.0)
    assert proof.status == "refuted" and "classes (the proof was undecided)" in proof.detail
    example = proof.counterexample
    assert example["classes"] >= 6 and _explicit_slope(candidate, example["x"], example["w"]) > 0
    assert np.cos(6) - np.log(1 + (example["classes"] - 1) / np.e) < 0  # the turned coefficient
