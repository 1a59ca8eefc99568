"""Convergence as a limit: leading-term analysis, continuity at ±∞ and SymPy's Gruntz."""


import pytest
import sympy

from symbolic.cpv.asymptotics import VANISHES, leading_term, limit_at_infinity
from symbolic.cpv.limits import gradient_limit, limit_by_continuity
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.substitution import substitute
from symbolic.forms import w, x, y
from symbolic.functions import Relu, ScaledAlf, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.zoo import KNOWN_LOSSES

rho = sympy.Symbol("rho", real=True)

LIMITS = [  # (expression, direction, limit)
    (x * Sigmoid(-x), 1, 0),
    (Softplus(x) * Sigmoid(-x) ** 2, 1, 0),
    (x**3 * ScaledErf(-x), 1, 0),
    (ScaledGd(x) * x**5, -1, 0),
    (ScaledAlf(x) * x, -1, 0),  # alf_s(x) ~ 1/x² toward −∞
    (sympy.sin(x) * Sigmoid(-x), 1, 0),  # bounded times vanishing
    (Sigmoid(x - rho) * Sigmoid(rho - x) * w, 1, 0),  # parameters stay symbols
    (Relu(-x) + Sigmoid(x), 1, 1),
    (-2 + Sigmoid(-x), 1, -2),
    (x * Sigmoid(x), 1, sympy.oo),
]


@pytest.mark.parametrize(("expr", "direction", "limit"), LIMITS)
def test_leading_term_limits(expr, direction, limit):
    assert limit_at_infinity(expr, x, direction) == limit


def test_leading_term_gives_up_where_terms_cancel_or_oscillate():
    assert limit_at_infinity(1 - Sigmoid(x), x, 1) is None  # needs the complement rewrite first
    assert limit_at_infinity(sympy.sin(x), x, 1) is None
    assert leading_term(Relu(-x), x) == VANISHES


def test_continuity_refuses_indeterminate_forms():
    assert limit_by_continuity(-Sigmoid(-x), x, sympy.oo) == 0
    assert limit_by_continuity(x * Sigmoid(-x), x, sympy.oo) is None
    assert limit_by_continuity(sympy.sign(sympy.exp(-x) - sympy.exp(-2 * x)), x, sympy.oo) is None  # a step at its jump


@pytest.mark.parametrize("name", ["bce", "focal", "cse_b_cls"])
def test_published_and_baseline_gradients_vanish_at_the_label(name):
    expr = KNOWN_LOSSES[name].candidate.expr
    for values, direction in [({y: 1, w: 1}, 1), ({y: 0, w: 0}, -1)]:
        derivative = sympy.diff(substitute(expr, values), x)
        proof = gradient_limit(derivative, x, direction, clock() + 5)
        assert proof.status == "proved" and proof.argument == "leading-term analysis", proof


def test_a_gradient_that_does_not_vanish_is_refuted_with_its_limit():
    proof = gradient_limit(sympy.diff(Softplus(-x) - x / 1000, x), x, 1, clock() + 10)
    assert proof.status == "refuted" and "-0.001" in proof.detail
