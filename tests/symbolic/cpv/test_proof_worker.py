"""The proof worker: calls in a warm process, stopped at their budget however they are stuck."""

import contextlib
import math
import os
import threading
import time

import psutil
import pytest

from symbolic.cpv.proof_worker import KILL_MARGIN, WALL_FACTOR, WALL_SLACK, ProofTimeout, ProofWorker


@pytest.fixture(scope="module")
def worker():
    worker = ProofWorker()
    worker.call(abs, (1,), 5.0)  # started and ready: start-up is never charged to a budget
    yield worker
    worker.close()


def test_a_call_runs_in_another_process_and_returns_its_value(worker):
    assert worker.call(math.factorial, (5,), 5.0) == 120
    assert worker.call(os.getpid, (), 5.0) != os.getpid()


def test_an_error_in_a_call_comes_back_and_the_worker_stays_warm(worker):
    starts = worker.starts
    with pytest.raises(RuntimeError, match="math domain error"):
        worker.call(math.sqrt, (-1.0,), 5.0)
    assert worker.call(abs, (-2,), 5.0) == 2 and worker.starts == starts


def _cpu_until_gone(pid: int, spent: list[float]) -> None:
    """Record the CPU seconds of process ``pid`` until it ends (the last reading stays in ``spent``)."""
    process = psutil.Process(pid)
    with contextlib.suppress(psutil.Error):
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            times = process.cpu_times()
            spent.append(times.user + times.system)
            time.sleep(0.01)


def test_a_step_no_signal_stops_is_killed_at_its_budget_plus_the_margin(worker):
    starts, pid, spent = worker.starts, worker.call(os.getpid, (), 5.0), []
    watcher = threading.Thread(target=_cpu_until_gone, args=(pid, spent))
    watcher.start()
    start = time.perf_counter()
    with pytest.raises(ProofTimeout):
        worker.call(pow, (3, 10**9), 0.2)  # one C-level big-integer power: no signal interrupts it
    wall = time.perf_counter() - start
    watcher.join()
    # the budget is CPU time: the worker is killed once it has spent it plus the margin (a loaded machine
    # stretches the wall time, up to the backstop)
    assert spent[-1] - spent[0] < 0.2 + KILL_MARGIN + 0.25
    assert wall < (0.2 + KILL_MARGIN) * WALL_FACTOR + WALL_SLACK
    assert worker.starts == starts + 1  # killed, and a fresh worker was started at once
    assert worker.call(abs, (-3,), 5.0) == 3
