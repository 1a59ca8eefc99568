"""Running proxy and final trainings on a ``concurrent.futures.Executor``: local processes or Dask.

* :func:`local_executor` — a ``ProcessPoolExecutor`` with the ``spawn`` start method (JAX is not
  fork-safe); each worker loads the datasets once and keeps its compiled programs.
* :func:`dask_executor` — ``distributed.Client(address).get_executor(pure=False)``; each training is
  one Dask task. An unreachable scheduler is a :class:`ExecutorUnavailable` error after the timeout.

:class:`TaskRunner` submits a set of keyed tasks and hands each result to a callback as it arrives
(out of order; the caller keys them). Every task runs under :func:`call_with_time_limit`, which runs
it in a thread of the worker and gives up waiting after its time limit (the training itself also
stops at its next log point, see ``autoloss.proxy``). A task that passes its time limit, or whose
worker dies (``BrokenProcessPool``; Dask's ``KilledWorker`` once the scheduler gave up on it), is
retried once; retries run one at a time, so a task that kills its worker cannot take an innocent
one down with it twice. A task that fails again is recorded as failed with the reason; an exception
raised by the task itself is recorded at once (it would fail again). The search goes on either way.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import multiprocessing
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool

EXECUTOR_ERRORS = ("a worker process died", "the task exceeded its time limit")


class ExecutorUnavailable(ValueError):
    """The executor cannot be reached or started (e.g. no Dask scheduler at the address)."""


def call_with_time_limit(fn: Callable[[dict], dict], spec: dict, seconds: float | None) -> tuple[str, object]:
    """``("ok", fn(spec))``, ``("timeout", message)`` after ``seconds``, or ``("error", message)``."""
    outcome: list[tuple[str, object]] = []

    def target():
        try:
            outcome.append(("ok", fn(spec)))
        except BaseException as error:  # noqa: BLE001 - reported to the driver as the task's failure
            last = traceback.extract_tb(error.__traceback__)[-1:]
            where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
            outcome.append(("error", f"{type(error).__name__}: {error}{where}"))

    thread = threading.Thread(target=target, name="autoloss-task", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        return "timeout", f"exceeded its time limit of {seconds:g} s"
    return outcome[0]


def local_executor(workers: int) -> cf.Executor:
    """A process pool of ``workers`` spawned processes."""
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def dask_executor(address: str, *, timeout: float = 5.0) -> tuple[cf.Executor, Callable[[], None]]:
    """(executor, close) of the Dask cluster at ``address``; ExecutorUnavailable within ``timeout`` seconds."""
    try:
        from distributed import Client
    except ImportError as error:  # pragma: no cover - dask[distributed] is a dependency
        raise ExecutorUnavailable(f"--dask-scheduler needs dask[distributed]: {error}") from None
    failure = None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, ValueError, TimeoutError) as error:
        failure = str(error)
    if failure is not None:
        # The half-built Client closes its event loop when collected; collect it now, because collected
        # later (inside another Dask call holding the loop lock) it deadlocks.
        gc.collect()
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({failure}); "
                                  "check the address (tcp://HOST:PORT) and that the scheduler is running")
    return client.get_executor(pure=False), client.close


def _lost_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (BrokenProcessPool, cf.CancelledError)
    try:
        from distributed import KilledWorker

        errors += (KilledWorker,)
    except ImportError:  # pragma: no cover
        pass
    return errors


class TaskRunner:
    """Runs keyed tasks on executors from ``make_executor``, with time limits and one retry.

    ``make_executor()`` returns a fresh executor, or ``(executor, close)``; it is called again when a
    local pool broke because a worker died. ``TaskRunner.of(executor)`` runs on an executor the caller
    owns: it is never shut down here, and if it breaks the run stops with ExecutorUnavailable.
    """

    def __init__(self, make_executor: Callable[[], cf.Executor | tuple], *, retries: int = 1, owned: bool = True):
        self._make = make_executor
        self._executor: cf.Executor | None = None
        self._close: Callable[[], None] | None = None
        self.retries = retries
        self.owned = owned

    @classmethod
    def of(cls, executor: cf.Executor, *, retries: int = 1) -> TaskRunner:
        """A runner on the caller's ``executor``."""
        return cls(lambda: executor, retries=retries, owned=False)

    @property
    def executor(self) -> cf.Executor:
        """The current executor, started on first use."""
        if self._executor is None:
            made = self._make()
            self._executor, self._close = made if isinstance(made, tuple) else (made, None)
        return self._executor

    def _discard(self) -> None:
        if self._executor is not None and self.owned:
            try:
                self._executor.shutdown(wait=False, cancel_futures=True)
            except TypeError:  # Dask's ClientExecutor cancels pending futures on shutdown(wait=False)
                self._executor.shutdown(wait=False)
            if self._close is not None:
                self._close()
        self._executor = self._close = None

    def close(self) -> None:
        """Shut the executor down (running tasks are abandoned)."""
        self._discard()

    def run(
        self,
        fn: Callable[[dict], dict],
        tasks: Mapping[str, tuple[dict, float | None]],
        on_result: Callable[[str, dict], None],
        *,
        retry_timeouts: bool = True,
    ) -> None:
        """Run ``fn(spec)`` for every ``{key: (spec, time limit)}``; ``on_result(key, result)`` as each ends.

        A result is ``fn``'s dict plus ``attempts``, or ``{"status": "failed", "reason": ..., "attempts": n}``.
        """
        attempts = dict.fromkeys(tasks, 0)
        retry = self._round(fn, tasks, list(tasks), attempts, on_result, retry_timeouts)
        while retry:
            key = retry.pop(0)
            retry += self._round(fn, tasks, [key], attempts, on_result, retry_timeouts)

    def _round(self, fn, tasks, keys, attempts, on_result, retry_timeouts) -> list[str]:
        """Run ``keys`` together; report finished ones; return those to retry."""
        lost_errors = _lost_errors()
        futures = {}
        for key in keys:
            spec, seconds = tasks[key]
            attempts[key] += 1
            try:
                futures[self.executor.submit(call_with_time_limit, fn, spec, seconds)] = key
            except (BrokenProcessPool, RuntimeError) as error:  # only a caller's executor stays broken
                raise ExecutorUnavailable(f"the executor cannot take tasks ({type(error).__name__}: {error}); "
                                          "resume the search with a working one") from None
        retry, broken = [], False
        for future in cf.as_completed(futures):
            key = futures[future]
            try:
                status, value = future.result()
            except lost_errors as error:
                broken = broken or isinstance(error, BrokenProcessPool)
                status, value = "lost", f"a worker process died ({type(error).__name__})"
            if status == "ok":
                on_result(key, {**value, "attempts": attempts[key]})
            elif status in ("lost", "timeout") and attempts[key] <= self.retries and (
                    status == "lost" or retry_timeouts):
                retry.append(key)
            else:
                on_result(key, {"status": "failed", "reason": str(value), "attempts": attempts[key]})
        if broken:
            self._discard()  # a broken pool takes no new tasks; the next round starts a fresh one
        return retry
