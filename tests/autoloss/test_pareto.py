"""The Pareto hall of fame: the front, PySR's score and choice of best against hand-computed values, the complexity
measures, the penalized parent ranking and the JSON round trip."""

import json
import math

import pytest

from autoloss.evolution import hall_of_fame
from autoloss.pareto import (
    OPERATOR_WEIGHTS,
    FrontEntry,
    ParetoFront,
    Point,
    choose_best,
    pareto_front,
    pareto_hall_of_fame,
    penalized_order,
    rank_parents,
    scored,
    tree_complexity,
)
from autoloss.plots_search import plot_pareto
from autoloss.records import CandidateRecord, ProxyResult
from symbolic.operators import OPERATORS
from symbolic.parser import parse_tree


def point(key, complexity, ap, size=None):
    return Point(key, complexity, ap, complexity if size is None else size, f"f_{key}")


def keys(points):
    return [p.key for p in points]


def test_the_front_drops_dominated_points_ties_and_zero_ap():
    points = [
        point("zero", 1, 0.0),  # learned nothing: off the front although it is the simplest
        point("a", 3, 0.10),
        point("a_worse", 3, 0.08),  # same complexity, lower AP
        point("b", 5, 0.20),
        point("b_twin", 5, 0.20, size=6),  # same complexity and AP: the smaller tree wins
        point("flat", 7, 0.20),  # more complex, no better
        point("worse", 8, 0.15),
        point("c", 12, 0.27),
    ]
    assert keys(pareto_front(points)) == ["a", "b", "c"]
    assert keys(pareto_front(reversed(points))) == ["a", "b", "c"]  # order of the input does not matter
    assert pareto_front([point("z1", 1, 0.0), point("z2", 4, 0.0)]) == []
    assert pareto_hall_of_fame([point("z1", 1, 0.0)]).best is None


def test_scores_and_the_best_choice_match_hand_computed_values():
    front = pareto_hall_of_fame([point("a", 3, 0.10), point("b", 5, 0.20), point("c", 12, 0.27), point("d", 8, 0.1)])
    assert keys(e.point for e in front.front) == ["a", "b", "c"]
    # score = -Δlog(1/AP)/Δcomplexity: ln(0.20/0.10)/2 and ln(0.27/0.20)/7
    assert [e.score for e in front.front] == pytest.approx([0.0, 0.34657359, 0.04287208])
    # window AP >= 0.27/1.5 = 0.18 holds b and c; b has the higher score
    assert front.best == "b" and front.best_entry.point.ap == 0.20


def test_the_best_is_the_highest_score_within_the_window_not_overall():
    front = pareto_hall_of_fame([point("a", 2, 0.05), point("b", 3, 0.15), point("c", 10, 0.30)])
    assert [e.score for e in front.front] == pytest.approx([0.0, math.log(3), math.log(2) / 7])
    assert front.best == "c"  # b scores highest, but 0.15 < 0.30 / 1.5


def test_equal_scores_choose_the_simpler_entry_and_a_lone_entry_is_best():
    entries = [
        FrontEntry(point("a", 2, 0.5), 0.0),
        FrontEntry(point("b", 4, 0.6), 0.3),
        FrontEntry(point("c", 6, 0.7), 0.3),
    ]
    assert choose_best(entries).point.key == "b"
    assert choose_best(entries[:1]).point.key == "a" and choose_best([]) is None


def test_scoring_refuses_points_that_are_not_a_front():
    with pytest.raises(ValueError, match="not a front: b .* follows a .*; use pareto_front"):
        scored([point("a", 3, 0.2), point("b", 3, 0.3)])


def test_complexity_is_the_size_or_the_weights_of_every_operator():
    assert set(OPERATOR_WEIGHTS) == set(OPERATORS)
    tree = parse_tree("Neg(Log(Sig(X)))", "sigmoid")  # neg 1 + log 2 + sigmoid 2 + x 1
    assert tree_complexity(tree) == 4 and tree_complexity(tree, "weighted") == 6
    assert tree_complexity(parse_tree("Sin(Mul(X,2))", "sigmoid"), "weighted") == 3 + 1 + 1 + 1
    with pytest.raises(ValueError, match="unknown complexity measure 'depth'; choose one of size, weighted"):
        tree_complexity(tree, "depth")


def record(key, size, ap, status="ok"):
    return CandidateRecord(key, "sigmoid", "X", key, size, "random", 0, "", None, "",
                           proxy=ProxyResult(status, ap, None, {}, 0.0, 1))


RECORDS = [
    record("big", 20, 0.50),
    record("mid", 9, 0.44),
    record("tie", 7, 0.44),
    record("small", 3, 0.40),
    record("failed", 2, None, status="failed"),
]


def test_no_penalty_ranks_parents_exactly_as_the_hall_of_fame():
    assert rank_parents(RECORDS, 3, penalty=0.0) == hall_of_fame(RECORDS, 3)
    assert keys(penalized_order([point("x", 9, 0.3), point("y", 2, 0.3)], 0.0)) == ["y", "x"]  # ties: smaller tree


def test_a_penalty_trades_ap_for_simplicity():
    # AP - 0.005·size: big 0.400, mid 0.395, tie 0.405, small 0.385
    assert [r.key for r in rank_parents(RECORDS, 4, penalty=0.005)] == ["tie", "big", "mid", "small"]
    assert [r.key for r in rank_parents(RECORDS, 2, penalty=0.1)] == ["small", "tie"]
    with pytest.raises(ValueError, match="must be a finite number >= 0, got -1"):
        penalized_order([], -1)


def test_the_front_survives_a_json_round_trip():
    front = pareto_hall_of_fame([point("a", 3, 0.10), point("b", 5, 0.20), point("w", 6, 0.05), point("z", 1, 0.0)])
    text = json.dumps(front.to_dict(), allow_nan=False)
    assert ParetoFront.from_dict(json.loads(text)) == front
    assert len(front.candidates) == 4 and json.loads(text)["front"][1] == {
        "key": "b",
        "complexity": 5,
        "proxy_ap": 0.20,
        "size": 5,
        "formula": "f_b",
        "score": math.log(2) / 2,
    }


def test_the_plot_draws_every_candidate_the_front_as_steps_and_the_best():
    front = pareto_hall_of_fame([point("a", 3, 0.10), point("b", 5, 0.20), point("w", 6, 0.05), point("c", 12, 0.27)])
    ax = plot_pareto(front.to_dict()).axes[0]
    faint, on_front, best = ax.collections
    assert len(faint.get_offsets()) == 4 and len(on_front.get_offsets()) == 3
    assert best.get_offsets().tolist() == [[5, 0.20]] and "best (score 0.347)" in best.get_label()
    (steps,) = ax.lines
    assert steps.get_drawstyle() == "steps-post" and list(steps.get_xdata()) == [3, 5, 12, 12]
    with pytest.raises(ValueError, match="no proxy-trained candidates to plot"):
        plot_pareto(pareto_hall_of_fame([]))
