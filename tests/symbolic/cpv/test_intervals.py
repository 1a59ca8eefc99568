import math
import random
import time

import numpy as np
import pytest
import sympy

from symbolic.cpv.intervals import IntervalProgram, IntervalUnsupported, interval_bounds
from symbolic.cpv.sign_proofs import assumption_sign, prepare, prove_sign, rewrite_complements
from symbolic.forms import FORMS, w, x, y
from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.lowering import evaluate_numpy
from symbolic.numeric import tree_values
from symbolic.tree import iter_paths, tree_to_sympy
from symbolic.variation import random_tree

t = sympy.Symbol("t", positive=True)


def _exp_capped(tree, inputs):
    """True where an exp in the tree receives an argument above the numerics' cap (math and numerics differ)."""
    hit = np.zeros(len(inputs["x"]), dtype=bool)
    for _, node in iter_paths(tree):
        if isinstance(node, tuple) and node[0] == "exp":
            hit |= np.broadcast_to(np.asarray(tree_values(node[1], inputs)) > 80, hit.shape)
    return hit


def test_random_expressions_values_lie_inside_their_bounds():
    form = FORMS["sigmoid"]
    rng, gen = np.random.default_rng(3), random.Random(3)
    checked = 0
    for _ in range(300):
        tree = random_tree(gen, form, max_depth=4)
        expr = tree_to_sympy(tree, form)
        if expr.is_number:
            continue
        centre = rng.uniform([-5, 0, 0], [5, 1, 1])
        width = rng.uniform(0, [2, 0.5, 0.5])
        lo, hi = centre - width / 2, centre + width / 2
        try:
            program = IntervalProgram(expr, (x, y, w))
        except IntervalUnsupported:
            continue
        b_lo, b_hi = program(lo[None], hi[None])
        points = rng.uniform(lo, hi, (64, 3))
        points[:2] = [lo, hi]
        inputs = dict(zip("xyw", points.T, strict=True))
        values = evaluate_numpy(expr, form, inputs)
        ok = (values >= b_lo[0]) & (values <= b_hi[0]) | ~np.isfinite(values) | _exp_capped(tree, inputs)
        assert ok.all(), (expr, lo, hi, b_lo, b_hi, values[~ok][:3], points[~ok][:3])
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("function", [sympy.exp, sympy.log, sympy.sin, sympy.cos, sympy.tanh, sympy.Abs, Sigmoid,
                                      Softplus, Relu, ScaledErf, ScaledGd, ScaledAlf, sympy.sqrt])
def test_unary_heads_enclose_dense_samples(function):
    rng = np.random.default_rng(0)
    expr = function(x)
    lo = rng.uniform(-30, 30, 200)
    hi = lo + rng.exponential(3, 200)
    b_lo, b_hi = IntervalProgram(expr, (x,))(lo[:, None], hi[:, None])
    form = FORMS["sigmoid"]
    for k in range(200):
        samples = np.linspace(lo[k], hi[k], 101)
        values = evaluate_numpy(expr, form, {"x": samples, "y": 0 * samples, "w": 0 * samples})
        assert (values >= b_lo[k]).all() and (values <= b_hi[k]).all(), (expr, lo[k], hi[k])


def test_exact_zeros_survive_rounding():
    lo, hi = interval_bounds(-4 * (t - 1), {t: (0.5, 1.0)})
    assert lo == 0.0 and hi > 0
    assert interval_bounds(Sigmoid(x) * (1 - Sigmoid(x)), {x: (99.0, 100.0)})[1] <= 1e-42 + 0.25
    lo, hi = interval_bounds(-Sigmoid(-x) * Softplus(-x), {x: (-100.0, 100.0)})
    assert hi <= 0


def test_division_by_an_interval_touching_zero_is_unbounded():
    lo, hi = interval_bounds(1 / x, {x: (-1.0, 2.0)})
    assert lo == -math.inf and hi == math.inf
    lo, hi = interval_bounds(1 / x, {x: (0.0, 2.0)})
    assert lo == pytest.approx(0.5) and hi == math.inf


def test_symbolic_exponent_is_unsupported():
    with pytest.raises(IntervalUnsupported):
        IntervalProgram(x**y, (x, y))


def test_complement_rewrite_is_exact_and_removes_cancellation():
    expr = 1 - Sigmoid(x) + 2 - 2 * sympy.tanh(x) ** 2
    rewritten = rewrite_complements(expr)
    assert rewritten.has(Sigmoid(-x)) and not rewritten.has(sympy.tanh)
    for value in (-3.0, 0.5, 7.0):
        assert float(expr.subs(x, value).evalf()) == pytest.approx(float(rewritten.subs(x, value).evalf()), rel=1e-12)
    assert all(form.free_symbols == {x} for form in prepare(expr))


def test_branch_and_bound_proves_refutes_and_respects_the_deadline():
    deadline = time.perf_counter() + 2
    proof = prove_sign(sympy.diff(Softplus(-x) + (1 - Sigmoid(x)) ** 2, x), {x: (-100.0, 100.0)}, "nonpositive",
                       deadline=deadline)
    assert proof.status == "proved"
    refuted = prove_sign(sympy.cos(x), {x: (-100.0, 100.0)}, "nonpositive", deadline=deadline)
    assert refuted.status == "refuted"
    assert math.cos(refuted.counterexample["x"]) > 0
    start = time.perf_counter()
    stuck = prove_sign(sympy.sin(x) ** 2, {x: (-100.0, 100.0)}, "positive", deadline=time.perf_counter() + 0.2)
    assert stuck.status in ("undecided", "refuted") and time.perf_counter() - start < 1.0


def test_assumptions_decide_simple_derivatives_for_all_reals():
    assert assumption_sign(-Sigmoid(-x), "nonpositive")
    assert not assumption_sign(sympy.sin(x), "nonpositive")
