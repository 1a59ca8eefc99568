"""The evolution machine: stages, filters, dedup, selection, baselines and determinism, with fake evaluations."""

import json
import math

import pytest
from search_fakes import unit_hash, without_timings

from autoloss.evolution import Evolution, EvolutionSettings, hall_of_fame
from autoloss.records import CandidateRecord, ProxyResult
from autoloss.search_config import METHODS
from autoloss.search_state import EvolutionState
from symbolic.candidate import Candidate

SMALL = {"branch": "cls", "form": "sigmoid", "population": 6, "top_k": 2, "parents": 2, "generations": 2}


def mos_results(candidates):
    """Fake MOS: a third rejected, the rest scored by a hash of the key."""
    out = {}
    for record in candidates:
        score = unit_hash(record.key)
        out[record.key] = {"passed": score > 1 / 3, "score": score if score > 1 / 3 else math.nan,
                              "reason": None if score > 1 / 3 else "diverged", "step": None, "seconds": 0.01,
                              "loss_curve": [1.0, math.nan]}
    return out


def proxy_results(candidates):
    return {r.key: {"status": "ok", "metrics": {"AP": unit_hash("p" + r.key)}, "seconds": 1.0}
            for r in candidates}


def run(machine, state=None, *, fail=()):
    """Drive ``machine`` to the end; returns (final state, every event, every request)."""
    state = state or machine.init()
    events, requests = [], []
    while True:
        state, request = machine.ask(state)
        events += request.events
        requests.append(request)
        if request.stage == "done":
            return state, events, requests
        if request.stage == "mos":
            state, new = machine.tell(state, "mos", mos_results(request.candidates))
        elif request.stage == "proxy":
            results = proxy_results(request.candidates)
            for key in results:
                if key in fail:
                    results[key] = {"status": "failed", "reason": "diverged at step 3", "attempts": 2}
            state, new = machine.tell(state, "proxy", results)
        else:
            continue
        events += new


@pytest.fixture(scope="module")
def bred():
    """(state, request) after breeding generation 0 of SMALL."""
    machine = Evolution(EvolutionSettings(**SMALL))
    return machine.ask(machine.init())


@pytest.fixture(scope="module")
def searched():
    """A two-generation cse search with fake MOS and proxy."""
    return run(Evolution(EvolutionSettings(**SMALL)))


def test_breeding_admits_one_candidate_per_gradient_up_to_a_positive_factor(searched):
    """The third dedup layer: every admitted candidate has its own gradient, remembered across generations."""
    state, events, _ = searched
    admitted = state.dedup.gradients.admitted
    assert {key for key, _, _ in admitted} >= set(state.dedup.keys)
    assert len({fingerprint for _, _, fingerprint in admitted}) == len(admitted)
    removed = [e for e in events if (e.get("reason") or "").startswith("duplicate: same gradient")]
    assert sum(g["gradient_duplicates"] for g in state.generations) == len(removed)
    for record in state.evaluated:
        assert [record.key, record.gradient_key, record.gradient_fingerprint] in admitted


def test_generation_zero_breeds_M_unique_cpv_passing_candidates_for_mos(bred):
    state, request = bred
    assert request.stage == "mos" and len(request.candidates) == 6 and state.stage == "mos"
    assert len({r.key for r in request.candidates}) == 6
    for record in request.candidates:
        assert record.cpv.passed and record.origin == "random" and record.generation == 0
        assert "candidate" in record.__dict__ and record.candidate.key == record.key  # the funnel's, not re-parsed
        assert Candidate.parse(record.prefix, "sigmoid").key == record.key
    counts = state.current
    assert counts["generated"] == counts["unique"] + counts["duplicates"] and counts["cpv"] == 6
    assert sum(counts["rejected"].values()) == counts["unique"] - 6
    rejected = [e for e in request.events if e["status"] == "rejected"]
    assert len(rejected) == sum(counts["rejected"].values()) and all(e["reason"] for e in rejected)
    assert len({e["id"] for e in request.events}) == len(request.events)


def test_ask_is_pure_and_the_state_is_json(bred):
    machine = Evolution(EvolutionSettings(**SMALL))
    state = bred[0]
    frozen = state.to_json()
    state, events = machine.tell(state, "mos", mos_results(state.pool))
    after_json = EvolutionState.from_json(json.loads(json.dumps(state.to_json())))
    assert after_json == state and "candidate" not in after_json.pool[0].__dict__  # parsed only when needed
    first, request_a = machine.ask(state)
    second, request_b = machine.ask(after_json)
    assert request_a.candidates == request_b.candidates and first == second
    assert without_timings(list(request_a.events)) == without_timings(list(request_b.events))
    assert bred[0].to_json() == frozen and frozen["mos"] == {}  # tell did not change its input


def test_breeding_leaves_the_dedup_state_it_started_from_as_it_was(bred):
    machine = Evolution(EvolutionSettings(**SMALL))
    start = machine.init()
    again, request = machine.ask(start)
    assert len(start.dedup) == 0 and not start.dedup.fingerprints  # the funnel bred on a copy
    assert [r.key for r in request.candidates] == [r.key for r in bred[1].candidates]
    assert without_timings(again.to_json()) == without_timings(bred[0].to_json())


def test_the_same_seed_gives_the_same_search_and_another_seed_another(searched):
    again, _, _ = run(Evolution(EvolutionSettings(**SMALL)))
    assert without_timings(again.to_json()) == without_timings(searched[0].to_json())
    other, _, _ = run(Evolution(EvolutionSettings(**{**SMALL, "seed": 1})))
    assert list(other.dedup.keys) != list(searched[0].dedup.keys)


def test_mos_ranks_the_passed_and_the_best_k_go_to_the_proxy(searched):
    _, _, requests = searched
    mos = [r for r in requests if r.stage == "mos"][0]
    proxy = [r for r in requests if r.stage == "proxy"][0]
    scores = mos_results(mos.candidates)
    passed = sorted((r for r in mos.candidates if scores[r.key]["passed"]),
                    key=lambda r: (-scores[r.key]["score"], r.size, r.key))
    assert [r.key for r in proxy.candidates] == [r.key for r in passed[:2]]


def test_parents_are_the_best_of_the_whole_search_and_nothing_is_bred_twice(searched):
    state, events, _ = searched
    assert state.stage == "done" and state.generation == 2 and len(state.generations) == 2
    best = hall_of_fame(state.evaluated, 2)
    assert list(state.parents) == best
    keys = [e["key"] for e in events if e.get("stage") == "cpv" and e.get("status") == "passed"]
    assert len(keys) == len(set(keys)) == 12 and keys == list(state.dedup.keys)
    # every raw tree but the value duplicates left its fingerprint (canonical and gradient duplicates did too)
    value_duplicates = sum(g["duplicates"] - g["rejected"].get("duplicate", 0) - g["gradient_duplicates"]
                           for g in state.generations)
    assert len(state.dedup.fingerprints) == sum(g["generated"] for g in state.generations) - value_duplicates
    second = [e for e in events if e.get("generation") == 1 and e.get("status") == "passed"]
    assert {e["origin"] for e in second} <= {"mutation", "crossover"}
    summary = state.generations[0]
    assert summary["proxy"] == 2 and len(summary["proxy_aps"]) == 2 and summary["best"] == max(summary["proxy_aps"])
    assert 2 <= summary["mos"] <= summary["cpv"] == 6


def test_mos_and_proxy_events_are_logged_with_scores(searched):
    _, events, _ = searched
    mos = [e for e in events if e.get("stage") == "mos"]
    assert len(mos) == 12 and all(e["status"] in ("passed", "rejected") for e in mos)
    assert all(e["loss_curve"] == [1.0, None] for e in mos)  # NaN is logged as null
    proxy = [e for e in events if e.get("stage") == "proxy"]
    assert len(proxy) == 4 and all(e["status"] == "ok" and e["ap"] is not None for e in proxy)
    generations = [e for e in events if e.get("event") == "generation"]
    assert [g["generation"] for g in generations] == [0, 1]


def test_a_failed_proxy_evaluation_is_a_value_not_a_crash(bred):
    machine = Evolution(EvolutionSettings(**SMALL))
    state, request = bred
    state, _ = machine.tell(state, "mos", mos_results(request.candidates))
    state, request = machine.ask(state)
    failing = request.candidates[0].key
    state, events, _ = run(machine, state, fail={failing})
    failed = [r for r in state.evaluated if r.key == failing][0]
    assert failed.proxy == ProxyResult("failed", None, "diverged at step 3", {}, 0.0, 2)
    assert failing not in [r.key for r in hall_of_fame(state.evaluated, 10)]
    assert state.generations[0]["proxy_failed"] == 1 and None in state.generations[0]["proxy_aps"]


def test_hall_of_fame_breaks_ties_toward_simpler_formulas():
    records = [CandidateRecord(k, "sigmoid", "", "", s, "random", 0, "", None, "",
                               proxy=ProxyResult("ok" if ap else "failed", ap, None, {}, 0.0, 1))
               for k, s, ap in [("a", 9, 0.3), ("b", 4, 0.3), ("c", 4, 0.5), ("d", 2, None)]]
    assert [r.key for r in hall_of_fame(records, 10)] == ["c", "b", "a"]


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_a_complexity_penalty_reorders_the_parents_only_when_nonzero(bred, penalty):
    state, request = bred
    machine = Evolution(EvolutionSettings(**SMALL, complexity_penalty=penalty))
    state, _ = machine.tell(state, "mos", mos_results(request.candidates))
    state, proxy = machine.ask(state)
    big, small = sorted(proxy.candidates, key=lambda r: -r.size)
    assert big.size > small.size
    aps = {big.key: 0.5, small.key: 0.45}  # the larger tree trains better
    state, _ = machine.tell(state, "proxy", {key: {"status": "ok", "metrics": {"AP": ap}} for key, ap in aps.items()})
    state, closed = machine.ask(state)
    assert closed.stage == "generation"
    parents = [p.key for p in state.parents]
    assert parents == ([small.key, big.key] if penalty else [big.key, small.key])
    assert (parents == [r.key for r in hall_of_fame(state.evaluated, 2)]) == (not penalty)


@pytest.mark.parametrize("method", ["cpv-only", "vanilla", "random"])
def test_baselines_send_k_candidates_straight_to_the_proxy(method):
    assert not METHODS[method].mos
    machine = Evolution(EvolutionSettings(**{**SMALL, "method": method}))
    state, request = machine.ask(machine.init())
    assert request.stage == "proxy" and len(request.candidates) == 2
    checked = [r.cpv is not None for r in request.candidates]
    assert all(checked) if method == "cpv-only" else not any(checked)
    state, events, requests = run(machine, state)
    assert not [r for r in requests if r.stage == "mos"]
    second = [e for e in events if e.get("generation") == 1 and e.get("stage") == "cpv"]
    origins = {e["origin"] for e in second}
    assert origins == {"random"} if method == "random" else origins <= {"mutation", "crossover"}
    assert state.generations[0]["mos"] == state.generations[0]["cpv"]


def test_zoo_seeds_join_generation_zero():
    machine = Evolution(EvolutionSettings(**{**SMALL, "zoo_seeds": ("focal", "bce")}))
    _, request = machine.ask(machine.init())
    origins = [r.origin for r in request.candidates]
    assert origins[:2] == ["zoo:focal", "zoo:bce"]


def test_the_raw_candidate_cap_ends_breeding_early_and_the_search_goes_on():
    machine = Evolution(EvolutionSettings(**{**SMALL, "max_generated": 40}))
    state, _, _ = run(machine)
    first = state.generations[0]
    assert state.stage == "done" and first["generated"] == 40 and first["cpv"] < 6


def test_mos_batches_are_fixed_slices_of_the_pool(bred):
    machine = Evolution(EvolutionSettings(**{**SMALL, "mos_batch_size": 4}))  # breeds as SMALL does
    state, request = machine.ask(bred[0])
    assert request.candidates == state.pool[:4]
    state, _ = machine.tell(state, "mos", mos_results(request.candidates[:2]))
    _, again = machine.ask(state)
    assert again.candidates == request.candidates  # a half-done batch is asked again whole
    state, _ = machine.tell(state, "mos", mos_results(request.candidates))
    _, rest = machine.ask(state)
    assert rest.candidates == state.pool[4:]


def test_tell_refuses_results_of_another_stage_or_candidate(bred):
    machine = Evolution(EvolutionSettings(**SMALL))
    state, request = bred
    with pytest.raises(ValueError, match="told proxy results while the search is at stage 'mos'"):
        machine.tell(state, "proxy", {})
    with pytest.raises(ValueError, match="mos results for candidates not asked for: nope"):
        machine.tell(state, "mos", {"nope": {"passed": True}})


def test_settings_come_from_a_search_config():
    from autoloss.search_config import SearchConfig

    settings = EvolutionSettings.from_config(SearchConfig(branch="both", zoo_seeds=("focal", "giou"), seed=4), "reg")
    assert settings.form == "reg" and settings.zoo_seeds == ("giou",) and settings.seed == 4
    assert settings.complexity_penalty == 0.0 and settings.complexity_measure == "size"
    config = SearchConfig(complexity_penalty=0.01, complexity_measure="weighted")
    penalized = EvolutionSettings.from_config(config, "cls")
    assert penalized.complexity_penalty == 0.01 and penalized.complexity_measure == "weighted"
