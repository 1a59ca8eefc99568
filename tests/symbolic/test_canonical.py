"""Canonical form, keys, fingerprints, bounded simplify and deduplication."""

import time

import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate, bounded_simplify, canonicalize, fingerprint_rows
from symbolic.forms import FORMS, e, i, u, w, x, y
from symbolic.functions import Relu, ScaledErf, ScaledGd, Sigmoid, Softplus
from symbolic.vector_ops import Dot, Softmax


def sig(form_expr):
    return Candidate(form_expr, "sigmoid")


def test_log_sigmoid_becomes_softplus():
    assert canonicalize(sympy.log(Sigmoid(x))) == -Softplus(-x)


def test_complement_of_an_s_curve_is_its_reflection():
    assert canonicalize(1 - Sigmoid(x)) == Sigmoid(-x)
    assert canonicalize(3 - 2 * ScaledGd(x)) == 1 + 2 * ScaledGd(-x)
    assert canonicalize(sympy.log(1 - Sigmoid(x))) == -Softplus(x)
    assert canonicalize(sympy.Rational(1, 2) - Sigmoid(x)) == sympy.Rational(1, 2) - Sigmoid(x)


def test_canonicalization_is_idempotent():
    bce = -(y * sympy.log(Sigmoid(x)) + (1 - y) * sympy.log(1 - Sigmoid(x)))
    once = canonicalize(bce)
    assert canonicalize(once) == once


def test_equivalent_writings_share_a_key():
    a = sig(-(y * sympy.log(Sigmoid(x)) + (1 - y) * sympy.log(1 - Sigmoid(x))))
    b = sig(y * Softplus(-x) + (1 - y) * Softplus(x))
    c = sig(sympy.log(1 / Sigmoid(x)) * y - sympy.log(Sigmoid(-x)) * (1 - y))
    assert a.key == b.key
    assert a == b and hash(a) == hash(b)
    assert c.fingerprint == a.fingerprint


def test_the_fingerprint_collapses_what_sympy_does_not():
    tanh = sig(sympy.tanh(x) * y)
    via_sigmoid = sig((2 * Sigmoid(2 * x) - 1) * y)
    assert tanh.key != via_sigmoid.key
    assert tanh.fingerprint == via_sigmoid.fingerprint
    assert sig(ScaledErf(-x)).fingerprint == sig(1 - ScaledErf(x)).fingerprint


def test_different_functions_have_different_fingerprints():
    fingerprints = {sig(f).fingerprint for f in (x, 2 * x, x + 1, x * y, x * w, Sigmoid(x), Softplus(x))}
    assert len(fingerprints) == 7


def test_fingerprint_rounding_ignores_round_off_and_tells_non_finite_kinds_apart():
    base = np.array([1.0, -2.5, 1e-300, 7.0])
    rows = fingerprint_rows(np.stack([base, base * (1 + 1e-13), base * (1 + 1e-5)]))
    assert rows[0] == rows[1] != rows[2]
    kinds = fingerprint_rows(np.array([[np.nan], [np.inf], [-np.inf], [0.0]]))
    assert len(set(kinds)) == 4


def test_constant_subexpressions_must_be_real():
    for bad in (x + sympy.sqrt(sympy.cos(3) - 1), x + Relu(sympy.sqrt(sympy.cos(2)))):
        with pytest.raises(InvalidCandidate, match="real"):
            Candidate(bad, "sigmoid")
    assert Candidate(x + sympy.log(2), "sigmoid").size == 4


def test_keys_depend_on_the_form():
    assert Candidate(x * y, "sigmoid").key != Candidate(Dot(x, y), "softmax").key


@pytest.mark.parametrize(
    "expr, form, reason",
    [
        (x / 0, "sigmoid", "zoo"),
        (sympy.log(0) * x, "sigmoid", "oo"),
        (sympy.sqrt(-1 - Sigmoid(x) ** 2) * 0 + sympy.sqrt(-2) * x, "sigmoid", "I"),
        (sympy.Float(0.5) * x, "sigmoid", "floating-point"),
        (sympy.sin(w) + y, "sigmoid", "must depend on x"),
        (x - x + y, "sigmoid", "must depend on x"),
        (x * i, "sigmoid", "do not belong"),
        (u / e, "reg", "must depend on i"),
        (sympy.log(Softmax(x)), "softmax", "vector over classes"),
        (Dot(x, y) + x, "softmax", "vector over classes"),
        (Softmax(Dot(x, y)), "softmax", "softmax of a per-sample value"),
    ],
)
def test_invalid_candidates_say_why(expr, form, reason):
    with pytest.raises(InvalidCandidate) as caught:
        Candidate(expr, form)
    assert reason in caught.value.reason


def test_bounded_simplify_returns_within_its_budget():
    expr = sympy.sin(x) ** 2 + sympy.cos(x) ** 2 + x
    simplified, finished = bounded_simplify(expr, seconds=5)
    assert finished and simplified == x + 1
    hard = sum(sympy.exp(sympy.sin(x + k) ** 3) / (1 + sympy.tanh(x * k) ** 2) for k in range(1, 30))
    start = time.perf_counter()
    result, finished = bounded_simplify(hard, seconds=0.2)
    assert time.perf_counter() - start < 2.0
    if not finished:
        assert result == hard


def test_probe_inputs_are_fixed_and_admissible():
    for form in FORMS.values():
        first, second = form.probe_inputs(), form.probe_inputs()
        for name in form.input_names:
            assert (first[name] == second[name]).all()
    sigmoid = FORMS["sigmoid"].probe_inputs()
    assert ((sigmoid["y"] == 1) | (sigmoid["w"] == 0)).all()
    reg = FORMS["reg"].probe_inputs()
    assert (reg["i"] >= 0).all() and (reg["i"] <= reg["u"]).all() and (reg["u"] <= reg["e"] + 1e-9).all()
