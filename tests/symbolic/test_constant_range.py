"""The range of constants: float64 evaluation of constant subtrees, and the digits of exact constants."""

from fractions import Fraction

import pytest

from symbolic.constant_range import MAX_DIGITS, constant_problem, integer_problem, rational_problem
from symbolic.parser import parse_tree


def _problem(text: str, form: str = "sigmoid") -> str | None:
    return constant_problem(parse_tree(text, form))


@pytest.mark.parametrize("text", [
    "x*exp(2) + sigmoid(3)/softplus(1)",
    "x*exp(700) + cos(exp(36))",  # 1e304: large, still float64; 4e15: sin and cos still resolve it
    "x/1e100 + 1e-300*x",
    "x*log(sigmoid(-exp(exp(3))))",  # log σ is evaluated stably, as the lowering does
    "x*exp(-exp(exp(3)))",  # underflows to 0, which is finite
    "dot(x, softmax(x))*sqrt(2)",
    "-log(sigmoid(x))*(1 + sin(w))",
])
def test_constants_within_float64_pass(text):
    form = "softmax" if "dot" in text else "sigmoid"
    assert _problem(text, form) is None


@pytest.mark.parametrize(("text", "named", "value"), [
    ("x*abs(cos(exp(exp(exp(3)))))", "exp(exp(exp(3)))", "inf"),
    ("x*relu(cos(exp(1e10)))", "exp(10000000000)", "inf"),
    ("x + abs(sqrt(tanh(1 + sqrt(1 - 3))))", "sqrt(1 - 3)", "not a real number"),
    ("x*log(1 - sigmoid(exp(exp(3))))", "log(1 - sigmoid(exp(exp(3))))", "-inf"),
    ("x + 1/(1 - 1)", "1 / (1 - 1)", "inf"),
    ("x + log(cos(3))", "log(cos(3))", "not a real number"),
    ("x*cos(exp(37))", "cos(exp(37))", "within ±2**53"),  # float64's cos of 1.2e16 is noise
    ("x*sqrt(sin(1e100))", "sin(1000", "within ±2**53"),
])
def test_the_innermost_constant_out_of_range_is_named(text, named, value):
    problem = _problem(text)
    assert f"the constant {named}" in problem and value in problem


def test_exact_constants_have_at_most_max_digits():
    assert integer_problem(10**MAX_DIGITS - 1) is None
    assert rational_problem(Fraction(1, 10**(MAX_DIGITS - 1))) is None
    assert "about 311 digits" in integer_problem(10**MAX_DIGITS)
    assert "digits" in rational_problem(Fraction(1, 10**MAX_DIGITS))
    assert "about 30,103 digits" in integer_problem(-(2**100_000))  # too long for str(), still described
    assert "digits" in constant_problem(("mul", "x", 10**400))
    assert "inf" in constant_problem(("mul", "x", 10**309))
