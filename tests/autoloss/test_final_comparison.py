"""The final evaluation across seeds: the comparison rule, rows grouped from trainings, more seeds while a
difference is within the spread, and a search that trains them, resumes them and reports them."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

import autoloss
from autoloss.final_comparison import (
    Comparison,
    compare,
    final_table,
    schedule_caveat,
    seeds_wanted,
    training_key,
)
from autoloss.report_command import final_section
from autoloss.run_store import CHECKPOINT
from autoloss.search_config import SearchConfig, SearchConfigError
from autoloss.search_report import format_final
from autoloss.search_result import SearchResult
from autoloss.training_tasks import default_losses, task_spec
from benchmarks.search_demo import method_rows


def test_the_rule_is_the_paired_difference_against_the_sum_of_the_seed_spreads():
    better = compare({0: 0.50, 1: 0.52, 2: 0.51}, {0: 0.45, 1: 0.46, 2: 0.44})
    assert better.verdict == "better" and better.settled and better.delta == pytest.approx(0.06)
    assert better.spread == pytest.approx(0.01 + 0.01) and 0 < better.p_value < 0.05
    within = compare({0: 0.50, 1: 0.46}, {0: 0.47, 1: 0.48})
    assert within.verdict == "within the seed spread" and not within.settled
    assert compare({0: 0.40, 1: 0.41}, {0: 0.50, 1: 0.51}).verdict == "worse"
    assert compare({0: 0.25, 1: 0.5}, {0: 0.5, 1: 0.75}).p_value is None  # identical differences: no t-test
    one = compare({0: 0.6, 5: 0.1}, {0: 0.5})
    assert (one.verdict, one.seeds, one.spread) == ("one seed", (0,), None) and not one.settled
    assert compare({1: 0.5}, {0: 0.5}).verdict == "not comparable"
    assert Comparison.from_dict(json.loads(json.dumps(better.to_dict()))) == better
    assert better.text().startswith("+6.0 AP over 3 seeds, seed spread 2.0, paired t-test p = ")
    assert better.text().endswith(": better")


def entry(row, seed, ap, status="ok"):
    return {"row": row, "seed": seed, "status": status, "reason": None if status == "ok" else "diverged",
            "losses": {"cls": row, "reg": "giou"}, "metrics": {"AP": ap, "AP50": 2 * ap} if status == "ok" else {},
            "seconds": 1.0, "out_dir": f"final/{training_key(row, seed, 0)}"}


def test_trainings_group_into_rows_with_their_mean_spread_and_paired_difference():
    trainings = {training_key(row, seed, 0): entry(row, seed, ap) for row, seed, ap in
                 [("found", 0, 0.5), ("baseline", 0, 0.4), ("found", 1, 0.7), ("baseline", 1, 0.4),
                  ("baseline", 2, 0.1)]}
    trainings["found-seed2"] = entry("found", 2, None, status="failed")
    table = final_table(trainings)
    assert list(table) == ["baseline", "found"]
    found, baseline = table["found"], table["baseline"]
    assert found["metrics"]["AP"] == pytest.approx(0.6) and found["std"]["AP"] == pytest.approx(0.1414, abs=1e-4)
    assert found["seeds"] == {"0": 0.5, "1": 0.7} and found["failed"] == {"2": "diverged"}
    assert baseline["metrics"]["AP"] == pytest.approx(0.3) and baseline["delta"] is None
    assert found["delta"]["AP"] == pytest.approx(0.2)  # paired: seed 2 of the baseline has no partner
    assert found["comparison"]["seeds"] == [0, 1] and found["out_dir"] == "final/found"
    json.dumps(table)
    old = {"baseline": {"status": "ok", "losses": {}, "metrics": {"AP": 0.2}},  # a run from before seeds
           "found": {"status": "ok", "losses": {}, "metrics": {"AP": 0.3}}}
    assert final_table(old)["found"]["comparison"]["verdict"] == "one seed"
    assert final_table(old)["found"]["delta"]["AP"] == pytest.approx(0.1)


def test_a_found_row_within_the_spread_asks_for_one_more_seed_of_both_up_to_the_maximum():
    rows = ["baseline", "found"]
    assert seeds_wanted({}, rows, 7, 2, 3) == {"baseline": [7, 8], "found": [7, 8]}

    def table_of(found_aps, baseline_aps):
        trainings = {f"found{s}": entry("found", s, ap) for s, ap in found_aps.items()}
        trainings.update({f"baseline{s}": entry("baseline", s, ap) for s, ap in baseline_aps.items()})
        return final_table(trainings)

    within = table_of({0: 0.50, 1: 0.46}, {0: 0.47, 1: 0.48})
    assert seeds_wanted(within, rows, 0, 2, 3) == {"baseline": [0, 1, 2], "found": [0, 1, 2]}
    assert seeds_wanted(within, rows, 0, 2, 2) == {"baseline": [0, 1], "found": [0, 1]}
    beyond = table_of({0: 0.60, 1: 0.61}, {0: 0.47, 1: 0.48})
    assert seeds_wanted(beyond, rows, 0, 2, 5) == {"baseline": [0, 1], "found": [0, 1]}
    unfinished = table_of({0: 0.50}, {0: 0.47, 1: 0.48})  # seed 1 of found not trained yet: nothing more
    assert seeds_wanted(unfinished, rows, 0, 2, 5) == {"baseline": [0, 1], "found": [0, 1]}
    at_three = table_of({0: 0.50, 1: 0.46, 2: 0.48}, {0: 0.47, 1: 0.48, 2: 0.47})
    assert seeds_wanted(at_three, rows, 0, 2, 3)["found"] == [0, 1, 2]
    assert seeds_wanted(table_of({0: 0.5}, {0: 0.4}), rows, 0, 1, 2)["found"] == [0, 1]  # one seed cannot say


def test_settings_refuse_fewer_maximum_seeds_than_seeds():
    with pytest.raises(SearchConfigError, match="'final_max_seeds' \\(1\\) cannot be below 'final_seeds' \\(2\\)"):
        SearchConfig(final_seeds=2, final_max_seeds=1)
    assert SearchConfig.preset("paper").final_seeds == 1


def seed_noise_proxy(spec):
    """``fake_proxy`` with AP moved by the seed, so that found and baseline overlap across seeds."""
    result = fake_proxy(spec)
    if spec.get("out_dir"):  # a final training
        ap = 0.3 + 0.05 * (spec["seed"] % 2)
        result["metrics"] = {**result["metrics"], "AP": ap + (0.01 if "prefix" in spec["cls"] else 0.0)}
    return result


def run(run_dir, proxy, **settings):
    config = SearchConfig(population=6, generations=1, top_k=2, parents=2, final_steps=2, **settings)
    with ThreadPoolExecutor(2) as executor:
        return autoloss.search(config, run_dir=run_dir, simulator=FakeSimulator, executor=executor,
                               proxy_task=proxy, progress=False)


def test_the_search_adds_seeds_while_the_winner_is_within_the_spread_and_reports_it(tmp_path):
    result = run(tmp_path / "run", seed_noise_proxy, final_max_seeds=4)
    found = result.final["found"]
    assert found["seeds"].keys() == {"0", "1", "2", "3"} and result.final["baseline"]["seeds"].keys() == {
        "0", "1", "2", "3"}
    assert found["comparison"]["verdict"] == "within the seed spread"
    trainings = json.loads((tmp_path / "run" / CHECKPOINT).read_text())["final"]
    assert trainings["found-seed3"]["seed"] == 3 and trainings["found"]["seed"] == 0
    assert sorted(trainings) == sorted(f"{row}{suffix}" for row in ("baseline", "found")
                                       for suffix in ("", "-seed1", "-seed2", "-seed3"))
    section = "\n".join(final_section(result))
    assert "with seeds 0, 1, 2, 3 (up to 4" in section and "found vs baseline: +1.0 AP over 4 seeds" in section
    assert "| found | 33.5 ± 2.9 |" in section and "seed spread 5.8: within the seed spread" in section
    assert "**Note.** The final schedule (2 steps) is shorter than the fcos default (6000 steps" in section
    text = "\n".join(format_final(json.loads((tmp_path / "run" / "result.json").read_text())))
    assert "seeds 0, 1, 2, 3" in text and "within the seed spread" in text
    assert "note: The final schedule (2 steps) is shorter" in text
    assert schedule_caveat("fcos", 6000) is None and "3000 steps" in schedule_caveat("faster-rcnn", 1000)
    demo_rows = "\n".join(method_rows("cse", result))  # the demo search's section of RESULTS.md
    assert "| 33.5 ± 2.9 (+1.0) |" in demo_rows and "* found vs baseline: +1.0 AP over 4 seeds" in demo_rows
    settled = run(tmp_path / "settled", fake_proxy)  # the fake's AP does not depend on the seed: two suffice
    assert settled.final["found"]["seeds"].keys() == {"0", "1"}
    assert settled.final["found"]["comparison"]["verdict"] in ("better", "worse")


def test_a_search_killed_between_final_seeds_trains_only_the_missing_ones(tmp_path):
    run(tmp_path / "run", seed_noise_proxy, final_max_seeds=3)
    checkpoint = tmp_path / "run" / CHECKPOINT
    state = json.loads(checkpoint.read_text())
    state["stage"] = "final"
    for key in ("found-seed2", "baseline-seed2"):
        del state["final"][key]
    checkpoint.write_text(json.dumps(state))
    trained = []

    def counting_proxy(spec):
        trained.append((spec.get("out_dir") or "").rsplit("/", 1)[-1])
        return seed_noise_proxy(spec)

    config = SearchConfig(population=6, generations=1, top_k=2, parents=2, final_steps=2, final_max_seeds=3)
    with ThreadPoolExecutor(2) as executor:
        resumed = autoloss.search(config, run_dir=tmp_path / "run", resume=True, simulator=FakeSimulator,
                                  executor=executor, proxy_task=counting_proxy, progress=False)
    assert sorted(trained) == ["baseline-seed2", "found-seed2"]
    assert SearchResult.load(tmp_path / "run").final == resumed.final


def test_the_final_evaluation_has_its_own_learning_rate_or_the_proxys():
    losses = default_losses(SearchConfig())
    tuned = SearchConfig(final_learning_rate=5e-3)
    assert task_spec(tuned, losses, final=True)["learning_rate"] == 5e-3
    assert task_spec(tuned, losses, branch="cls")["learning_rate"] == 2e-3  # the proxy keeps learning_rate
    assert task_spec(SearchConfig(), losses, final=True)["learning_rate"] == SearchConfig().learning_rate
