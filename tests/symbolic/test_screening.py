import random

import numpy as np
import pytest

from symbolic.canonical import fingerprint_rows
from symbolic.forms import FORMS
from symbolic.lowering import LoweringError, evaluate_numpy
from symbolic.numeric import evaluate_trees, tree_values
from symbolic.operators import DIV_FLOOR, EXP_CAP, LOG_FLOOR, SQRT_FLOOR
from symbolic.screening import screen, screen_trees
from symbolic.tree import iter_paths, tree_to_sympy
from symbolic.variation import random_tree
from symbolic.vector_ops import VectorOperatorError, expression_rank

FORM_NAMES = list(FORMS)
_GUARDED_ARGUMENT = {
    "log": lambda a: a <= LOG_FLOOR,
    "sqrt": lambda a: a <= SQRT_FLOOR,
    "exp": lambda a: a >= EXP_CAP,
    "sin": lambda a: np.abs(a) > 1e4,  # ill-conditioned: round-off in a is amplified by |a|
    "cos": lambda a: np.abs(a) > 1e4,
}


def population(form, count, seed=0):
    rng = random.Random(seed)
    return [random_tree(rng, form) for _ in range(count)]


def guarded_samples(tree, form, inputs):
    """Samples where a guard of the table bites, a value is so large that SymPy's
    rearrangements (e.g. exp(a)·exp(b) = exp(a + b) under the exp cap) change it, or sin/cos
    see an argument so large that the order of operations shows."""
    shape = np.broadcast_shapes(*(np.shape(value) for value in inputs.values()))
    mask = np.zeros(shape[:-1] if form.vector else shape, dtype=bool)

    def flag(condition):
        condition = np.broadcast_to(condition, shape)
        return condition.any(axis=-1) if form.vector else condition

    memo = {}
    for _, node in iter_paths(tree):
        mask |= flag(~(np.abs(tree_values(node, inputs, memo)) < 1e12))
        if isinstance(node, tuple) and node[0] in _GUARDED_ARGUMENT:
            mask |= flag(_GUARDED_ARGUMENT[node[0]](tree_values(node[1], inputs, memo)))
        if isinstance(node, tuple) and node[0] == "div":
            mask |= flag(np.abs(tree_values(node[2], inputs, memo)) <= DIV_FLOOR)
    return mask


@pytest.mark.parametrize("form", FORM_NAMES)
def test_batch_equals_one_by_one_and_unmemoized(form):
    trees = population(form, 300)
    inputs = FORMS[form].probe_inputs()
    batch = evaluate_trees(trees, inputs, form)
    assert batch.shape == (300, 48) and batch.dtype == np.float64
    alone = np.concatenate([evaluate_trees([tree], inputs, form) for tree in trees])
    np.testing.assert_array_equal(batch, alone)
    np.testing.assert_array_equal(batch, evaluate_trees(trees, inputs, form, memoize=False))


@pytest.mark.parametrize("form", FORM_NAMES)
def test_batch_equals_lowered_sympy_where_no_guard_bites(form):
    form = FORMS[form]
    trees = population(form, 300, seed=1)
    inputs = form.probe_inputs()
    compared = 0
    for tree, values in zip(trees, evaluate_trees(trees, inputs, form), strict=True):
        expr = tree_to_sympy(tree, form)
        try:
            expression_rank(expr, frozenset(form.symbols))
            reference = evaluate_numpy(expr, form, inputs)
        except (VectorOperatorError, LoweringError, TypeError):
            # SymPy made it I, zoo, softmax(0), or collapsed a constant vector such as x/x to
            # the scalar 1, which changes what dot sums: Candidate rejects all of these
            continue
        same = np.isfinite(values) & np.isfinite(reference) & ~guarded_samples(tree, form, inputs)
        np.testing.assert_allclose(values[same], reference[same], rtol=1e-7, atol=1e-9, err_msg=str(tree))
        compared += same.any()
    assert compared > 250


def test_stable_log_is_used():
    inputs = {"x": np.array([-800.0, 0.0, 800.0]), "y": np.zeros(3), "w": np.zeros(3)}
    values = evaluate_trees([("log", ("sigmoid", "x"))], inputs, "sigmoid")[0]
    np.testing.assert_allclose(values, [-800.0, -np.log(2), 0.0])


def test_softmax_form_reduces_the_class_axis_and_rejects_vectors():
    inputs = FORMS["softmax"].probe_inputs(size=5)
    value = evaluate_trees([("neg", ("dot", "y", ("log", ("softmax", "x")))), 2], inputs, "softmax")
    expected = -np.sum(inputs["y"] * (inputs["x"] - np.log(np.exp(inputs["x"]).sum(-1, keepdims=True))), -1)
    np.testing.assert_allclose(value[0], expected)
    np.testing.assert_array_equal(value[1], np.full(5, 2.0))
    with pytest.raises(ValueError, match="vector over classes"):
        evaluate_trees([("softmax", "x")], inputs, "softmax")


def test_screen_trees_verdicts():
    big = ("exp", ("exp", ("exp", 2)))  # capped: 5.5e34
    for _ in range(4):
        big = ("mul", big, big)  # (5.5e34)**16 overflows
    trees = [("sigmoid", "x"), ("sub", "x", "x"), ("mul", "x", big), ("softmax", "x"),
             ("add", "x", "x"), ("mul", 2, "x"), ("add", "y", ("div", "x", "x"))]
    result = screen_trees(trees, "sigmoid")
    assert result.problems[3] is not None and "softmax" in result.problems[3]
    assert list(result.valid) == [True, True, True, False, True, True, True]
    assert list(result.finite) == [True, True, False, False, True, True, True]
    assert list(result.depends_on_main) == [True, False, True, False, True, True, False]
    assert list(result.passed) == [True, False, False, False, True, True, False]
    assert result.fingerprints[4] == result.fingerprints[5] != result.fingerprints[0]
    assert result.fingerprints[3] is None and np.isnan(result.values[3]).all()
    reasons = result.reasons()
    assert reasons[0] is None and "constant" in reasons[1] and "non-finite" in reasons[2]


def test_screen_trees_reg_moves_i_within_its_domain():
    result = screen_trees([("div", "i", "u"), ("div", "u", "e"), ("sub", 1, ("div", "i", "u"))], "reg")
    assert list(result.passed) == [True, False, True]


def test_screen_trees_with_own_inputs():
    inputs = {"x": np.linspace(-3, 3, 7), "y": 1.0, "w": 0.5}
    result = screen_trees([("mul", "w", ("sigmoid", "x")), ("relu", ("sub", "x", 10))], "sigmoid", inputs)
    np.testing.assert_allclose(result.values[0], 0.5 / (1 + np.exp(-inputs["x"])))
    assert list(result.depends_on_main) == [True, False]  # relu(x − 10) is 0 on these x


@pytest.mark.parametrize("form", FORM_NAMES)
def test_screen_counts_add_up(form):
    outcome = screen(random.Random(4), form, 3000)
    counts = outcome.counts
    removed = (counts.structural_duplicates + counts.invalid + counts.non_finite + counts.constant_in_main
               + counts.fingerprint_duplicates)
    assert counts.generated == 3000 == removed + counts.survivors
    assert counts.structural_duplicates > 0 and counts.fingerprint_duplicates > 0 and counts.invalid == 0
    assert len(outcome.survivors) == len(set(outcome.survivors)) == counts.survivors
    assert len(set(outcome.fingerprints)) == counts.survivors
    assert outcome.values.shape == (counts.survivors, 48)
    assert fingerprint_rows(outcome.values[:20]) == outcome.fingerprints[:20]


def test_screen_is_reproducible_and_remembers_seen_fingerprints():
    first = screen(random.Random(5), "sigmoid", 1000)
    assert screen(random.Random(5), "sigmoid", 1000).survivors == first.survivors
    seen = set(first.fingerprints)
    again = screen(random.Random(5), "sigmoid", 1000, seen=seen)
    assert again.counts.survivors == 0
    assert again.counts.fingerprint_duplicates == first.counts.survivors + first.counts.fingerprint_duplicates
