"""The run directory: creation rules, refusals that change nothing, the append-only log, lock and checkpoint."""

import json

import pytest

from autoloss.run_store import CHECKPOINT, CONFIG, LOG, MARKER, TORN, RunDirectoryError, RunStore
from autoloss.search_config import SearchConfig


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_new_run_writes_its_marker_and_every_setting(tmp_path):
    store = RunStore.create(tmp_path / "run", SearchConfig(generations=2))
    marker = json.loads((tmp_path / "run" / MARKER).read_text())
    assert marker["format"] == "cse-autoloss-search" and marker["version"] == 1
    assert RunStore.open(tmp_path / "run").config() == SearchConfig(generations=2) == store.config()
    empty = tmp_path / "empty"
    empty.mkdir()
    RunStore.create(empty, SearchConfig())  # an empty directory may hold a new run


def test_an_existing_run_or_other_files_are_never_overwritten(tmp_path):
    run = tmp_path / "run"
    RunStore.create(run, SearchConfig())
    before = snapshot(run)
    with pytest.raises(RunDirectoryError, match="already holds a search run; continue it with --resume"):
        RunStore.create(run, SearchConfig(seed=1))
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.png").write_bytes(b"meow")
    with pytest.raises(RunDirectoryError, match="is not empty and not a search run"):
        RunStore.create(other, SearchConfig())
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(RunDirectoryError, match="is not a directory"):
        RunStore.create(a_file, SearchConfig())
    assert snapshot(run) == before and snapshot(other) == {"cat.png": b"meow"} and a_file.read_text() == "x"


@pytest.mark.parametrize("setup", ["missing", "plain", "foreign_marker", "bad_json"])
def test_opening_something_that_is_not_a_run_is_refused(tmp_path, setup):
    path = tmp_path / "run"
    if setup != "missing":
        path.mkdir()
        (path / CONFIG).write_text("{}")
    if setup == "foreign_marker":
        (path / MARKER).write_text('{"format": "something-else"}')
    if setup == "bad_json":
        (path / MARKER).write_text("{not json")
    message = {"missing": "is not a directory", "plain": "is not a search run directory",
               "foreign_marker": "does not describe a search run",
               "bad_json": r"run.json is damaged: malformed JSON"}[setup]
    with pytest.raises(RunDirectoryError, match=message):
        RunStore.open(path)


def test_a_different_config_is_refused_naming_each_setting_but_execution_settings_may_change(tmp_path):
    store = RunStore.create(tmp_path / "run", SearchConfig(generations=2))
    expected = r"other settings \(seed: run 0, given 7; generations: run 2, given 3\)"
    with pytest.raises(RunDirectoryError, match=expected):
        store.check_config(SearchConfig(generations=3, seed=7))
    store.check_config(SearchConfig(generations=2, workers=16, dask_scheduler="tcp://cluster:8786"))


def test_the_log_is_append_only_skips_records_it_holds_and_moves_a_torn_line_aside_saying_so(tmp_path):
    store = RunStore.create(tmp_path / "run", SearchConfig())
    assert store.append_log([{"id": "a", "x": 1}, {"id": "b", "x": 2}]) == 2
    assert store.append_log([{"id": "a", "x": 99}, {"id": "c", "x": 3}]) == 1
    with open(tmp_path / "run" / LOG, "a") as handle:
        handle.write('{"id": "d", "x"')  # a kill in the middle of a write
    reopened = RunStore.open(tmp_path / "run")
    assert [r["id"] for r in reopened.read_log()] == ["a", "b", "c"]  # reading changes nothing
    with pytest.raises(RunDirectoryError, match="ends in a line torn by an interrupted write"):
        reopened.append_log([{"id": "d", "x": 4}])
    assert reopened.repair_log().startswith(f"the last line of {tmp_path / 'run' / LOG} was torn")
    assert (tmp_path / "run" / TORN).read_text() == '{"id": "d", "x"\n' and reopened.repair_log() is None
    assert reopened.append_log([{"id": "c", "x": 3}, {"id": "d", "x": 4}]) == 1
    lines = (tmp_path / "run" / LOG).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("damage", ["middle_line", "no_id", "truncated_checkpoint", "checkpoint_cut_in_a_string",
                                    "checkpoint_not_utf8"])
def test_a_damaged_run_is_refused_naming_the_file_line_and_what_to_do(tmp_path, damage):
    store = RunStore.create(tmp_path / "run", SearchConfig())
    store.append_log([{"id": "a"}, {"id": "b"}])
    store.save_checkpoint({"stage": "search", "branches": {}})
    log, checkpoint = tmp_path / "run" / LOG, tmp_path / "run" / CHECKPOINT
    if damage == "middle_line":
        log.write_text('{"id": "a"}\n{"id": "b", oops}\n{"id": "c"}\n')
    elif damage == "no_id":
        log.write_text('{"id": "a"}\n[1, 2]\n')
    elif damage == "truncated_checkpoint":
        checkpoint.write_text(checkpoint.read_text()[:-5])
    elif damage == "checkpoint_cut_in_a_string":  # JSON reports it where the string starts
        checkpoint.write_text(checkpoint.read_text()[:4])
    else:
        checkpoint.write_bytes(b"\xff\xfe")
    expected = {"middle_line": (rf"{log} is damaged: line 2 is not a JSON record \(malformed JSON", f"{log}:2"),
                "no_id": (rf"{log} is damaged: line 2 is not a record with an id", f"{log}:2"),
                "truncated_checkpoint": (rf"{checkpoint} is damaged: truncated JSON", f"{checkpoint}:1:"),
                "checkpoint_cut_in_a_string": (rf"{checkpoint} is damaged: truncated JSON", f"{checkpoint}:1:"),
                "checkpoint_not_utf8": (rf"{checkpoint} is damaged: not UTF-8 text", str(checkpoint))}[damage]
    with pytest.raises(RunDirectoryError, match=expected[0]) as raised:
        RunStore.open(tmp_path / "run").validate()
    assert raised.value.where.startswith(expected[1]) and raised.value.hint.startswith(("restore", "it is replaced"))


def test_checkpoints_replace_atomically_and_refuse_nan(tmp_path):
    store = RunStore.create(tmp_path / "run", SearchConfig())
    assert store.load_checkpoint() is None
    store.save_checkpoint({"stage": "search", "n": 1})
    store.save_checkpoint({"stage": "final", "n": 2})
    assert store.load_checkpoint() == {"stage": "final", "n": 2}
    with pytest.raises(ValueError):
        store.save_checkpoint({"score": float("nan")})
    assert store.load_checkpoint() == {"stage": "final", "n": 2}
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(f".{CHECKPOINT}")] == []


def test_only_one_search_runs_in_a_directory_at_a_time(tmp_path):
    RunStore.create(tmp_path / "run", SearchConfig())
    first, second = RunStore.open(tmp_path / "run"), RunStore.open(tmp_path / "run")
    with first.lock(), pytest.raises(RunDirectoryError, match="another search is running"), second.lock():
        pass
    with RunStore.open(tmp_path / "run").lock():
        pass
