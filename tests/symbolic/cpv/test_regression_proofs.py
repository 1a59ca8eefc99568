"""Distance-loss consistency: the one principle, its three directions, and the path-family fallback."""


import numpy as np
import pytest

from symbolic.candidate import Candidate
from symbolic.cpv.grids import probe_for
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.regression_proofs import prove_cone, prove_consistency, prove_on_paths
from symbolic.zoo import KNOWN_LOSSES


def test_every_probe_path_is_a_move_away_in_the_principles_sense():
    probe = probe_for("reg")
    i, u, e = (probe.inputs[name][probe.paths] for name in "iue")
    iou, ratio = i / u, u / e
    slack = 1e-9
    assert (np.diff(iou, axis=1) <= slack).all() and (np.diff(ratio, axis=1) <= slack).all()
    assert (np.diff(i, axis=1) <= slack * i[:, :-1]).all()  # the overlap never grows either
    assert (np.diff(u, axis=1) >= -slack * u[:, 1:]).all() and (np.diff(e, axis=1) >= -slack * e[:, 1:]).all()


@pytest.mark.parametrize("name", ["iou", "giou", "cse_a_reg"])
def test_iou_style_losses_never_fall_under_any_move_away(name):
    proof = prove_cone(KNOWN_LOSSES[name].candidate.expr, clock() + 10)
    assert proof.status == "proved" and "area e > 0" in proof.domain


def test_a_loss_in_raw_areas_is_proved_by_the_directions_in_i_u_e():
    proof = prove_cone(Candidate.parse("e - i - tanh(e)", "reg").expr, clock() + 10)
    assert proof.status == "proved" and "(i, u, e)" in proof.argument and "area e > 0" in proof.domain


@pytest.mark.parametrize("text", ["exp(e/i)", "e/(i*sigmoid(u))"])
def test_a_loss_unbounded_at_iou_zero_rises_half_way_and_so_to_the_end(text):
    proof = prove_consistency(Candidate.parse(text, "reg").expr, clock() + 10)
    assert proof.status == "proved" and "half way" in proof.argument


def test_cse_b_reg_is_proved_on_every_path_at_every_scale():
    expr = KNOWN_LOSSES["cse_b_reg"].candidate.expr
    # it does fall when union and enclosing box grow together (disjoint boxes, large areas): not a probe move
    assert prove_cone(expr, clock() + 10).status == "undecided"
    proof = prove_on_paths(expr, clock() + 20)
    assert proof.status == "proved" and "every box area A > 0" in proof.domain


def test_a_loss_that_rewards_moving_away_is_refuted_with_a_point():
    proof = prove_consistency(Candidate.parse("i/u", "reg").expr, clock() + 10)
    assert proof.status == "refuted" and {"t", "A", "i", "u", "e"} <= set(proof.counterexample)


@pytest.mark.parametrize("text", ["u/sqrt(i)", "-sqrt(i) + 2*u"])
def test_a_root_of_an_area_is_proved_at_every_scale(text):
    # the rational sign analysis writes A = s**2 (increasing), so sqrt(A) terms are polynomial in s
    proof = prove_on_paths(Candidate.parse(text, "reg").expr, clock() + 20)
    assert proof.status == "proved" and "every box area A > 0" in proof.domain
