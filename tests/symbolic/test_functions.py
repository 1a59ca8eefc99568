"""SymPy classes of σ, softplus, relu and the scaled S-curves: derivatives, shapes, assumptions."""

import numpy as np
import pytest
import sympy

from symbolic.functions import S_CURVES, Relu, ScaledErf, Sigmoid, Softplus

t = sympy.Symbol("t", real=True)
POINTS = [-7.5, -2.0, -0.3, 0.0, 0.4, 1.7, 9.0]


@pytest.mark.parametrize("cls", [*S_CURVES, Softplus])
def test_derivative_matches_the_definition(cls):
    derivative = sympy.diff(cls(t), t)
    from_definition = sympy.diff(cls.definition(t), t)
    for point in POINTS:
        assert float(derivative.subs(t, point).evalf()) == pytest.approx(
            float(from_definition.subs(t, point).evalf()), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("cls", S_CURVES)
def test_s_curves_are_centred_with_slope_a_quarter_and_odd_around_a_half(cls):
    assert cls(0) == sympy.Rational(1, 2)
    assert float(sympy.diff(cls(t), t).subs(t, 0)) == pytest.approx(0.25)
    for point in POINTS:
        assert float(cls(-point).evalf()) == pytest.approx(1 - float(cls(point).evalf()), abs=1e-12)
        assert 0 < float(cls(point).evalf()) < 1


def test_assumptions_simplify_automatically():
    assert sympy.Abs(Sigmoid(t)) == Sigmoid(t)
    assert sympy.Abs(Softplus(t)) == Softplus(t)
    assert Relu(Sigmoid(t)) == Sigmoid(t)
    assert Relu(-Softplus(t)) == 0
    assert sympy.sqrt(ScaledErf(t) ** 2) == ScaledErf(t)


def test_evalf_uses_the_definition():
    assert float(Sigmoid(2).evalf()) == pytest.approx(1 / (1 + np.exp(-2)))
    assert float(Softplus(3).evalf()) == pytest.approx(np.log1p(np.exp(3)))
    assert float(Relu(-t).subs(t, 2).evalf()) == 0.0
