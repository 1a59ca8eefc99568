import math
import random

import mpmath
import numpy as np
import pytest
import sympy

from symbolic.cpv.intervals import IntervalProgram, IntervalUnsupported, interval_bounds
from symbolic.forms import FORMS, w, x, y
from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.lowering import evaluate_numpy
from symbolic.numeric import tree_values
from symbolic.tree import iter_paths, tree_to_sympy
from symbolic.variation import random_tree

t = sympy.Symbol("t", positive=True)


def _scurve_tail(tree, inputs):
    """True where an S-curve's numerics (1 + f(a))/2 lose relative accuracy (a tail): the bound is of the math."""
    hit = np.zeros(len(inputs["x"]), dtype=bool)
    for _, node in iter_paths(tree):
        if isinstance(node, tuple) and node[0] in ("erf_s", "gd_s", "alf_s", "erfc_s"):
            argument = np.broadcast_to(np.asarray(tree_values(node[1], inputs)), hit.shape)
            hit |= (-argument if node[0] == "erfc_s" else argument) < -2
    return hit


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
        ok = (values >= b_lo[0]) & (values <= b_hi[0]) | ~np.isfinite(values) | _exp_capped(tree, inputs) | \
            _scurve_tail(tree, inputs)
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
    for k in range(0, 200, 1 if function not in (ScaledErf, ScaledGd, ScaledAlf) else 8):
        samples = np.linspace(lo[k], hi[k], 101)
        if function in (ScaledErf, ScaledGd, ScaledAlf):  # the mathematical value: the numerics cancel in the tails
            with mpmath.workdps(30):
                values = np.array([float(function.mp_value(mpmath.mp, mpmath.mpf(float(v)))) for v in samples])
        else:
            values = evaluate_numpy(expr, form, {"x": samples, "y": 0 * samples, "w": 0 * samples})
        assert (values >= b_lo[k]).all() and (values <= b_hi[k]).all(), (expr, lo[k], hi[k])


def test_s_curve_tails_keep_their_relative_accuracy():
    lo, hi = interval_bounds(ScaledErf(x), {x: (-30.0, -30.0)})
    assert 0 < lo <= hi < 1e-70 and hi / lo < 1 + 1e-11
    assert interval_bounds(ScaledGd(x), {x: (-50.0, -50.0)})[0] > 0


def test_exact_zeros_survive_rounding():
    lo, hi = interval_bounds(-4 * (t - 1), {t: (0.5, 1.0)})
    assert lo == 0.0 and hi > 0
    assert interval_bounds(Sigmoid(x) * (1 - Sigmoid(x)), {x: (99.0, 100.0)})[1] <= 1e-42 + 0.25
    lo, hi = interval_bounds(-Sigmoid(-x) * Softplus(-x), {x: (-100.0, 100.0)})
    assert hi <= 0


def test_odd_functions_keep_their_arguments_sign_at_zero():
    for head in (sympy.tanh, sympy.atan, sympy.erf):
        assert interval_bounds(head(x), {x: (0.0, 1.0)})[0] == 0.0
        assert interval_bounds(head(x), {x: (-1.0, 0.0)})[1] == 0.0
    assert interval_bounds(sympy.sin(sympy.tanh(x)), {x: (0.0, 1e-3)})[0] >= 0.0


def test_division_by_an_interval_touching_zero_is_unbounded():
    lo, hi = interval_bounds(1 / x, {x: (-1.0, 2.0)})
    assert lo == -math.inf and hi == math.inf
    lo, hi = interval_bounds(1 / x, {x: (0.0, 2.0)})
    assert lo == pytest.approx(0.5) and hi == math.inf


def test_symbolic_exponent_is_unsupported():
    with pytest.raises(IntervalUnsupported):
        IntervalProgram(x**y, (x, y))


def test_infinite_bounds_stay_rigorous_and_s_curves_reach_their_limits():
    lo, hi = interval_bounds(ScaledAlf(x), {x: (3.0, math.inf)})
    assert lo > 0.9 and hi == 1.0
    assert interval_bounds(Sigmoid(-x) + sympy.exp(-x), {x: (50.0, math.inf)})[0] == 0.0
    lo, hi = interval_bounds(x * Sigmoid(-x), {x: (3.0, math.inf)})
    assert lo == 0.0 and hi == math.inf  # 0·∞ stands for an unbounded finite product: no claim


def test_sin_and_cos_keep_their_sign_on_half_periods():
    assert interval_bounds(sympy.sin(ScaledGd(x)), {x: (-1e9, 3.0)})[0] == 0.0
    assert interval_bounds(sympy.cos(x), {x: (-1.5, 1.5)})[0] >= 0.0
    assert interval_bounds(sympy.sin(x), {x: (-3.0, -0.1)})[1] <= 0.0


def test_a_constant_without_a_numeric_value_is_unsupported_not_an_error():
    # softplus(log 0) in a regression loss at IoU 1: SymPy keeps −Softplus(zoo), which has no float value
    with pytest.raises(IntervalUnsupported, match="has no numeric value"):
        interval_bounds(x - Softplus(sympy.zoo), {x: (0.0, 1.0)})
