"""One worker process that runs tasks one at a time and that its parent can kill: both sides of it.

The parent (:class:`TaskProcess`) starts ``python -m autoloss.task_process`` with ``subprocess`` — not
``multiprocessing``, because a Dask worker is a daemonic process, which ``multiprocessing`` forbids to
have children — and talks to it over a socket pair with ``multiprocessing.connection`` (pickled
messages). The child gets the parent's ``sys.path`` (as a spawned ``multiprocessing`` child would),
imports the modules it is told to preload, says ``ready``, then serves ``run`` requests:
``fn(spec)`` for a picklable top-level ``fn``, answered by ``done`` (the result) or ``error`` (the
exception in one line). While ``fn`` runs, :func:`report_progress` sends ``progress`` messages.

The child is the leader of its own process group, so killing the group (:meth:`TaskProcess.kill`)
stops the task wherever it is — in Python, in native code, while XLA compiles — with whatever
processes it started. It ignores SIGINT (the parent decides what an interrupt means) and kills its
group when its parent is gone, so a killed search leaves no training behind.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

PARENT_POLL_SECONDS = 0.5

_channel: tuple[Connection, threading.Lock, object] | None = None  # the child's link while a task runs


def report_progress(**fields: Any) -> None:
    """Send ``fields`` (JSON-ready) to the parent as the running task's progress; a no-op outside a task process."""
    channel = _channel
    if channel is None:
        return
    connection, lock, task_id = channel
    with lock, contextlib.suppress(OSError):
        connection.send(("progress", task_id, {**fields, "time": time.time()}))


def describe_error(error: BaseException) -> str:
    """``Type: message at file:line`` of an exception, for a one-line failure reason."""
    last = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(error).__name__}: {error}{where}"


def exit_description(returncode: int | None) -> str:
    """How a process ended, in words: ``killed by SIGKILL (signal 9; ...)`` or ``exit code 3``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "a signal"
        note = "; e.g. the out-of-memory killer" if name == "SIGKILL" else ""
        return f"killed by {name} (signal {-returncode}{note})"
    return f"exit code {returncode}"


class TaskProcess:
    """The parent's handle of one worker process: start it, send it tasks, read its messages, kill it."""

    def __init__(self, preload: Sequence[str] = (), environment: Mapping[str, str] | None = None):
        parent_end, child_end = socket.socketpair()
        paths = [entry or os.getcwd() for entry in sys.path]
        env = {**os.environ, **(environment or {}), "PYTHONPATH": os.pathsep.join(paths)}
        command = [sys.executable, "-m", "autoloss.task_process", str(child_end.fileno()), str(os.getpid()),
                   *preload]
        try:
            self.process = subprocess.Popen(command, pass_fds=(child_end.fileno(),), env=env, stdin=subprocess.DEVNULL,
                                            process_group=0)
        finally:
            child_end.close()
        self.connection = Connection(parent_end.detach())
        self.pid = self.process.pid
        self.ready = False

    def send(self, task_id: object, fn: Callable[[dict], dict], spec: dict) -> None:
        """Ask the process to run ``fn(spec)``; its answer comes as a ``done`` or ``error`` message."""
        self.connection.send(("run", task_id, fn, spec))

    def receive(self) -> tuple | None:
        """The next message, or None when the process is gone (its end of the socket closed)."""
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            return None

    def kill(self) -> None:
        """Kill the process and everything it started (its process group), and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        self.connection.close()

    def ended(self) -> str:
        """How the process ended (waits for it: call after its socket closed)."""
        try:
            returncode = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.process.returncode
        self.connection.close()
        return exit_description(returncode)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the process to exit after its current task, and kill it if it has not within ``timeout`` seconds."""
        with contextlib.suppress(OSError):
            self.connection.send(("stop",))
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()


# --- the child -----------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """Kill this process group as soon as the parent is gone (a killed search must not leave trainings)."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="autoloss-parent-watch", daemon=True).start()


def serve(fd: int, parent_pid: int, preload: Sequence[str]) -> None:
    """The child's loop: preload, say ``ready``, then run tasks until ``stop`` or the parent's end closes."""
    global _channel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent_pid)
    connection = Connection(fd)
    lock = threading.Lock()
    try:
        for name in preload:
            importlib.import_module(name)
    except BaseException as error:  # noqa: BLE001 - the parent reports why this worker cannot start
        connection.send(("failed", None, describe_error(error)))
        return
    connection.send(("ready", None, os.getpid()))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        except Exception as error:  # noqa: BLE001 - e.g. the task's function cannot be imported here
            connection.send(("failed", None, describe_error(error)))
            return
        if message[0] == "stop":
            return
        _, task_id, fn, spec = message
        _channel = (connection, lock, task_id)
        try:
            answer = ("done", task_id, fn(spec))
        except BaseException as error:  # noqa: BLE001 - a task's exception is its failure, reported to the parent
            answer = ("error", task_id, describe_error(error))
        _channel = None
        with lock:
            try:
                connection.send(answer)
            except Exception as error:  # noqa: BLE001 - a result that cannot be pickled
                connection.send(("error", task_id, f"the task's result cannot be sent back: {describe_error(error)}"))


if __name__ == "__main__":
    from autoloss import task_process  # the module tasks import, not this __main__ copy of it

    task_process.serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
