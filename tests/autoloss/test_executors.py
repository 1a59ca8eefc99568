"""Task runners: hard time limits that stop a task wherever it hangs, a retry for lost workers and timeouts,
failures as values, progress reports; local worker processes, Dask, and a caller's executor."""

import concurrent.futures as cf
import gc
import os
import signal
import time

import pytest
from worker_tasks import failing_task, misbehaving_task, sleepy_task

from autoloss.executors import ExecutorUnavailable, TaskRunner, TrainingTask
from autoloss.task_process import exit_description
from autoloss.worker_pool import WorkerPool


class Reports:
    """A monitor that keeps every report."""

    def __init__(self):
        self.fields: dict[str, list[dict]] = {}

    def update(self, key, fields):
        self.fields.setdefault(key, []).append(fields)

    def end(self, key):
        pass

    def refresh(self):
        pass


def collect(runner, fn, tasks, monitor=None):
    results = {}
    runner.run(fn, tasks, lambda key, result: results.setdefault(key, result), monitor)
    return results


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_hanging_and_dying_tasks_are_stopped_retried_once_and_recorded_while_the_others_finish():
    """Hangs in Python, in a C call and in a blocked read are killed at the limit; self-inflicted deaths are lost."""
    misbehaviours = ("python", "sleep", "read", "sigkill", "segfault")
    tasks = {what: TrainingTask({"do": what, "value": 0}, 1.5) for what in misbehaviours}
    tasks.update({f"ok{k}": TrainingTask({"value": k, "sleep": 0.2}, 60.0) for k in range(3)})
    reports = Reports()
    runner = TaskRunner.local(2)
    started = time.perf_counter()
    try:
        results = collect(runner, misbehaving_task, tasks, reports)
    finally:
        runner.close()
    for what in ("python", "sleep", "read"):
        assert results[what] == {"status": "failed", "attempts": 2,
                                 "reason": "time limit 1.5 s exceeded (stopped at step 1 of 10)"}, what
    assert results["sigkill"]["reason"] == "the worker process died: killed by SIGKILL (signal 9; e.g. the " \
                                           "out-of-memory killer)"
    assert results["segfault"]["reason"] == "the worker process died: killed by SIGSEGV (signal 11)"
    assert results["sigkill"]["attempts"] == results["segfault"]["attempts"] == 2
    assert [results[f"ok{k}"]["value"] for k in range(3)] == [0, 1, 2]
    assert all(results[f"ok{k}"]["status"] == "ok" and results[f"ok{k}"]["attempts"] == 1 for k in range(3))
    assert not any(alive(result["pid"]) for result in results.values() if "pid" in result)  # closed: all gone
    assert any(f["phase"] == "train" and f["step"] == 1 and f["steps"] == 10 for f in reports.fields["python"])
    assert [f["attempt"] for f in reports.fields["sleep"] if f["phase"] == "start"] == [1, 2]
    assert time.perf_counter() - started < 120


def test_errors_are_recorded_at_once_and_a_worker_keeps_serving_after_one():
    runner = TaskRunner.local(1)
    try:
        results = collect(runner, failing_task, {"bug": TrainingTask({"value": 7}, 30.0)})
        assert results["bug"]["attempts"] == 1 and results["bug"]["status"] == "failed"
        assert results["bug"]["reason"].startswith("RuntimeError: task 7 is broken at ")
        first = collect(runner, misbehaving_task, {"a": TrainingTask({"value": 1}, 30.0)})["a"]
        second = collect(runner, misbehaving_task, {"b": TrainingTask({"value": 2}, 30.0)})["b"]
        assert first["pid"] == second["pid"]  # one process serves task after task
    finally:
        runner.close()


def test_a_killed_task_takes_only_its_own_process_and_the_time_limit_counts_from_a_ready_process():
    pool = WorkerPool(2)
    try:
        pool.start("hang", misbehaving_task, {"do": "sleep"}, 1.0)
        pool.start("slow", misbehaving_task, {"value": 3, "sleep": 3.0}, 30.0)
        events = []
        while len([e for e in events if hasattr(e, "attempt")]) < 2:
            events += pool.poll(1.0)
        finished = {e.key: e.attempt for e in events if hasattr(e, "attempt")}
        assert finished["hang"].status == "timeout" and finished["slow"].status == "ok"
        assert pool.capacity() == 2
    finally:
        pool.close()


def test_the_exit_of_a_process_in_words():
    assert exit_description(-signal.SIGKILL).startswith("killed by SIGKILL (signal 9")
    assert exit_description(3) == "exit code 3"


def test_a_caller_owned_executor_runs_tasks_and_is_not_shut_down():
    with cf.ThreadPoolExecutor(1) as executor:
        runner = TaskRunner.of(executor)
        results = collect(runner, sleepy_task, {"a": TrainingTask({"sleep": 0.0, "value": 5}, 5.0)})
        assert results["a"] == {"status": "ok", "value": 5, "attempts": 1}
        broken = collect(runner, failing_task, {"bug": TrainingTask({"value": 7}, 5.0)})
        assert broken["bug"]["attempts"] == 1 and "RuntimeError: task 7 is broken" in broken["bug"]["reason"]
        runner.close()
        assert executor.submit(int, "3").result() == 3


def test_an_unreachable_dask_scheduler_is_a_clear_error_within_the_timeout():
    started = time.perf_counter()
    with pytest.raises(ExecutorUnavailable, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s"):
        TaskRunner.dask("tcp://127.0.0.1:9", timeout=1.0)
    assert time.perf_counter() - started < 10
    with pytest.raises(ExecutorUnavailable, match="cannot reach the Dask scheduler at 'no-port'"):
        TaskRunner.dask("no-port", timeout=1.0)
    # the failed clients are gone: collected later, inside another Dask call, they would deadlock it
    assert not [o for o in gc.get_objects() if type(o).__name__ == "Client" and type(o).__module__.startswith("dist")]


def test_dask_stops_a_hanging_task_survives_a_killed_training_and_reports_progress(monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(__import__("sys").path))  # Dask workers import the tasks
    tasks = {"hang": TrainingTask({"do": "sleep"}, 1.5), "killer": TrainingTask({"do": "sigkill"}, 60.0)}
    tasks.update({f"ok{k}": TrainingTask({"value": k, "sleep": 1.0}, 60.0) for k in range(2)})
    reports = Reports()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = TaskRunner.dask(cluster.scheduler_address, timeout=10.0)
        try:
            results = collect(runner, misbehaving_task, tasks, reports)
            workers = runner.on_every_worker(os.getpid)
        finally:
            runner.close()
    assert results["hang"]["status"] == "failed" and results["hang"]["attempts"] == 2
    assert results["hang"]["reason"].startswith("time limit 1.5 s exceeded (stopped at step 1 of 10) on Dask worker")
    assert results["killer"]["reason"].startswith("the worker process died: killed by SIGKILL")
    assert all(results[f"ok{k}"]["status"] == "ok" and results[f"ok{k}"]["value"] == k for k in range(2))
    assert len(workers) == 2  # the Dask workers survived every training
    trained = [f for f in reports.fields["ok0"] if f.get("phase") == "train"]
    assert trained and trained[0]["step"] == 1 and trained[0]["worker"] in workers
