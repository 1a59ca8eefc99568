"""Trainings as Dask tasks, stopped at their time limit, with their progress sent back to the search.

Each attempt is one Dask task, :func:`run_on_worker`. It does not train in the Dask worker itself — a
thread there cannot be stopped — but in a child process of the worker (a one-slot
:class:`autoloss.worker_pool.WorkerPool` per worker thread, kept between tasks so its compiled programs
and data stay loaded), which it kills when the time limit passes, and returns how the attempt ended.
So the Dask worker survives a training that hangs, crashes or is killed by the OOM killer, and the
scheduler's own retries are only needed when a whole Dask worker is lost (``KilledWorker``).

Progress: the task forwards its child's reports as Dask worker events (``Worker.log_event``) on a topic
of this search, to which the driver subscribes (``Client.subscribe_topic``). Workers need no shared
filesystem: what a task needs travels with it (the warm start's parameters are scattered once to every
worker, :meth:`DaskBackend.share`), generated data is generated on the worker (deterministically, from
its spec), real data must exist at the same path on every worker, which the search checks on each of
them first (:meth:`DaskBackend.on_every_worker`), and a final training's model comes back with its
result. The training processes' GPU and memory settings are :func:`autoloss.devices.dask_worker_environment`.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from autoloss.devices import dask_worker_environment
from autoloss.task_process import describe_error
from autoloss.worker_pool import Attempt, Finished, Progress, WorkerPool

GRACE_SECONDS = 120.0  # past a task's time limit, the driver gives up on a worker that does not answer
_pools = threading.local()


def run_on_worker(fn: Callable[[dict], dict], spec: dict, seconds: float | None, key: str,
                  topic: str) -> tuple[str, dict | None, str | None]:
    """The Dask task of one attempt: ``fn(spec)`` in this worker's child process; (status, result, reason)."""
    from distributed import get_worker

    worker = get_worker()
    pool = getattr(_pools, "pool", None)
    if pool is None:
        environment = dask_worker_environment(worker.state.nthreads)
        pool = _pools.pool = WorkerPool(1, environment=lambda slot: environment)
    worker.log_event(topic, {"key": key, "phase": "start", "worker": worker.address, "time": time.time()})
    pool.start(key, fn, spec, seconds)
    while True:
        for event in pool.poll(1.0):
            if isinstance(event, Progress):
                worker.log_event(topic, {**event.fields, "key": key, "worker": worker.address})
                continue
            attempt = event.attempt
            reason = None if attempt.reason is None else f"{attempt.reason} on Dask worker {worker.address}"
            return attempt.status, attempt.result, reason


class DaskBackend:
    """Runs attempts as Dask tasks on the cluster of a ``distributed.Client`` (see the module docstring)."""

    shared_filesystem = False

    def __init__(self, client):
        self.client = client
        self.topic = f"autoloss-progress-{uuid.uuid4().hex}"
        self.reports: queue.SimpleQueue = queue.SimpleQueue()
        self.futures: dict[Any, str] = {}
        self.deadlines: dict[str, float] = {}
        self.limits: dict[str, float | None] = {}
        self.shared: dict[int, tuple[Any, Any]] = {}
        client.subscribe_topic(self.topic, self.reports.put)

    @classmethod
    def connect(cls, address: str, *, timeout: float = 5.0) -> DaskBackend:
        """The backend of the scheduler at ``address``; ExecutorUnavailable within ``timeout`` seconds."""
        from distributed import Client

        from autoloss.executors import ExecutorUnavailable

        failure = None
        try:
            client = Client(address, timeout=timeout)
        except (OSError, ValueError, TimeoutError) as error:
            failure = str(error)
        if failure is not None:
            # The half-built Client closes its event loop when collected; collect it now, because collected
            # later (inside another Dask call holding the loop lock) it deadlocks.
            gc.collect()
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
                                      f"({failure}); check the address (tcp://HOST:PORT) and that the scheduler "
                                      "is running")
        return cls(client)

    def capacity(self) -> int:
        return sys.maxsize  # the scheduler queues them

    def share(self, value):
        """``value`` scattered once to every worker (a future that tasks resolve on their worker)."""
        if id(value) not in self.shared:
            self.shared[id(value)] = (value, self.client.scatter(value, broadcast=True, hash=False))
        return self.shared[id(value)][1]

    def on_every_worker(self, fn: Callable[..., Any], *args) -> dict[str, Any]:
        """``{worker address: fn(*args)}`` from every worker of the cluster."""
        return self.client.run(fn, *args)

    def start(self, key, fn, spec, seconds) -> None:
        future = self.client.submit(run_on_worker, fn, spec, seconds, key, self.topic, pure=False,
                                    key=f"autoloss-{key.replace('/', '-')}-{uuid.uuid4().hex[:8]}")
        self.futures[future] = key
        self.limits[key] = seconds
        self.deadlines.pop(key, None)

    def poll(self, timeout: float) -> list[Progress | Finished]:
        from distributed import wait

        events: list[Progress | Finished] = self._reports()
        if self.futures:
            try:
                done = wait(list(self.futures), timeout=timeout, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = set()
            events += [Finished(self.futures.pop(future), self._attempt(future)) for future in done]
        else:
            time.sleep(min(timeout, 0.1))
        events += self._reports()
        now = time.time()
        for future, key in list(self.futures.items()):
            if now > self.deadlines.get(key, float("inf")):
                future.cancel()
                del self.futures[future]
                reason = f"time limit {self.limits[key]:g} s exceeded (the Dask worker did not stop it)"
                events.append(Finished(key, Attempt("timeout", reason=reason)))
        return events

    def _reports(self) -> list[Progress]:
        reports = []
        while True:
            try:
                _, fields = self.reports.get_nowait()
            except queue.Empty:
                return reports
            key = fields.get("key")
            if key in self.futures.values():
                if fields.get("phase") == "start" and self.limits.get(key) is not None:
                    self.deadlines[key] = fields["time"] + self.limits[key] + GRACE_SECONDS
                reports.append(Progress(key, fields))

    @staticmethod
    def _attempt(future) -> Attempt:
        from distributed import KilledWorker

        try:
            status, result, reason = future.result()
        except (KilledWorker, TimeoutError) as error:
            return Attempt("lost", reason=f"the Dask worker running it died ({type(error).__name__})")
        except Exception as error:  # noqa: BLE001 - the task wrapper's own failure on the worker
            return Attempt("error", reason=describe_error(error))
        return Attempt(status, result=result, reason=reason)

    def close(self) -> None:
        """Cancel what is still running, stop listening and close the client."""
        for future in self.futures:
            future.cancel()
        self.futures.clear()
        try:
            self.client.unsubscribe_topic(self.topic)
        finally:
            self.client.close()
