import math
import random

import numpy as np
import pytest
from scipy import special

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv.batch import check_trees
from symbolic.cpv.classification import sampled_rules
from symbolic.cpv.finiteness import domain_violation
from symbolic.cpv.grids import probe_for
from symbolic.cpv.regression import sampled_regression
from symbolic.lowering import evaluate_numpy
from symbolic.numeric import evaluate_trees
from symbolic.variation import random_tree
from symbolic.zoo import KNOWN_LOSSES


def population(form, count, seed):
    rng = random.Random(seed)
    return [random_tree(rng, form) for _ in range(count)]


def test_known_losses_pass_the_batch_check():
    for form in ("sigmoid", "softmax", "reg"):
        trees = [loss.candidate.tree for loss in KNOWN_LOSSES.values() if loss.form == form]
        checks = check_trees(trees, form)
        assert checks.passed.all(), (form, checks.first_failure)


@pytest.mark.parametrize(("form", "count"), [("sigmoid", 6000), ("softmax", 3000), ("reg", 1500)])
def test_batch_checks_agree_with_per_candidate_sampled_checks(form, count):
    trees = population(form, count, seed=5)
    checks = check_trees(trees, form)
    failed_late = [k for k, name in enumerate(checks.first_failure)
                   if name is not None and not checks.screened_out[k]]
    rows = list(np.flatnonzero(checks.passed)) + failed_late[:25] + list(np.flatnonzero(checks.screened_out))[:25]
    compared = 0
    for row in rows:
        try:
            candidate = Candidate.from_tree(trees[row], form)
        except InvalidCandidate:
            continue
        probe = probe_for(form)
        tree_values = evaluate_trees([trees[row]], probe.inputs, form)[0]
        if not np.allclose(tree_values, evaluate_numpy(candidate.expr, candidate.form, probe.inputs),
                           rtol=1e-9, atol=1e-12, equal_nan=True):
            # the canonical form's guarded numerics differ from the tree's (e.g. a/sin(-w) vs -a/sin(w)
            # at w = 0: the division guard keeps the sign of the denominator, and -0.0 counts as +)
            continue
        if form == "reg":
            sampled_ok = sampled_regression(candidate)[0].holds
        else:
            rules, values = sampled_rules(candidate)
            sampled_ok = all(outcome.ok[0] for outcome in rules.values()) and np.isfinite(values).all()
        sampled_ok = sampled_ok and domain_violation(candidate) is None
        assert sampled_ok == bool(checks.passed[row]), (trees[row], checks.first_failure[row])
        compared += 1
    assert compared >= 20 and checks.passed.any()


# --- the authors' check (deap_screen.py), rebuilt on their primitives ------------------------

_EPS = 1e-20
_erf = np.vectorize(math.erf)
_REFERENCE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": lambda a, b: np.divide(a, np.add(b, _EPS)),
    "neg": np.negative, "exp": lambda a: np.exp(np.minimum(a, 88.0)), "log": lambda a: np.log(np.add(a, _EPS)),
    "abs": np.abs, "sqrt": np.sqrt, "softplus": lambda a: np.logaddexp(0.0, a),
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=float))), "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0), "sin": np.sin, "cos": np.cos,
    "erf_s": lambda a: (_erf(math.sqrt(math.pi) / 2 * np.asarray(a, dtype=float) / 2) + 1) / 2,
    "erfc_s": lambda a: (_erf(-math.sqrt(math.pi) / 2 * np.asarray(a, dtype=float) / 2) + 1) / 2,
    "alf_s": lambda a: ((np.asarray(a, dtype=float) / 2) / np.sqrt(1 + (np.asarray(a, dtype=float) / 2) ** 2) + 1) / 2,
    "gd_s": lambda a: (2 * np.arctan(np.tanh(np.asarray(a, dtype=float) * math.pi / 4 / 2)) * 2 / math.pi + 1) / 2,
}


def _reference_value(tree, inputs):
    if isinstance(tree, tuple):
        return _REFERENCE[tree[0]](*(_reference_value(child, inputs) for child in tree[1:]))
    if isinstance(tree, str):
        return inputs[tree]
    return float(tree)


def reference_passes(tree):
    """deap_screen.passes on the authors' numerics: X = x, Q = w, PY = y, NY = 1 − y."""
    xs = np.linspace(-10, 10, 200)
    with np.errstate(all="ignore"):
        pos = np.broadcast_to(_reference_value(tree, {"x": xs, "y": 1.0, "w": 1.0}), xs.shape)
        neg = np.broadcast_to(_reference_value(tree, {"x": xs, "y": 0.0, "w": 0.0}), xs.shape)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        return False
    dp, dn = np.diff(pos), np.diff(neg)
    mono = np.all(dp <= 1e-9) and np.all(dn >= -1e-9) and dp.min() < -1e-6 and dn.max() > 1e-6
    conv = abs(dp[-1]) < 1e-3 * max(1.0, abs(dp).max()) and abs(dn[0]) < 1e-3 * max(1.0, abs(dn).max())
    return bool(mono and conv)


def test_reference_rebuild_matches_known_cases():
    assert reference_passes(("softplus", ("sub", ("mul", ("sub", 1, ("mul", 2, "y")), "x"), 0)))
    assert not reference_passes(("sin", "x"))
    assert special.expit(0.0) == 0.5


def test_batch_check_is_at_least_as_strict_as_the_authors():
    trees = population("sigmoid", 20000, seed=1)
    checks = check_trees(trees, "sigmoid")
    ours = np.flatnonzero(checks.passed)
    assert len(ours) > 3
    assert all(reference_passes(trees[k]) for k in ours), [trees[k] for k in ours if not reference_passes(trees[k])]
    reference = sum(reference_passes(tree) for tree in trees[:4000])
    assert checks.passed[:4000].sum() <= reference


def test_counts_and_first_failures_add_up():
    trees = population("reg", 500, seed=2)
    checks = check_trees(trees, "reg")
    assert sum(checks.failure_counts().values()) == len(trees)
    assert checks.failure_counts().get("passed", 0) == int(checks.passed.sum())
    assert probe_for("reg").paths.shape[1] == 96
