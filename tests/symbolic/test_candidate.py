"""Candidate: immutability, identity by key, size and depth, construction from trees, hostile input."""

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import sympy

import symbolic.candidate as candidate_module
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import FORMS, i, u, x, y
from symbolic.functions import Sigmoid, Softplus
from symbolic.tree import MAX_DEPTH, MAX_NODES


def test_candidate_is_immutable_and_hashable_by_key():
    c = Candidate(-sympy.log(Sigmoid(x)) * y, "sigmoid")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.expr = x
    assert c.expr == y * Softplus(-x)
    assert c.form is FORMS["sigmoid"]
    assert {c, Candidate(Softplus(-x) * y, "sigmoid")} == {c}


def test_size_and_depth_count_primitives():
    c = Candidate(1 - i / u, "reg")
    assert c.tree == ("sub", 1, ("div", "i", "u"))
    assert (c.size, c.depth) == (5, 2)


def test_from_tree_validates_structure_first():
    form = FORMS["sigmoid"]
    assert Candidate.from_tree(("neg", ("log", ("sigmoid", "x"))), form).expr == Softplus(-x)
    for tree, reason in [
        (("dot", "x", "y"), "not allowed in the sigmoid form"),
        (("sigmoid", "x", "y"), "takes 1 argument"),
        (("neg", "q"), "does not belong"),
        (("neg", "y"), "must depend on x"),
        (("frobnicate", "x"), "unknown operator"),
        (("neg", -1), "non-negative"),
    ]:
        with pytest.raises(InvalidCandidate, match=reason):
            Candidate.from_tree(tree, form)


def test_softmax_trees_must_reduce_to_one_value_per_sample():
    form = FORMS["softmax"]
    ce = ("neg", ("dot", "y", ("log", ("softmax", "x"))))
    assert Candidate.from_tree(ce, form).size == 6
    with pytest.raises(InvalidCandidate, match="vector over classes"):
        Candidate.from_tree(("log", ("softmax", "x")), form)
    with pytest.raises(InvalidCandidate, match="softmax needs a vector"):
        Candidate.from_tree(("dot", "x", ("softmax", 1)), form)


def test_only_sympy_expressions_are_accepted():
    with pytest.raises(TypeError, match="Candidate.parse"):
        Candidate("-log(sigmoid(x))", "sigmoid")
    with pytest.raises(ValueError, match="unknown loss form"):
        Candidate(x, "softmax2")


# --- hostile input: construction is bounded and raises only InvalidCandidate ----------------------


@pytest.mark.parametrize(("text", "reason"), [
    # Each ran for minutes while SymPy decided the sign of cos of a huge constant.
    ("x*abs(cos(exp(exp(exp(3)))))", "the constant exp(exp(exp(3))) is inf in float64"),
    ("x*relu(cos(exp(exp(exp(3)))))", "the constant exp(exp(exp(3))) is inf in float64"),
    ("x*abs(cos(exp(1e10)))", "the constant exp(10000000000) is inf in float64"),
    # TypeError: Invalid comparison of non-real, and OverflowError from mpmath.
    ("x + abs(sqrt(tanh(1 + sqrt(1-3))))", "the constant sqrt(1 - 3) is not a real number"),
    ("x + erfc_s(sigmoid(exp(" + "9" * 100 + ")))", "is inf in float64"),
])
def test_hostile_constants_are_refused_before_sympy_sees_them(text, reason):
    with pytest.raises(InvalidCandidate, match=re.escape(reason)):
        Candidate.parse(text, "sigmoid")


def test_hostile_trees_from_the_search_are_refused_the_same_way():
    tower = ("exp", ("exp", ("exp", 3)))
    for wrapper in ("abs", "relu", "cos"):
        with pytest.raises(InvalidCandidate, match="is inf in float64"):
            Candidate.from_tree(("mul", "x", (wrapper, ("cos", tower))), "sigmoid")


def test_a_sympy_expression_with_a_huge_constant_is_refused_too():
    tower = sympy.exp(sympy.exp(sympy.exp(3)))
    with pytest.raises(InvalidCandidate, match="is inf in float64"):
        Candidate(x * sympy.Abs(sympy.cos(tower), evaluate=False), "sigmoid")


@pytest.mark.parametrize("error", [TypeError("Invalid comparison of non-real I"), OverflowError("too many digits"),
                                   RecursionError("maximum recursion depth exceeded")])
def test_whatever_sympy_raises_becomes_invalid_candidate(monkeypatch, error):
    def fail(expr):
        raise error

    monkeypatch.setattr(candidate_module, "canonicalize", fail)
    with pytest.raises(InvalidCandidate) as caught:
        Candidate.parse("x + abs(sqrt(tanh(1 + sqrt(2))))", "sigmoid")
    assert "SymPy" in caught.value.reason or "nests too deeply" in caught.value.reason
    with pytest.raises(InvalidCandidate):
        Candidate(x + 1, "sigmoid")


# abs(x − abs(x − ...)): SymPy's sign queries grow with the fourth power of the nesting (0.7 s at
# 40 levels, minutes at 95); the budget stops it in any thread.
_SLOW = "abs(x - " * 24 + "1" + ")" * 24


@pytest.mark.parametrize("in_thread", [False, True], ids=["main thread", "worker thread"])
def test_sympy_work_past_the_budget_is_refused(monkeypatch, in_thread):
    monkeypatch.setattr(candidate_module, "CONSTRUCTION_SECONDS", 0.01)

    def build():
        with pytest.raises(InvalidCandidate, match="more than 0.01 s of CPU time"):
            Candidate.parse(_SLOW, "sigmoid")

    if in_thread:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(build).result()
    else:
        build()


def test_trees_beyond_the_limits_are_refused_without_recursion():
    deep = "x"
    for _ in range(100_000):
        deep = ("neg", deep)
    with pytest.raises(InvalidCandidate, match=f"deeper than {MAX_DEPTH} levels"):
        Candidate.from_tree(deep, "sigmoid")
    wide = ("add", "x", 1)
    while len(repr(wide)) < 20 * MAX_NODES:  # a balanced sum: shallow, but too large
        wide = ("add", wide, wide)
    with pytest.raises(InvalidCandidate, match=f"more than {MAX_NODES} nodes"):
        Candidate.from_tree(wide, "sigmoid")
    with pytest.raises(InvalidCandidate, match="digits"):
        Candidate.from_tree(("mul", "x", 10**5000), "sigmoid")


# Found by the parser fuzz: 50 deep as written, accepted, and printed one level deeper than the parser takes.
PRINTED_TOO_DEEP = [
    (
     "softplus(2 / sqrt(3 - sqrt(i / softplus(1 - log(2 * abs(2 + sigmoid(3 * sigmoid(3 / abs(i / abs(3 - "
     "log(2 / exp(2 + tanh(i - cos(3 / abs(1 - cos(3 / cos(i - cos(i / tanh(i - relu(2 * tanh(2 + exp(2 - "
     "cos(1 / cos(3 * exp(i * i)))))))))))))))))))))))))"
    ),
    (
     "abs(2 + sigmoid(1 + relu(1 - abs(2 + sigmoid(i / sigmoid(1 + softplus(i / relu(2 * abs(i + cos(1 / s"
     "qrt(i * softplus(1 / sqrt(3 - softplus(i * sqrt(3 + exp(i - tanh(3 * sqrt(3 - sqrt(3 / sqrt(i * exp("
     "i * cos(i - sigmoid(2 + relu(1 + log(1 - i)))))))))))))))))))))))))"
    ),
]


@pytest.mark.parametrize("text", PRINTED_TOO_DEEP)
def test_a_canonical_form_whose_printed_text_nests_too_deep_is_refused(text):
    with pytest.raises(InvalidCandidate, match="printed in canonical form, the formula nests deeper than 50 levels"):
        Candidate.parse(text, "reg")
