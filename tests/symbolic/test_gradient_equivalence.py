"""Gradient equivalence: L, L + c and k·L (k > 0) are one candidate; −L, a sample reweighting and others are not."""

import random

import numpy as np
import pytest

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import get_form
from symbolic.funnel import Funnel
from symbolic.gradient_equivalence import GradientIndex, gradient_key, probe_gradient
from symbolic.variation import random_tree
from symbolic.zoo import KNOWN_LOSSES

BCE = "(y*log(sigmoid(x)) + (1 - y)*log(1 - sigmoid(x)))"
EQUIVALENT = {
    "sigmoid": ["-" + BCE, f"-2*{BCE} + 3", f"-{BCE} + w + 1", f"-log(2)*{BCE}", f"1 - {BCE}/3",
                "-(y*log(2*sigmoid(x)) + (1 - y)*log(1 - sigmoid(x)))"],
    "softmax": ["-dot(y, log(softmax(x)))", "-2*dot(y, log(softmax(x))) + dot(y, w)",
                "3 - dot(y, log(softmax(x)))/2", "-dot(y, log(2*softmax(x)))"],
    "reg": ["1 - i/u", "3 - 2*i/u", "2 - i/u"],
}
DIFFERENT = {
    "sigmoid": [BCE, f"-(1 + w)*{BCE}", f"-{BCE} + x", "-log(sigmoid(x))"],
    "softmax": ["-dot(w, log(softmax(x)))", "-dot(y, log(softmax(2*x)))"],
    "reg": ["1 - i/u + e", "1 - i/e", "1 - i/u + (e - u)/e"],
}


@pytest.mark.parametrize("form", sorted(EQUIVALENT))
def test_a_loss_its_shift_and_positive_multiples_share_the_gradient_key_and_fingerprint(form):
    candidates = [Candidate.parse(text, form) for text in EQUIVALENT[form]]
    assert len({c.key for c in candidates}) == len(candidates)  # distinct to the other two layers
    assert len({c.fingerprint for c in candidates}) == len(candidates)
    assert {c.gradient_key for c in candidates} == {candidates[0].gradient_key} != {None}
    assert {c.gradient_fingerprint for c in candidates} == {candidates[0].gradient_fingerprint}


@pytest.mark.parametrize("form", sorted(DIFFERENT))
def test_a_negation_a_sample_reweighting_or_another_term_is_another_gradient(form):
    first = Candidate.parse(EQUIVALENT[form][0], form)
    for text in DIFFERENT[form]:
        other = Candidate.parse(text, form)
        assert other.gradient_key != first.gradient_key, text
        assert other.gradient_fingerprint != first.gradient_fingerprint, text


def test_the_symbolic_key_is_skipped_past_its_bounds_and_the_fingerprint_still_decides(monkeypatch):
    import symbolic.gradient_equivalence as module

    monkeypatch.setattr(module, "MAX_DERIVATIVE_OPS", 1)
    loss = KNOWN_LOSSES["cse_b_cls"].candidate
    assert gradient_key(loss) is None
    index = GradientIndex()
    scaled = Candidate(2 * loss.expr + 1, loss.form)
    assert index.duplicate_of(_fresh(loss)) is None
    assert "on every probe input" in index.duplicate_of(_fresh(scaled))


def _fresh(candidate):
    """The candidate rebuilt, so no gradient identity is cached on it."""
    return Candidate(candidate.expr, candidate.form)


def test_the_index_names_the_earlier_candidate_and_round_trips_its_entries():
    index = GradientIndex()
    first, scaled = (Candidate.parse(t, "reg") for t in EQUIVALENT["reg"][:2])
    assert index.duplicate_of(first) is None
    assert first.key in index.duplicate_of(scaled) and "symbolic" in index.duplicate_of(scaled)
    again = GradientIndex(index.admitted)
    assert first.key in again.duplicate_of(scaled) and len(again) == 1


def test_the_funnel_removes_gradient_duplicates_as_its_third_dedup_layer():
    funnel = Funnel("sigmoid", cpv=False)
    texts = EQUIVALENT["sigmoid"] + DIFFERENT["sigmoid"]
    sifted = list(funnel.sift([(Candidate.parse(text, "sigmoid"), text) for text in texts]))
    assert sifted[0].passed and all("same gradient" in s.reason for s in sifted[1:len(EQUIVALENT["sigmoid"])])
    assert [s.layer for s in sifted[len(EQUIVALENT["sigmoid"]):]] == ["passed"] * len(DIFFERENT["sigmoid"])


def test_random_candidates_share_a_gradient_fingerprint_only_when_their_gradients_are_proportional():
    """No false merges in a random population (checked on other inputs); the symbolic key implies the fingerprint."""
    rng, by_fingerprint, by_key = random.Random(3), {}, {}
    other_inputs = get_form("sigmoid").probe_inputs(seed=7)
    for _ in range(150):
        try:
            candidate = Candidate.from_tree(random_tree(rng, "sigmoid", max_depth=4), "sigmoid")
        except InvalidCandidate:
            continue
        by_fingerprint.setdefault(candidate.gradient_fingerprint, []).append(candidate)
        if candidate.gradient_key is not None:
            by_key.setdefault(candidate.gradient_key, set()).add(candidate.gradient_fingerprint)
    assert all(len(fingerprints) == 1 for fingerprints in by_key.values())
    merged = [group for group in by_fingerprint.values() if len({c.key for c in group}) > 1]
    assert merged
    for group in merged:
        first = probe_gradient(group[0], other_inputs)
        for other in group[1:]:
            ratio = probe_gradient(other, other_inputs) / np.where(first == 0, 1.0, first)
            assert np.allclose(ratio[first != 0], ratio[first != 0][0], rtol=1e-5), (group[0], other)
            assert ratio[first != 0][0] > 0
