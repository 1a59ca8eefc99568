"""Softmax and dot over the class axis: canonical behaviour, ranks and class reduction."""

import pytest
import sympy

from symbolic.forms import w, x, y
from symbolic.functions import Sigmoid
from symbolic.vector_ops import Dot, Softmax, VectorOperatorError, expression_rank, reduce_classes

VECTORS = frozenset({x, y, w})


def test_dot_is_symmetric_and_pulls_out_numbers():
    assert Dot(x, y) == Dot(y, x)
    assert Dot(-2 * y, x) == -2 * Dot(x, y)
    assert Dot(y / 3, 3 * x) == Dot(x, y)


def test_softmax_drops_additive_constants():
    assert Softmax(x + 3) == Softmax(x)


def test_ranks():
    assert expression_rank(sympy.log(Softmax(x)), VECTORS) == 1
    assert expression_rank(-Dot(y, sympy.log(Softmax(x))), VECTORS) == 0
    assert expression_rank(Dot(y, x) + x, VECTORS) == 1
    with pytest.raises(VectorOperatorError):
        expression_rank(Softmax(Dot(x, y)), VECTORS)
    with pytest.raises(VectorOperatorError):
        expression_rank(Dot(sympy.Integer(2), Dot(x, y)), VECTORS)


def test_two_class_reduction_of_softmax_is_a_sigmoid_of_the_margin():
    ce = -Dot(y, sympy.log(Softmax(x)))
    reduced = reduce_classes(ce, 2, (x, y, w))
    x0, x1, y0, y1 = sympy.symbols("x_0 x_1 y_0 y_1", real=True)
    names = {s.name: s for s in reduced.free_symbols}
    at = {names["y_0"]: 1, names["y_1"]: 0, names["x_0"]: 0.7, names["x_1"]: -0.4}
    expected = -sympy.log(Sigmoid(0.7 + 0.4))
    assert float(reduced.subs(at).evalf()) == pytest.approx(float(expected.evalf()))


def test_reduction_differentiates_through_softmax():
    ce = -Dot(y, sympy.log(Softmax(x)))
    reduced = reduce_classes(ce, 3, (x, y, w))
    names = {s.name: s for s in reduced.free_symbols}
    grad = sympy.diff(reduced, names["x_0"])
    at = {names["y_0"]: 1, names["y_1"]: 0, names["y_2"]: 0, names["x_0"]: 1, names["x_1"]: 0, names["x_2"]: 0}
    p0 = sympy.exp(1) / (sympy.exp(1) + 2)
    assert float(grad.subs(at).evalf()) == pytest.approx(float((p0 - 1).evalf()))


def test_reducing_a_vector_or_differentiating_directly_is_an_error():
    with pytest.raises(VectorOperatorError):
        reduce_classes(sympy.log(Softmax(x)), 2, (x, y, w))
    with pytest.raises(VectorOperatorError):
        sympy.diff(Dot(x, y), x)
