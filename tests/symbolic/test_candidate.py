"""Candidate: immutability, identity by key, size and depth, construction from trees."""

import dataclasses

import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import FORMS, i, u, x, y
from symbolic.functions import Sigmoid, Softplus


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
