"""A search killed with SIGKILL and resumed ends as the uninterrupted run does (fake MOS and proxy, real processes)."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from search_fakes import FakeSimulator, fake_proxy, without_timings

from autoloss.run_store import CHECKPOINT, HALL_OF_FAME, LOG, RESULT, RunDirectoryError
from autoloss.search_config import SearchConfig
from autoloss.search_driver import search
from autoloss.search_result import SearchResult

# the repository first: tests/autoloss, tests/simulate would otherwise shadow the packages as namespace packages
IMPORT_PATH = os.pathsep.join(str(Path(__file__).resolve().parents[k]) for k in (2, 1))
CONFIG = SearchConfig(population=6, generations=3, top_k=2, parents=2, final_steps=2, workers=2)
SCRIPT = """
import json, sys
from search_fakes import FakeSimulator, fake_proxy
from autoloss.search_driver import search
from autoloss.search_config import SearchConfig

if __name__ == "__main__":
    config = SearchConfig.from_dict(json.loads(sys.argv[2]))
    search(config, run_dir=sys.argv[1], simulator=FakeSimulator(), proxy_task=fake_proxy, progress=False)
"""


def in_process(run_dir, config=CONFIG, **options):
    with ThreadPoolExecutor(2) as executor:
        return search(config, run_dir=run_dir, simulator=FakeSimulator(), executor=executor, proxy_task=fake_proxy,
                      progress=False, **options)


def read_state(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / CHECKPOINT).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def log_ids(run_dir: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (run_dir / LOG).read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    return run_dir, in_process(run_dir)


def test_a_run_killed_mid_proxy_stage_resumes_to_the_same_hall_of_fame(tmp_path, uninterrupted, monkeypatch):
    reference_dir, reference = uninterrupted
    script = tmp_path / "run_search.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": IMPORT_PATH, "AUTOLOSS_FAKE_PROXY_DELAY": "0.7"}
    # One worker: the proxy trainings finish 0.7 s apart, a window the poll below cannot miss.
    killed_config = {**CONFIG.to_dict(), "workers": 1}
    process = subprocess.Popen([sys.executable, str(script), str(run_dir), json.dumps(killed_config)], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while True:  # kill in generation 2's proxy stage, after one of its trainings finished
            state = read_state(run_dir)
            cls = (state or {}).get("branches", {}).get("cls", {})
            if cls.get("generation", 0) >= 1 and cls.get("stage") == "proxy" and cls.get("proxy"):
                break
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the search did not reach generation 2's proxy stage"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the search and its worker processes
        process.wait()
    assert not (run_dir / RESULT).exists()
    killed_at = read_state(run_dir)

    monkeypatch.delenv("AUTOLOSS_FAKE_PROXY_DELAY", raising=False)
    resumed = in_process(run_dir, config=None, resume=True)
    assert killed_at["branches"]["cls"]["generation"] >= 1
    assert json.loads((run_dir / HALL_OF_FAME).read_text()) == json.loads((reference_dir / HALL_OF_FAME).read_text())
    assert [(e.key, e.proxy_ap) for e in resumed.hall_of_fame] == [(e.key, e.proxy_ap) for e in reference.hall_of_fame]
    assert {k: v["metrics"] for k, v in resumed.final.items()} == {k: v["metrics"] for k, v in reference.final.items()}
    assert without_timings(resumed.generations) == without_timings(reference.generations)
    ids = log_ids(run_dir)
    assert len(ids) == len(set(ids)) and set(ids) == set(log_ids(reference_dir))


def test_resuming_a_finished_run_changes_nothing_and_other_settings_are_refused(uninterrupted):
    run_dir, reference = uninterrupted
    log = (run_dir / LOG).read_bytes()
    again = in_process(run_dir, config=None, resume=True)
    assert [e.key for e in again.hall_of_fame] == [e.key for e in reference.hall_of_fame]
    assert (run_dir / LOG).read_bytes() == log
    assert SearchResult.load(run_dir).best.key == reference.best.key
    with pytest.raises(RunDirectoryError, match=r"other settings \(generations: run 3, given 4\)"):
        in_process(run_dir, config=CONFIG.replace(generations=4), resume=True)
    in_process(run_dir, config=CONFIG.replace(workers=7), resume=True)  # execution settings may change
