"""The any-number-of-classes reduction agrees with the loss evaluated on explicit classes."""

import random

import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv.softmax_reduction import (
    Q_O,
    RHO,
    X_J,
    X_O,
    X_T,
    N,
    OthersSum,
    OutsideReduction,
    Special,
    reduce_loss,
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
