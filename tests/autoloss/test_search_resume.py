"""Resuming with fake MOS and proxy: a finished run stays as it is, other settings are refused, and a damaged run
folder is refused before any work. (Runs killed with SIGKILL in every stage: test_search_real.py.)"""

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

from autoloss.cli import main
from autoloss.run_store import CHECKPOINT, LOG, RunDirectoryError
from autoloss.search_config import SearchConfig
from autoloss.search_driver import search
from autoloss.search_result import SearchResult
from autoloss.search_state import STATE_VERSION

CONFIG = SearchConfig(population=6, generations=3, top_k=2, parents=2, final_steps=2, workers=2,
                      verify_time_budget=0.0)  # no proof attempts: whether one finishes depends on the clock

def in_process(run_dir, config=CONFIG, **options):
    with ThreadPoolExecutor(2) as executor:
        return search(config, run_dir=run_dir, simulator=FakeSimulator(), executor=executor, proxy_task=fake_proxy,
                      progress=False, **options)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    return run_dir, in_process(run_dir)


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


@pytest.mark.parametrize("damage", ["log_line", "truncated_checkpoint"])
def test_a_damaged_run_is_refused_before_any_work_naming_the_file(uninterrupted, tmp_path, capsys, damage):
    reference_dir, _ = uninterrupted
    run_dir = tmp_path / "run"
    shutil.copytree(reference_dir, run_dir)
    state = json.loads((run_dir / CHECKPOINT).read_text())
    state["stage"], state["final"] = "final", {}  # as if killed before its final trainings
    (run_dir / CHECKPOINT).write_text(json.dumps(state))
    if damage == "log_line":
        lines = (run_dir / LOG).read_text().splitlines(keepends=True)
        lines[2] = lines[2][: len(lines[2]) // 2] + "\n"
        (run_dir / LOG).write_text("".join(lines))
        expected, where = f"{run_dir / LOG} is damaged: line 3 is not a JSON record", f"{run_dir / LOG}:3"
    else:
        (run_dir / CHECKPOINT).write_text(json.dumps(state)[:-40])
        expected, where = f"{run_dir / CHECKPOINT} is damaged: truncated JSON", f"{run_dir / CHECKPOINT}:1:"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    built = []
    with ThreadPoolExecutor(1) as executor, pytest.raises(RunDirectoryError, match=re.escape(expected)):
        search(None, run_dir=run_dir, resume=True, simulator=lambda branch: built.append(branch),
               executor=executor, proxy_task=failing_if_run, progress=False)
    assert built == [] and {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert main(["search", "--resume", str(run_dir), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["message"].startswith(expected) and error["where"].startswith(where) and error["hint"]


def test_a_checkpoint_of_the_earlier_record_format_is_refused_naming_both_versions(uninterrupted, tmp_path, capsys):
    reference_dir, _ = uninterrupted
    run_dir = tmp_path / "run"
    shutil.copytree(reference_dir, run_dir)
    state = json.loads((run_dir / CHECKPOINT).read_text())
    cls = state["branches"]["cls"]  # written as version 1 was: untyped records, three seen_* lists
    dedup = cls.pop("dedup")
    cls.update(seen_fingerprints=dedup["fingerprints"], seen_keys=dedup["keys"], seen_gradients=dedup["gradients"])
    state.update(version=1, stage="final", final={})
    (run_dir / CHECKPOINT).write_text(json.dumps(state))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    expected = (f"{run_dir / CHECKPOINT}: checkpoint version 1 cannot be read by this autoloss, which expects "
                f"checkpoint version {STATE_VERSION}")
    with ThreadPoolExecutor(1) as executor, pytest.raises(RunDirectoryError, match=re.escape(expected)):
        search(None, run_dir=run_dir, resume=True, simulator=FakeSimulator, executor=executor,
               proxy_task=failing_if_run, progress=False)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    with pytest.raises(RunDirectoryError, match=re.escape(expected)):
        SearchResult.load(run_dir)
    assert main(["search", "--resume", str(run_dir), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["message"].startswith(expected) and error["where"] == str(run_dir / CHECKPOINT)
    assert "new --out" in error["hint"]


def failing_if_run(spec: dict) -> dict:
    raise AssertionError("no training may start on a damaged run")
