"""What each running training is doing, as the search's progress shows it: step, images/s, ETA, or stalled.

Worker processes report progress (``autoloss.task_process.report_progress``) with a ``phase`` —
``start``, ``data`` (loading data), ``train`` (``step`` of ``steps``; step 0 while the first step
compiles), ``final`` (a final training, whose step is known at each checkpoint it writes) or
``evaluate`` — and, while training, ``images_per_second`` and ``seconds_per_step``.
:class:`RunningTrainings` keeps the last report of each running task, with the time it arrived here,
and :func:`status_line` turns it into one line::

    gen 2 proxy erf_s(x*y): step 40/150, 12.3 images/s, ETA 1m05s
    final baseline: STALLED, no report for 3m10s (last: step 400/1000) on tcp://10.0.0.7:40331

A training is *stalled* when it has been silent for longer than ``STALL_SECONDS`` and three times the
longest silence it had before (so a training that reports rarely is not flagged for that alone).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

STALL_SECONDS = 120.0
_PHASES = {"start": "starting", "data": "loading data", "evaluate": "evaluating",
           "final": "training (progress shown at each checkpoint)"}


def duration(seconds: float) -> str:
    """``45s``, ``3m05s`` or ``2h10m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclasses.dataclass
class TrainingStatus:
    """The last report of one running training, and when it (and the one before) arrived."""

    label: str
    fields: dict
    started: float
    updated: float
    longest_silence: float = 0.0

    def stalled_for(self, now: float) -> float | None:
        """Seconds of silence when the training counts as stalled, else None."""
        silence = now - self.updated
        return silence if silence > max(STALL_SECONDS, 3 * self.longest_silence) else None


def _where(fields: dict) -> str:
    step, steps = fields.get("step"), fields.get("steps")
    return f"step {step}/{steps}" if step is not None and steps else _PHASES.get(fields.get("phase"), "started")


def status_line(status: TrainingStatus, now: float) -> str:
    """One line about a running training (see the module docstring)."""
    fields = status.fields
    suffix = f" [attempt {fields['attempt']}]" if fields.get("attempt", 1) > 1 else ""
    suffix += f" on {fields['worker']}" if fields.get("worker") else ""
    stalled = status.stalled_for(now)
    if stalled is not None:
        return f"{status.label}: STALLED, no report for {duration(stalled)} (last: {_where(fields)}){suffix}"
    phase = fields.get("phase")
    if phase == "train" and not fields.get("step"):
        return f"{status.label}: compiling ({duration(now - status.updated)}){suffix}"
    if phase == "train":
        parts = [_where(fields)]
        if fields.get("images_per_second"):
            parts.append(f"{fields['images_per_second']:.1f} images/s")
        if fields.get("seconds_per_step") and fields.get("steps"):
            left = (fields["steps"] - fields["step"]) * fields["seconds_per_step"] - (now - status.updated)
            parts.append(f"ETA {duration(left)}")
        return f"{status.label}: {', '.join(parts)}{suffix}"
    return f"{status.label}: {_where(fields)} ({duration(now - status.updated)}){suffix}"


class RunningTrainings:
    """The monitor of a ``TaskRunner.run``: keeps each running training's status and shows it via ``show(lines)``."""

    def __init__(self, show: Callable[[list[str]], None], *, clock: Callable[[], float] = time.monotonic):
        self.show = show
        self.clock = clock
        self.statuses: dict[str, TrainingStatus] = {}

    def update(self, key: str, fields: dict) -> None:
        """Record a report of training ``key``."""
        now = self.clock()
        status = self.statuses.get(key)
        if status is None or fields.get("phase") == "start":  # a new attempt (a Dask worker's start keeps it)
            before = status.fields if status else {"attempt": 1}
            label = fields.get("label") or (status.label if status else key)
            self.statuses[key] = TrainingStatus(label, {"attempt": before.get("attempt", 1), **fields}, now, now)
        else:
            status.longest_silence = max(status.longest_silence, now - status.updated)
            status.fields = {**status.fields, **fields}
            status.updated = now
        self.refresh()

    def end(self, key: str) -> None:
        """Training ``key`` ended."""
        self.statuses.pop(key, None)
        self.refresh()

    def lines(self) -> list[str]:
        """The status line of every running training."""
        now = self.clock()
        return [status_line(status, now) for status in self.statuses.values()]

    def refresh(self) -> None:
        """Show the lines again (a silent training turns stalled with time alone)."""
        self.show(self.lines())
