"""``autoloss.search``: the Python API, both branches, baselines, failures as values, reports that plots read,
and a real end-to-end run (tiny detector trainings in worker processes)."""

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest
from search_fakes import FakeSimulator, fake_proxy

import autoloss
from autoloss import proxy
from autoloss.plots_search import plot_funnel, plot_pareto, plot_search_progress
from autoloss.proxy import initial_params, train_and_evaluate
from autoloss.run_store import HALL_OF_FAME, PROGRESS, RESULT, RunStore
from autoloss.search_config import SearchConfig, SearchConfigError
from autoloss.search_driver import check_workers_data
from autoloss.search_result import SearchResult
from autoloss.training_tasks import default_losses, simulation_config, task_spec, warm_start_params
from detection.detectors import get_detector
from detection.shapes import ensure_shapes_dataset
from simulate.heads import OUTPUT_LAYERS
from simulate.simulation import warm_start_of
from symbolic.candidate import Candidate

SMALL = {"population": 6, "generations": 2, "top_k": 2, "parents": 2, "final_steps": 2}


def run_search(run_dir, proxy=fake_proxy, simulator=FakeSimulator, **settings):
    with ThreadPoolExecutor(2) as executor:
        return autoloss.search(SearchConfig(**{**SMALL, **settings}), run_dir=run_dir, simulator=simulator,
                               executor=executor, proxy_task=proxy, progress=False)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A search of both branches: cls, then reg, then the winners together."""
    return run_search(tmp_path_factory.mktemp("both") / "run", branch="both", generations=1)


def test_the_api_returns_found_losses_as_candidates(both):
    assert both.finished and set(both.winners) == {"cls", "reg"} and both.best is both.winners["cls"]
    for loss in both.hall_of_fame:
        assert Candidate.parse(loss.prefix(), loss.form).infix() == loss.infix()
        assert loss.latex() == loss.candidate.latex() and loss.cpv.startswith("passed")
    reg = both.winners["reg"]
    i, u, e = np.array([1.0, 4.0]), np.array([4.0, 4.0]), np.array([9.0, 4.0])
    assert np.all(np.isfinite(np.asarray(reg.to_jax()(i, u, e))))
    ranked = [loss for loss in both.hall_of_fame if loss.branch == "cls"]
    assert [loss.rank for loss in ranked] == list(range(1, len(ranked) + 1))
    assert all(a.proxy_ap >= b.proxy_ap for a, b in zip(ranked, ranked[1:], strict=False))


def test_both_branches_end_with_the_winners_alone_and_together(both):
    assert list(both.final) == ["baseline", "found-both", "found-cls", "found-reg"]
    together = both.final["found-both"]["losses"]
    assert together == {"cls": both.winners["cls"].infix(), "reg": both.winners["reg"].infix()}
    assert both.final["found-cls"]["losses"]["reg"] == "giou" and both.final["found-reg"]["losses"]["cls"] == "focal"
    assert both.final["baseline"]["delta"] is None and both.final["found-cls"]["delta"]["AP"] is not None
    assert {g["branch"] for g in both.generations} == {"cls", "reg"}


def test_reports_feed_the_search_plots_and_reload(both):
    store = RunStore.open(both.run_dir)
    progress = store.read_report(PROGRESS)
    plot_search_progress(progress["branches"]["cls"]["generations"])
    plot_funnel(progress["funnel"])
    assert store.read_report(RESULT)["funnel"] == both.funnel
    loaded = SearchResult.load(both.run_dir)
    assert [loss.key for loss in loaded.hall_of_fame] == [loss.key for loss in both.hall_of_fame]
    pareto = store.read_report(HALL_OF_FAME)["pareto"]
    assert pareto == {branch: part["pareto"] for branch, part in both.summary["branches"].items()}
    plot_pareto(pareto["cls"])
    assert loaded.pareto == both.pareto and set(both.pareto) == {"cls", "reg"}
    assert all(front.best_entry is not None and len(front.candidates) == 2 for front in both.pareto.values())
    reread = json.loads(json.dumps(both.to_dict(), allow_nan=False))
    assert SearchResult.from_summary(both.run_dir, both.config, reread).pareto == both.pareto


def test_to_dataframe_needs_pandas(both, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_dataframe needs pandas: pip install pandas"):
        both.to_dataframe()


def test_the_vanilla_baseline_trains_unchecked_candidates_under_the_same_budget(tmp_path):
    result = run_search(tmp_path / "run", method="vanilla", simulator=None)
    funnel = result.funnel
    assert funnel["proxy"] == 4 and funnel["rejected_by_cpv"] == 0 and funnel["rejected_by_mos"] == 0
    assert all(loss.cpv == "not checked" and loss.mos_score is None for loss in result.hall_of_fame)


def failing_proxy(spec: dict) -> dict:
    """Every searched candidate diverges; the baseline trains."""
    if any("prefix" in spec[branch] for branch in ("cls", "reg")):
        return {"status": "failed", "reason": "diverged at step 2", "seconds": 0.1}
    return fake_proxy(spec)


def test_a_search_where_every_candidate_fails_still_ends(tmp_path):
    result = run_search(tmp_path / "run", proxy=failing_proxy)
    assert result.finished and result.hall_of_fame == [] and result.best is None
    assert result.funnel["proxy_failed"] == result.funnel["proxy"] == 4
    assert list(result.final) == ["baseline"]  # nothing to compare


@pytest.fixture(scope="module")
def tiny_specs(tmp_path_factory):
    """coco: specs of a tiny 64x64 shapes dataset, one per split."""
    paths = ensure_shapes_dataset(tmp_path_factory.mktemp("cache"), num_train=32, num_search_val=4, num_final_val=4,
                                  image_size=64)  # MOS takes one training image per class
    return {split: f"coco:{annotations}:{images}" for split, (annotations, images) in paths.items()}


def proxy_spec(tiny_specs, **changes):
    spec = {"detector": "fcos", "detector_preset": "tiny", "data": tiny_specs["train"], "data_root": None,
            "eval_data": tiny_specs["search_val"], "eval_split": "search_val", "image_size": 64, "steps": 2,
            "batch_size": 2, "optimizer": "adamw", "learning_rate": 2e-3, "seed": 0,
            "cls": {"prefix": Candidate.parse("-log(sigmoid(x))*y - (1 - y)*log(1 - sigmoid(x))", "sigmoid").prefix(),
                    "form": "sigmoid"},
            "reg": {"name": "giou"}, "out_dir": None}
    return {**spec, **changes}


def test_the_proxy_task_trains_evaluates_reports_progress_and_failures_as_values(tiny_specs, tmp_path, monkeypatch):
    reports = []
    monkeypatch.setattr(proxy, "report_progress", lambda **fields: reports.append(fields))
    monkeypatch.setattr(proxy, "CHECKPOINT_POLL_SECONDS", 0.05)
    result = train_and_evaluate(proxy_spec(tiny_specs, steps=20))
    assert result["status"] == "ok" and 0.0 <= result["metrics"]["AP"] <= 1.0 and result["final_loss"] > 0
    assert [(r["phase"], r.get("step")) for r in reports] == [("data", None), ("train", 0), ("train", 10),
                                                              ("train", 20), ("evaluate", None)]
    assert reports[3]["images_per_second"] > 0 and reports[3]["seconds_per_step"] > 0 and reports[3]["steps"] == 20
    reports.clear()
    bad = train_and_evaluate(proxy_spec(tiny_specs, cls={"prefix": "Log(Q", "form": "sigmoid"}))
    assert bad["status"] == "failed" and bad["reason"].startswith("the loss cannot be built")
    final = train_and_evaluate(proxy_spec(tiny_specs, cls={"name": "focal"}, out_dir=str(tmp_path / "final"),
                                          eval_split="final_val", eval_data=tiny_specs["final_val"]))
    assert final["status"] == "ok" and (tmp_path / "final" / "experiment.json").is_file()
    assert reports[0] == {"phase": "final", "steps": 2}
    assert ("train", 2) in [(r["phase"], r.get("step")) for r in reports]  # the step of its checkpoint


def test_a_warm_proxy_starts_from_the_mos_warm_start_with_the_searched_layer_fresh(tiny_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    config = SearchConfig(data=tiny_specs["train"], search_val_data=tiny_specs["search_val"], image_size=64,
                          proxy_steps=2, proxy_batch_size=2, mos={"warm_start_steps": 2, "warm_start_batch_size": 2})
    losses = default_losses(config)
    warm, _, detector_config, _ = warm_start_of(simulation_config(config, "cls"), progress=False)
    spec = task_spec(config, losses, branch="cls")  # the worker reads the warm start from the cache
    assert spec["init"]["fresh_branch"] == "cls" and "params" not in spec["init"]
    assert task_spec(config, losses, branch="cls", final=True, warm_start=warm)["init"] is None  # finals: fresh
    assert task_spec(config.replace(proxy_init="scratch"), losses, branch="cls")["init"] is None
    shipped = task_spec(config, losses, branch="cls", warm_start=warm_start_params(config, "cls", progress=False))
    for a, b in zip(jax.tree.leaves(initial_params(shipped, detector_config)),
                    jax.tree.leaves(initial_params(spec, detector_config)), strict=True):
        np.testing.assert_array_equal(a, b)  # shipped to a worker or read from the cache: the same start

    fresh = get_detector("fcos").init_params(detector_config, jax.random.key(config.seed + 1))
    start = initial_params(spec, detector_config)
    head, layers = OUTPUT_LAYERS["fcos"]
    for name, expected in {"cls": fresh, "reg": warm}.items():
        np.testing.assert_array_equal(start[head][layers[name]]["kernel"], expected[head][layers[name]]["kernel"])
    np.testing.assert_array_equal(jax.tree.leaves(start["backbone"])[0], jax.tree.leaves(warm["backbone"])[0])
    assert train_and_evaluate(spec)["status"] == "ok"


def test_a_later_warm_start_serves_the_proxy_alone(tiny_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    config = SearchConfig(data=tiny_specs["train"], search_val_data=tiny_specs["search_val"], image_size=64,
                          proxy_steps=2, proxy_batch_size=2, proxy_warm_start_steps=3,
                          mos={"warm_start_steps": 2, "warm_start_batch_size": 2})
    spec = task_spec(config, default_losses(config), branch="cls")
    assert spec["init"]["warm_start"]["warm_start_steps"] == 3
    assert simulation_config(config, "cls").warm_start_steps == 2  # MOS keeps its own warm start
    later, _, detector_config, _ = warm_start_of(simulation_config(config.replace(mos={
        "warm_start_steps": 3, "warm_start_batch_size": 2}), "cls"), progress=False)
    shipped = warm_start_params(config, "cls", progress=False)
    for a, b in zip(jax.tree.leaves(shipped), jax.tree.leaves(later), strict=True):
        np.testing.assert_array_equal(a, b)
    mos_start = warm_start_of(simulation_config(config, "cls"), progress=False)[0]
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(shipped), jax.tree.leaves(mos_start),
                                                        strict=True))


def test_data_a_dask_worker_lacks_is_refused_naming_the_worker_and_the_path():
    class Cluster:  # the runner of workers without this machine's files
        shared_filesystem = False

        def on_every_worker(self, fn, *args):
            return {"tcp://10.0.0.7:4001": fn(*args), "tcp://10.0.0.8:4001": []}

    config = SearchConfig(data="coco:/nowhere/ann.json:/nowhere/images")
    message = (r"setting 'data': /nowhere/ann.json does not exist \(spec 'coco:/nowhere/ann.json:/nowhere/images'\) "
               r"on worker tcp://10.0.0.7:4001 \(and 1 more\); put the data at the same path on every worker")
    with pytest.raises(SearchConfigError, match=message):
        check_workers_data(config, Cluster())
    check_workers_data(SearchConfig(), Cluster())  # generated data: made on each worker
