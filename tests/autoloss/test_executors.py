"""Executors: time limits, a retry for lost workers and timeouts, failures as values; local processes and Dask."""

import concurrent.futures as cf
import gc
import os
import time
from pathlib import Path

import pytest
from search_fakes import dying_task, failing_task, sleepy_task

from autoloss.executors import ExecutorUnavailable, TaskRunner, call_with_time_limit, dask_executor, local_executor

# the repository first: tests/autoloss, tests/simulate would otherwise shadow the packages as namespace packages
IMPORT_PATH = os.pathsep.join(str(Path(__file__).resolve().parents[k]) for k in (2, 1))


@pytest.fixture
def importable_fakes(monkeypatch):
    """Spawned workers import search_fakes from tests/ (they inherit the environment)."""
    monkeypatch.setenv("PYTHONPATH", IMPORT_PATH)


def collect(runner, fn, tasks, **options):
    results = {}
    runner.run(fn, tasks, lambda key, result: results.setdefault(key, result), **options)
    return results


def test_call_with_time_limit_reports_results_errors_and_timeouts():
    assert call_with_time_limit(sleepy_task, {"sleep": 0.0, "value": 1}, 5) == ("ok", {"status": "ok", "value": 1})
    status, message = call_with_time_limit(failing_task, {"value": 2}, 5)
    assert status == "error" and message.startswith("RuntimeError: task 2 is broken at ")
    assert call_with_time_limit(sleepy_task, {"sleep": 3, "value": 3}, 0.2) == (
        "timeout", "exceeded its time limit of 0.2 s")


def test_timeouts_are_retried_once_then_recorded_and_errors_are_not_retried():
    runner = TaskRunner(lambda: cf.ThreadPoolExecutor(2))
    tasks = {"slow": ({"sleep": 2.0, "value": 0}, 0.2), "fast": ({"sleep": 0.0, "value": 1}, 5.0)}
    try:
        results = collect(runner, sleepy_task, tasks)
        assert results["fast"] == {"status": "ok", "value": 1, "attempts": 1}
        assert results["slow"] == {"status": "failed", "reason": "exceeded its time limit of 0.2 s", "attempts": 2}
        once = collect(runner, sleepy_task, {"slow": tasks["slow"]}, retry_timeouts=False)
        assert once["slow"]["attempts"] == 1
        broken = collect(runner, failing_task, {"bug": ({"value": 7}, 5.0)})
        assert broken["bug"]["attempts"] == 1 and "RuntimeError: task 7 is broken" in broken["bug"]["reason"]
    finally:
        runner.close()


def test_a_dying_worker_is_retried_alone_and_its_neighbours_survive(importable_fakes):
    runner = TaskRunner(lambda: local_executor(2))
    tasks = {"killer": ({"die": True, "value": 0}, 60.0)}
    tasks.update({f"ok{k}": ({"sleep": 0.5, "value": k}, 60.0) for k in range(3)})
    try:
        results = collect(runner, dying_task, tasks)
    finally:
        runner.close()
    assert results["killer"]["status"] == "failed" and results["killer"]["attempts"] == 2
    assert "a worker process died (BrokenProcessPool)" in results["killer"]["reason"]
    assert {results[f"ok{k}"]["value"] for k in range(3)} == {0, 1, 2}
    assert all(results[f"ok{k}"]["status"] == "ok" for k in range(3))


def test_a_caller_owned_executor_is_not_shut_down():
    with cf.ThreadPoolExecutor(1) as executor:
        runner = TaskRunner.of(executor)
        assert collect(runner, sleepy_task, {"a": ({"sleep": 0.0, "value": 5}, 5.0)})["a"]["value"] == 5
        runner.close()
        assert executor.submit(int, "3").result() == 3


def test_an_unreachable_dask_scheduler_is_a_clear_error_within_the_timeout():
    started = time.perf_counter()
    with pytest.raises(ExecutorUnavailable, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s"):
        dask_executor("tcp://127.0.0.1:9", timeout=1.0)
    assert time.perf_counter() - started < 10
    with pytest.raises(ExecutorUnavailable, match="cannot reach the Dask scheduler at 'no-port'"):
        dask_executor("no-port", timeout=1.0)
    # the failed clients are gone: collected later, inside another Dask call, they would deadlock it
    assert not [o for o in gc.get_objects() if type(o).__name__ == "Client" and type(o).__module__.startswith("dist")]


def test_dask_local_cluster_runs_tasks_in_worker_processes_and_survives_a_killed_worker(importable_fakes):
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = TaskRunner(lambda: dask_executor(cluster.scheduler_address, timeout=10.0))
        tasks = {"killer": ({"die": True, "value": 0}, 60.0)}
        tasks.update({f"ok{k}": ({"sleep": 0.2, "value": k}, 60.0) for k in range(3)})
        try:
            results = collect(runner, dying_task, tasks)
        finally:
            runner.close()
    assert results["killer"]["status"] == "failed" and results["killer"]["attempts"] == 2
    assert "a worker process died (KilledWorker)" in results["killer"]["reason"]
    assert all(results[f"ok{k}"] == {"status": "ok", "value": k, "attempts": results[f"ok{k}"]["attempts"]}
               for k in range(3))
