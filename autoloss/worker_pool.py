"""A pool of worker processes that enforces hard time limits: a task past its limit is killed, not abandoned.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot stop one running task (``cancel`` only
works before a task starts), and a worker that dies breaks the whole pool, failing every task in it.
``loky``'s reusable executor has the same per-task limits (it can only kill all workers at once), and
a thread that gives up waiting (what this project did before) leaves the training running, holding CPU
and GPU memory, while its retry competes with it. So each slot of :class:`WorkerPool` is one
:class:`~autoloss.task_process.TaskProcess` that runs one task at a time and keeps its compiled
programs and loaded data between tasks; the pool waits on all of them at once
(``multiprocessing.connection.wait``), and when a task passes its deadline it kills that process's
group — wherever the task is, compiling included — and reports the attempt as ``timeout``. A process
that dies (a segfault, the OOM killer) ends its task as ``lost``. Either way only that slot is
affected; its next task starts a fresh process. The deadline starts when the process is ready (its
imports done), so a slow start of a fresh process does not count against a task.

Events of :meth:`WorkerPool.poll` are :class:`Progress` (what the task reported) and :class:`Finished`
(an :class:`Attempt`: ``ok`` with the result, ``error`` with the task's exception, ``timeout`` or
``lost``). :class:`autoloss.executors.TaskRunner` turns attempts into results and retries.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from multiprocessing.connection import wait

from autoloss.task_process import TaskProcess

STARTUP_SECONDS = 600.0  # a fresh process imports JAX and the task's modules; a hung start is lost after this


class WorkerUnavailable(RuntimeError):
    """A worker process cannot start at all (e.g. the task's module does not import there)."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """How one attempt ended: ``ok`` (with ``result``), ``error``, ``timeout`` or ``lost`` (with ``reason``)."""

    status: str
    result: dict | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Progress:
    """A progress report of a running task (fields as sent by ``autoloss.task_process.report_progress``)."""

    key: str
    fields: dict


@dataclasses.dataclass(frozen=True)
class Finished:
    """The end of one attempt of task ``key``."""

    key: str
    attempt: Attempt


def progress_phrase(fields: dict | None) -> str:
    """Where a task was according to its last report: ``at step 40 of 150``, ``while compiling``, ..."""
    if not fields:
        return "before its first progress report"
    phase = fields.get("phase")
    if phase == "train" and fields.get("step"):
        return f"at step {fields['step']} of {fields.get('steps', '?')}"
    return {"train": "while compiling", "data": "while loading data", "evaluate": "while evaluating"}.get(
        phase, f"in phase {phase}")


@dataclasses.dataclass
class _Running:
    key: str
    seconds: float | None
    sent: float
    deadline: float | None = None
    last: dict | None = None


@dataclasses.dataclass
class _Slot:
    process: TaskProcess | None = None
    task: _Running | None = None


class WorkerPool:
    """``size`` worker processes, started on demand, each running one task at a time under a hard time limit.

    ``environment(slot)`` gives the extra environment variables of a slot's processes (e.g. its GPU).
    """

    shared_filesystem = True

    def __init__(self, size: int, *, environment: Callable[[int], dict[str, str]] | None = None):
        self.slots = [_Slot() for _ in range(size)]
        self.environment = environment or (lambda slot: {})

    def capacity(self) -> int:
        """How many tasks can start now."""
        return sum(slot.task is None for slot in self.slots)

    def share(self, value):
        """``value`` as tasks should carry it (here: itself; it travels with each task)."""
        return value

    def start(self, key: str, fn: Callable[[dict], dict], spec: dict, seconds: float | None) -> None:
        """Run ``fn(spec)`` in a free slot, to be stopped ``seconds`` after its process is ready."""
        index, slot = next((k, s) for k, s in enumerate(self.slots) if s.task is None)
        for fresh in (False, True):
            if slot.process is None or fresh:
                if slot.process is not None:
                    slot.process.kill()
                slot.process = TaskProcess(preload=[fn.__module__], environment=self.environment(index))
            try:
                slot.process.send(key, fn, spec)
                break
            except OSError:  # the idle process died since its last task
                continue
        now = time.monotonic()
        slot.task = _Running(key, seconds, now)
        if slot.process.ready:
            slot.task.deadline = None if seconds is None else now + seconds

    def poll(self, timeout: float) -> list[Progress | Finished]:
        """Wait up to ``timeout`` seconds for news of the running tasks; kill those past their deadline."""
        busy = {slot.process.connection: slot for slot in self.slots if slot.task is not None}
        now = time.monotonic()
        limits = [self._deadline(slot) - now for slot in busy.values()]
        events: list[Progress | Finished] = []
        for connection in wait(list(busy), timeout=max(0.0, min([timeout, *limits]))) if busy else []:
            slot = busy[connection]
            while slot.task is not None and slot.process is not None:
                events += self._receive(slot)
                if slot.process is None or slot.task is None or not slot.process.connection.poll():
                    break
        now = time.monotonic()
        for slot in self.slots:
            if slot.task is not None and now >= self._deadline(slot):
                events.append(self._expire(slot))
        return events

    def _deadline(self, slot: _Slot) -> float:
        task = slot.task
        if not slot.process.ready:
            return task.sent + STARTUP_SECONDS
        return task.deadline if task.deadline is not None else float("inf")

    def _receive(self, slot: _Slot) -> list[Progress | Finished]:
        task, message = slot.task, slot.process.receive()
        if message is None:
            ended = slot.process.ended()
            slot.process, slot.task = None, None
            return [Finished(task.key, Attempt("lost", reason=f"the worker process died: {ended}"))]
        kind, _, payload = message
        if kind == "ready":
            slot.process.ready = True
            task.deadline = None if task.seconds is None else time.monotonic() + task.seconds
            return []
        if kind == "failed":
            slot.process.kill()
            slot.process, slot.task = None, None
            raise WorkerUnavailable(f"a worker process cannot run the task: {payload}")
        if kind == "progress":
            task.last = payload
            return [Progress(task.key, payload)]
        slot.task = None
        if kind == "done":
            return [Finished(task.key, Attempt("ok", result=payload))]
        return [Finished(task.key, Attempt("error", reason=payload))]

    def _expire(self, slot: _Slot) -> Finished:
        task = slot.task
        slot.process.kill()
        ready = slot.process.ready
        slot.process, slot.task = None, None
        if not ready:
            return Finished(task.key, Attempt("lost", reason=f"the worker process did not start within "
                                                            f"{STARTUP_SECONDS:g} s"))
        return Finished(task.key, Attempt("timeout", reason=f"time limit {task.seconds:g} s exceeded "
                                                          f"(stopped {progress_phrase(task.last)})"))

    def close(self) -> None:
        """Stop every process: idle ones are asked to exit, busy ones are killed."""
        for slot in self.slots:
            if slot.process is not None:
                if slot.task is None:
                    slot.process.stop()
                else:
                    slot.process.kill()
            slot.process, slot.task = None, None
