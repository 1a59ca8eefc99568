"""Tasks for worker processes that start fast (nothing heavy imported): they sleep, answer, fail or misbehave."""

from __future__ import annotations

import ctypes
import os
import signal
import time


def sleepy_task(spec: dict) -> dict:
    """Sleeps ``spec["sleep"]`` seconds, then answers."""
    time.sleep(spec["sleep"])
    return {"status": "ok", "value": spec["value"]}


def dying_task(spec: dict) -> dict:
    """Kills its own worker process when ``spec["die"]``; answers otherwise."""
    if spec.get("die"):
        os._exit(3)
    time.sleep(spec.get("sleep", 0.0))
    return {"status": "ok", "value": spec["value"]}


def misbehaving_task(spec: dict) -> dict:
    """Misbehaves as ``spec["do"]`` says — hangs in Python or in native code, or kills its own process — or answers.

    ``python``: a busy loop that never returns; ``sleep``: one long ``time.sleep`` (a C call); ``read``: a
    blocked read of a pipe nobody writes; ``sigkill``: SIGKILL to itself (as the OOM killer would);
    ``segfault``: a read of address 0. Each reports progress first, as a training would.
    """
    from autoloss.task_process import report_progress

    report_progress(phase="train", step=1, steps=10)
    what = spec.get("do")
    if what == "python":
        while True:
            pass
    if what == "sleep":
        time.sleep(10_000)
    if what == "read":
        reader, _ = os.pipe()
        os.read(reader, 1)
    if what == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "segfault":
        ctypes.string_at(0)
    time.sleep(spec.get("sleep", 0.0))
    return {"status": "ok", "value": spec["value"], "pid": os.getpid()}


def failing_task(spec: dict) -> dict:
    """Raises (a bug in the task, not a lost worker)."""
    raise RuntimeError(f"task {spec['value']} is broken")
