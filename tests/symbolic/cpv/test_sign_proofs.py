import math
import time

import pytest
import sympy

from symbolic.cpv.proof_worker import clock
from symbolic.cpv.rational_signs import prove_rational_sign
from symbolic.cpv.sign_proofs import assumption_sign, decide_sign, prepare, prove_sign, rewrite_complements
from symbolic.forms import x
from symbolic.functions import ScaledGd, Sigmoid, Softplus

t = sympy.Symbol("t", positive=True)
A = sympy.Symbol("A", positive=True)
INF = math.inf


def test_complement_rewrite_is_exact_and_removes_cancellation():
    expr = 1 - Sigmoid(x) + 2 - 2 * sympy.tanh(x) ** 2
    rewritten = rewrite_complements(expr)
    assert rewritten.has(Sigmoid(-x)) and not rewritten.has(sympy.tanh)
    for value in (-3.0, 0.5, 7.0):
        assert float(expr.subs(x, value).evalf()) == pytest.approx(float(rewritten.subs(x, value).evalf()), rel=1e-12)
    assert all(form.free_symbols == {x} for form in prepare(expr))


def test_branch_and_bound_proves_refutes_and_respects_the_deadline():
    deadline = clock() + 2
    proof = prove_sign(sympy.diff(Softplus(-x) + (1 - Sigmoid(x)) ** 2, x), {x: (-100.0, 100.0)}, "nonpositive",
                       deadline=deadline)
    assert proof.status == "proved"
    refuted = prove_sign(sympy.cos(x), {x: (-100.0, 100.0)}, "nonpositive", deadline=deadline)
    assert refuted.status == "refuted"
    assert math.cos(refuted.counterexample["x"]) > 0
    start = time.perf_counter()
    stuck = prove_sign(sympy.sin(x) ** 2, {x: (-100.0, 100.0)}, "positive", deadline=clock() + 0.2)
    assert stuck.status in ("undecided", "refuted") and time.perf_counter() - start < 1.0


def test_assumptions_decide_simple_derivatives_for_all_reals():
    assert assumption_sign(-Sigmoid(-x), "nonpositive")
    assert not assumption_sign(sympy.sin(x), "nonpositive")


def test_branch_and_bound_covers_the_whole_real_line():
    derivative = sympy.diff(Softplus(-x) + Sigmoid(-x) ** 2, x)
    proof = prove_sign(derivative, {x: (-INF, INF)}, "nonpositive", deadline=clock() + 5)
    assert proof.status == "proved" and proof.domain == "all real x"
    assert prove_sign(sympy.diff(sympy.cos(ScaledGd(x)), x), {x: (-INF, INF)}, "nonpositive",
                      deadline=clock() + 5).domain == "all real x"


def test_a_proof_reports_how_far_it_reached_beyond_the_required_range():
    # x·σ(−x) − 1 ≤ 0 everywhere, but the tail [X, ∞) never bounds x·σ(−x) below 1 by intervals
    proof = prove_sign(x * Sigmoid(-x) - 1, {x: (-INF, INF)}, "nonpositive", deadline=clock() + 5,
                       required={x: (-100.0, 100.0)})
    assert proof.status == "proved" and proof.domain.startswith("x <= ")
    refuted = prove_sign(-x * Sigmoid(-x) - 1, {x: (-INF, INF)}, "nonpositive", deadline=clock() + 5,
                         required={x: (-100.0, 100.0)})
    point = refuted.counterexample["x"]
    assert refuted.status == "refuted" and -100 <= point <= 100 and -point * float(Sigmoid(-point)) - 1 > 0


def test_rational_sign_analysis_holds_at_every_scale():
    # the slope of CSE-Autoloss-B's regression loss along a translation: cancels under plain intervals
    numerator = (6 * A**3 * t**2 + 12 * A**3 * t + 6 * A**3 - 9 * A**2 * t**2 + 78 * A**2 * t + 75 * A**2
                 + 108 * A * t + 282 * A + 270)
    slope = numerator / (A * (3 * t + 1) ** 2 * (A * t + A + 5) ** 2)
    proof = prove_rational_sign(slope, {t: (0.0, 1.0), A: (0.0, INF)}, "nonnegative", clock() + 5,
                                decide=decide_sign)
    assert proof.status == "proved" and "A >= 0" in proof.domain
    assert prove_rational_sign(slope - 1, {t: (0.0, 1.0), A: (0.0, INF)}, "nonnegative", clock() + 5,
                               decide=decide_sign).status == "undecided"


def test_log_sigmoid_is_rewritten_as_a_negative_softplus():
    assert rewrite_complements(sympy.log(Sigmoid(x))) == -Softplus(-x)
    assert assumption_sign(sympy.log(Sigmoid(x)), "nonpositive")


def test_a_wrong_sign_at_a_sample_point_refutes_without_branching():
    proof = prove_sign(sympy.cos(x) - 0.5, {x: (-INF, INF)}, "nonnegative", deadline=clock() + 5,
                       required={x: (-100.0, 100.0)})
    assert proof.status == "refuted" and math.cos(proof.counterexample["x"]) < 0.5


def test_sums_collected_by_their_variables_keep_their_sign_at_every_scale():
    r, v = sympy.symbols("r v", nonnegative=True)
    expr = -A * r * sympy.sign(-A * r * v + A + 2)  # dL/dv of |e - i + 2| in (v, u, e)
    proof = prove_sign(expr, {v: (0.0, 1.0), r: (0.0, 1.0), A: (0.0, INF)}, "nonpositive",
                       deadline=clock() + 5, log_scale=(A,))
    assert proof.status == "proved"
