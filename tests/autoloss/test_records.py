"""Typed records and state of a search: JSON round trips, the funnel's candidate carried along, stage results cleaned,
a damaged or older checkpoint refused."""

import json
import math

import pytest

from autoloss.records import CandidateRecord, MosResult, ProxyResult
from autoloss.run_store import RunDirectoryError
from autoloss.search_state import STATE_VERSION, EvolutionState, SearchState
from symbolic.funnel import Funnel
from symbolic.zoo import KNOWN_LOSSES


def funnel_record() -> CandidateRecord:
    sifted = next(Funnel("sigmoid").sift([(KNOWN_LOSSES["bce"].candidate.tree, "zoo:bce")]))
    assert sifted.passed
    return CandidateRecord.of(sifted, generation=2)


def test_a_record_round_trips_through_json_and_parses_its_candidate_only_when_read_back():
    record = funnel_record()
    record = record.replace(mos=MosResult.of({"passed": True, "score": 0.4, "seconds": 0.123456}),
                            proxy=ProxyResult.of({"status": "ok", "metrics": {"AP": 0.3, "AP50": math.nan,
                                                                              "train_seconds": 2.0}}))
    assert "candidate" in record.__dict__  # replace keeps the funnel's candidate
    assert (record.origin, record.generation, record.cpv.passed) == ("zoo:bce", 2, True)
    assert record.gradient_fingerprint == record.candidate.gradient_fingerprint
    back = CandidateRecord.from_json(json.loads(json.dumps(record.to_json(), allow_nan=False)))
    assert back == record and "candidate" not in back.__dict__
    assert back.candidate.key == record.key and back.candidate.prefix() == record.prefix
    assert back.mos.seconds == 0.1235 and back.proxy.metrics == {"AP": 0.3, "AP50": None}


def test_results_that_are_not_finite_are_failures_with_a_reason():
    assert ProxyResult.of({"status": "ok", "metrics": {"AP": math.nan}}) == ProxyResult(
        "failed", None, "the proxy AP is not finite", {"AP": None}, 0.0, 1)
    failed = ProxyResult.of({"status": "failed", "reason": "diverged", "attempts": 2})
    assert not failed.succeeded and failed.reason == "diverged" and failed.attempts == 2
    assert MosResult.of({"passed": False, "score": math.inf, "reason": "diverged", "step": 3}).score is None


def test_the_search_state_round_trips_and_a_damaged_or_unversioned_one_is_refused():
    record = funnel_record()
    evo = EvolutionState("cls", "sigmoid", "cse", stage="mos", pool=(record,), current={"generation": 0})
    state = SearchState(branches={"cls": evo}, seconds={"total": 1.5})
    data = json.loads(json.dumps(state.to_json()))
    assert data["version"] == STATE_VERSION and SearchState.from_json(data) == state
    del data["branches"]["cls"]["pool"]
    with pytest.raises(RunDirectoryError, match=r"ckpt is damaged: not a search state of version \d+ \(KeyError"):
        SearchState.from_json(data, "ckpt")
    with pytest.raises(RunDirectoryError, match="ckpt: checkpoint version None cannot be read"):
        SearchState.from_json({"stage": "search", "branches": {}}, "ckpt")
