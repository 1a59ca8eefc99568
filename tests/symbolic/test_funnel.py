"""The filter funnel: each layer removes what it should, in order; its dedup state round-trips through JSON."""

import json
import random

import sympy

from symbolic.candidate import Candidate
from symbolic.forms import x, y
from symbolic.functions import Sigmoid
from symbolic.funnel import FIRST_CHUNK, LAYERS, DedupState, Funnel
from symbolic.parser import parse_tree
from symbolic.variation import random_tree
from symbolic.zoo import KNOWN_LOSSES

BCE = "-(y*log(sigmoid(x)) + (1 - y)*log(1 - sigmoid(x)))"


def layers(funnel, texts, form="sigmoid"):
    return [s.layer for s in funnel.sift([(parse_tree(text, form), text) for text in texts])]


def test_each_dedup_layer_removes_its_duplicates_and_names_the_earlier_candidate():
    funnel = Funnel("sigmoid", cpv=False)
    texts = ["-log(sigmoid(x))", "softplus(-x)", "2*sigmoid(x) - 1", "tanh(x/2)", BCE, f"2*{BCE} + 3"]
    assert layers(funnel, texts) == ["passed", "value", "passed", "value", "passed", "gradient"]
    first = Candidate.parse(BCE, "sigmoid")
    last = next(funnel.sift([(Candidate.parse(f"{BCE}/3 + 1", "sigmoid"), "again")]))
    assert last.layer == "gradient" and first.key in last.reason and last.candidate is not None
    assert len(funnel.dedup) == 3


def test_built_candidates_go_through_the_same_layers():
    funnel = Funnel("sigmoid", cpv=False)
    first = Candidate(sympy.tanh(x) * y, "sigmoid")
    same_values = Candidate((2 * Sigmoid(2 * x) - 1) * y, "sigmoid")
    sifted = list(funnel.sift([(first, "a"), (same_values, "b"), (Candidate(x * y, "sigmoid"), "c")]))
    assert [s.layer for s in sifted] == ["passed", "value", "passed"] and sifted[0].candidate is first
    known_key = Funnel("sigmoid", cpv=False, dedup=DedupState(keys=[first.key]))  # its values not seen
    again = next(known_key.sift([(Candidate(y * sympy.tanh(x), "sigmoid"), "d")]))
    assert again.layer == "canonical" and first.key in again.reason


def test_cpv_rejects_in_the_sampled_screen_or_in_verify_and_a_failure_keeps_its_key_free():
    funnel = Funnel("sigmoid", cpv=True)
    sifted = list(funnel.sift([(parse_tree("sin(x)", "sigmoid"), "sin"), (KNOWN_LOSSES["bce"].candidate.tree, "bce")]))
    assert [s.layer for s in sifted] == ["sampled_cpv", "passed"]
    assert sifted[0].tally_key == "cpv: monotonicity" and sifted[1].cpv.passed
    assert list(funnel.dedup.keys) == [sifted[1].candidate.key]


def test_the_dedup_state_round_trips_through_json_and_a_restored_funnel_remembers():
    funnel = Funnel("reg", cpv=False)
    layers(funnel, ["1 - i/u", "1 - i/e", "i*u"], "reg")
    restored = DedupState.from_json(json.loads(json.dumps(funnel.dedup.to_json())))
    assert restored == funnel.dedup and restored.to_json() == funnel.dedup.to_json()
    copy = restored.copy()
    assert layers(Funnel("reg", cpv=False, dedup=copy), ["1 - i/u", "2 - 2*i/u", "1 - i/e + 1"], "reg") == [
        "value", "gradient", "gradient"]
    assert restored == funnel.dedup != copy  # the copy is independent


def test_fill_stops_at_the_target_or_the_limit_and_counts_every_tree_once():
    rng = random.Random(0)
    draw = lambda n: [(random_tree(rng, "sigmoid", max_depth=4), "random") for _ in range(n)]  # noqa: E731
    chunks = []
    sifted = list(Funnel("sigmoid", cpv=False).fill(draw, target=3, limit=5000, on_chunk=lambda: chunks.append(1)))
    assert sum(s.passed for s in sifted) == 3 and sifted[-1].passed and chunks == [1]
    assert {s.layer for s in sifted} <= set(LAYERS) and len(sifted) < FIRST_CHUNK
    same = lambda n: [(parse_tree("-log(sigmoid(x))", "sigmoid"), "same")] * n  # noqa: E731
    capped = list(Funnel("sigmoid", cpv=False).fill(same, target=2, limit=300, on_chunk=lambda: chunks.append(2)))
    assert [s.layer for s in capped] == ["passed"] + ["value"] * 299
    assert chunks == [1, 2, 2]  # a chunk of 256, then the 44 left
