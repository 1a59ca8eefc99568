"""Running proxy and final trainings with hard time limits and one retry: locally, on Dask, or on your executor.

:class:`TaskRunner` runs a set of keyed :class:`TrainingTask` s and hands each result to a callback as
it arrives (out of order; the caller keys them), and each progress report of a running task to a
monitor. Where the tasks run is its backend:

* :meth:`TaskRunner.local` — :class:`autoloss.worker_pool.WorkerPool`: ``workers`` processes of this
  machine, each with its GPUs (:mod:`autoloss.devices`); a task past its time limit is killed there.
* :meth:`TaskRunner.dask` — :class:`autoloss.dask_backend.DaskBackend`: each training is a Dask task
  whose worker runs it in a child process it kills at the time limit.
* :meth:`TaskRunner.of` — a ``concurrent.futures.Executor`` of the caller's (e.g. threads for a fake
  proxy in a notebook): it has no way to stop a task, so its time limits are not enforced.

A task whose attempt passed its time limit (``time limit N s exceeded``) or lost its worker process
(``the worker process died: killed by SIGKILL ...``) is run once more, then recorded as failed with
that reason; an exception raised by the task itself is recorded at once (it would fail again). The
search goes on either way. A result is the task's dict plus ``attempts``, or
``{"status": "failed", "reason": ..., "attempts": n}``.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import sys
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from autoloss.devices import local_worker_environment, visible_gpus
from autoloss.task_process import describe_error
from autoloss.worker_pool import Attempt, Finished, Progress, WorkerPool

POLL_SECONDS = 1.0  # how often the monitor is refreshed while nothing happens


class ExecutorUnavailable(ValueError):
    """The executor cannot be reached, started or used (e.g. no Dask scheduler at the address)."""


@dataclasses.dataclass(frozen=True)
class TrainingTask:
    """One training: the spec its function gets, its time limit in seconds (None: none), a label for progress."""

    spec: dict
    time_limit: float | None
    label: str = ""


class Monitor(Protocol):
    """Receives what the running tasks report (``autoloss.training_progress.RunningTrainings``)."""

    def update(self, key: str, fields: dict) -> None: ...
    def end(self, key: str) -> None: ...
    def refresh(self) -> None: ...


class Backend(Protocol):
    """Where tasks run: see WorkerPool, DaskBackend and ExecutorBackend."""

    shared_filesystem: bool

    def capacity(self) -> int: ...
    def share(self, value: Any) -> Any: ...
    def start(self, key: str, fn: Callable[[dict], dict], spec: dict, seconds: float | None) -> None: ...
    def poll(self, timeout: float) -> list[Progress | Finished]: ...
    def close(self) -> None: ...


class ExecutorBackend:
    """Tasks as futures of a ``concurrent.futures.Executor`` (no enforced time limits)."""

    shared_filesystem = True

    def __init__(self, executor: cf.Executor):
        self.executor = executor
        self.futures: dict[cf.Future, str] = {}

    def capacity(self) -> int:
        return sys.maxsize

    def share(self, value):
        return value

    def start(self, key, fn, spec, seconds) -> None:
        try:
            self.futures[self.executor.submit(fn, spec)] = key
        except (BrokenProcessPool, RuntimeError) as error:
            raise ExecutorUnavailable(f"the executor cannot take tasks ({type(error).__name__}: {error}); "
                                      "resume the search with a working one") from None

    def poll(self, timeout: float) -> list[Progress | Finished]:
        done, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        events = []
        for future in done:
            key = self.futures.pop(future)
            try:
                attempt = Attempt("ok", result=future.result())
            except (BrokenProcessPool, cf.CancelledError) as error:
                attempt = Attempt("lost", reason=f"the worker process died ({type(error).__name__})")
            except Exception as error:  # noqa: BLE001 - the task's own failure
                attempt = Attempt("error", reason=describe_error(error))
            events.append(Finished(key, attempt))
        return events

    def close(self) -> None:
        """Nothing: the executor is the caller's."""


class TaskRunner:
    """Runs keyed tasks on a backend (made on first use by ``make_backend``), with one retry."""

    def __init__(self, make_backend: Callable[[], Backend], *, retries: int = 1):
        self._make = make_backend
        self._backend: Backend | None = None
        self.retries = retries

    @classmethod
    def local(cls, workers: int) -> TaskRunner:
        """``workers`` local processes, each with its share of the GPUs."""
        def make():
            gpus = visible_gpus()
            return WorkerPool(workers, environment=lambda slot: local_worker_environment(slot, workers, gpus))

        return cls(make)

    @classmethod
    def dask(cls, address: str, *, timeout: float = 5.0) -> TaskRunner:
        """The Dask cluster at ``address``, connected now (ExecutorUnavailable within ``timeout`` seconds)."""
        from autoloss.dask_backend import DaskBackend

        backend = DaskBackend.connect(address, timeout=timeout)
        return cls(lambda: backend)

    @classmethod
    def of(cls, executor: cf.Executor) -> TaskRunner:
        """The caller's ``executor``, never shut down here (time limits are not enforced on it)."""
        return cls(lambda: ExecutorBackend(executor))

    @property
    def backend(self) -> Backend:
        """The backend, made on first use."""
        if self._backend is None:
            self._backend = self._make()
        return self._backend

    def share(self, value: Any) -> Any:
        """``value`` (e.g. warm-start parameters) in the form tasks should carry it (Dask: scattered once)."""
        return self.backend.share(value)

    @property
    def shared_filesystem(self) -> bool:
        """Whether the tasks see this process's files (False on Dask: results must carry their files)."""
        return self.backend.shared_filesystem

    def on_every_worker(self, fn: Callable[..., Any], *args) -> dict[str, Any]:
        """``{worker: fn(*args)}`` run on every worker of the backend (here, once, for local backends)."""
        run_everywhere = getattr(self.backend, "on_every_worker", None)
        return run_everywhere(fn, *args) if run_everywhere else {"this machine": fn(*args)}

    def close(self) -> None:
        """Stop the backend's processes (running tasks are killed)."""
        if self._backend is not None:
            self._backend.close()
        self._backend = None

    def run(self, fn: Callable[[dict], dict], tasks: Mapping[str, TrainingTask],
            on_result: Callable[[str, dict], None], monitor: Monitor | None = None) -> None:
        """Run ``fn(task.spec)`` for every task; ``on_result(key, result)`` as each ends (see the module docstring)."""
        backend = self.backend
        pending = collections.deque(tasks)
        attempts: collections.Counter = collections.Counter()
        running: set[str] = set()
        while pending or running:
            while pending and backend.capacity() > 0:
                key = pending.popleft()
                attempts[key] += 1
                backend.start(key, fn, tasks[key].spec, tasks[key].time_limit)
                running.add(key)
                if monitor is not None:
                    monitor.update(key, {"phase": "start", "label": tasks[key].label, "attempt": attempts[key]})
            for event in backend.poll(POLL_SECONDS):
                if isinstance(event, Progress):
                    if monitor is not None and event.key in running:
                        monitor.update(event.key, event.fields)
                    continue
                key, attempt = event.key, event.attempt
                running.discard(key)
                if monitor is not None:
                    monitor.end(key)
                if attempt.status == "ok":
                    on_result(key, {**attempt.result, "attempts": attempts[key]})
                elif attempt.status in ("timeout", "lost") and attempts[key] <= self.retries:
                    pending.append(key)
                else:
                    on_result(key, {"status": "failed", "reason": attempt.reason, "attempts": attempts[key]})
            if monitor is not None:
                monitor.refresh()
