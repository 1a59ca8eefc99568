"""A real tiny search — real CPV, MOS, proxy and final trainings in worker processes — run uninterrupted, killed
with SIGKILL in every stage and resumed, and run on a Dask LocalCluster of worker processes: all end with the same
hall of fame, log and final table.

Each run is a process of its own (``real_search.py``) with the same caches: the MOS warm start is trained once, and
JAX's persistent compilation cache makes the later runs load the programs the first one compiled.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_fakes import without_timings

from autoloss.run_store import CHECKPOINT, HALL_OF_FAME, LOG, RESULT
from autoloss.search_config import SearchConfig
from detection.shapes import ensure_shapes_dataset

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("real_search.py")
MOS = {"warm_start_steps": 40, "warm_start_batch_size": 4, "steps": 3, "batch_size": 2, "min_relative_ap": 0.0}
# The stages in the order a resumed run reaches them: a MOS batch of generation 1, its proxy stage, the breeding
# of generation 2, the final evaluation.
KILLS = ("mos", "proxy", "breed", "final")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(folder, settings, environment) shared by every run of this module."""
    root = tmp_path_factory.mktemp("real")
    paths = ensure_shapes_dataset(root / "data", num_train=32, num_search_val=4, num_final_val=4, image_size=64)
    specs = {split: f"coco:{annotations}:{images}" for split, (annotations, images) in paths.items()}
    config = SearchConfig(data=specs["train"], search_val_data=specs["search_val"], final_val_data=specs["final_val"],
                          image_size=64, population=3, generations=2, top_k=2, parents=2, mos_batch_size=2,
                          proxy_steps=4, proxy_batch_size=2, final_steps=4, final_batch_size=2, workers=2, mos=MOS,
                          verify_time_budget=0.0)  # no proof attempts: their outcome would depend on the clock
    env = {**os.environ, "AUTOLOSS_CACHE": str(root / "cache"), "JAX_COMPILATION_CACHE_DIR": str(root / "jax"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    return root, config.to_dict(), env


def launch(run_dir: Path, env: dict, **settings) -> subprocess.Popen:
    """``real_search.py`` in a session of its own (its worker processes die with it)."""
    return subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), json.dumps(settings)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen, timeout: float = 900) -> None:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()[-4000:]


def stopped_at(state: dict) -> tuple:
    """Where a killed run's checkpoint says it was: (generation, stage, results of the stage so far)."""
    if state["stage"] == "final":
        return "final", len(state["final"])
    cls = state["branches"]["cls"]
    return cls["generation"], cls["stage"], len(cls.get(cls["stage"], ()))


def outcome(run_dir: Path) -> dict:
    """What must not differ between runs: the hall of fame, every log record by id, the final table."""
    records = [json.loads(line) for line in (run_dir / LOG).read_text().splitlines()]
    result = json.loads((run_dir / RESULT).read_text())
    return {"hall_of_fame": json.loads((run_dir / HALL_OF_FAME).read_text()),
            "log": without_timings({record["id"]: record for record in records}),
            "final": without_timings(result["final"]), "generations": without_timings(result["generations"])}


@pytest.fixture(scope="module")
def reference(setup):
    """The uninterrupted run, on two local worker processes."""
    root, config, env = setup
    run_dir = root / "reference"
    finish(launch(run_dir, env, config=config))
    return run_dir


def test_the_reference_run_searches_trains_and_evaluates_for_real(reference):
    result = json.loads((reference / RESULT).read_text())
    assert result["finished"] and result["funnel"]["mos"] == 6 and result["funnel"]["proxy"] == 4
    assert result["branches"]["cls"]["hall_of_fame"][0]["mos_score"] is not None
    assert set(result["final"]) == {"baseline", "found"}
    assert all(row["status"] == "ok" and row["metrics"]["AP"] is not None for row in result["final"].values())
    assert (reference / "final" / "found" / "experiment.json").is_file()
    losses = [e["timings"]["final_loss"] for e in map(json.loads, (reference / LOG).read_text().splitlines())
              if e.get("stage") == "proxy"]
    assert len(set(losses)) == 4  # four different trainings: comparing runs compares real numbers


def test_killed_in_every_stage_and_resumed_it_ends_as_the_uninterrupted_run(setup, reference):
    """Killed in a MOS batch, in the proxy stage (one training saved), while breeding, in the final evaluation."""
    root, config, env = setup
    run_dir = root / "killed"
    for number, stage in enumerate(KILLS):
        marker = root / f"stopped-in-{stage}"
        process = launch(run_dir, env, config={**config, "workers": 1}, resume=number > 0, stop_in=stage,
                         marker=str(marker))  # one worker: fewer processes to start five times
        deadline = time.monotonic() + 600
        try:
            while not marker.exists():
                assert process.poll() is None, process.stderr.read().decode()[-4000:]
                assert time.monotonic() < deadline, f"the search did not reach its {stage} stage"
                time.sleep(0.1)
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the search and its worker processes
            process.wait()
        expected = {"mos": (0, "mos", 2), "proxy": (0, "proxy", 1), "breed": (1, "breed", 0), "final": ("final", 1)}
        assert stopped_at(json.loads((run_dir / CHECKPOINT).read_text())) == expected[stage]
        assert not (run_dir / RESULT).exists()
    finish(launch(run_dir, env, config=config, resume=True))
    ids = [json.loads(line)["id"] for line in (run_dir / LOG).read_text().splitlines()]
    assert len(ids) == len(set(ids))  # no record written twice
    assert outcome(run_dir) == outcome(reference)


def test_a_search_on_dask_worker_processes_finds_what_the_local_one_finds(setup, reference):
    root, config, env = setup
    run_dir = root / "dask"
    finish(launch(run_dir, env, config=config, dask=True))
    found, expected = outcome(run_dir), outcome(reference)
    assert found["hall_of_fame"] == expected["hall_of_fame"] and found["final"] == expected["final"]
    assert found["log"] == expected["log"]
    for name in ("experiment.json", "checkpoint.msgpack"):  # the models came back from the workers
        assert (run_dir / "final" / "found" / name).is_file()
