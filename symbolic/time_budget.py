"""CPU-time budgets for symbolic steps that can run away, enforced in any thread.

SymPy has no time limit of its own: its automatic evaluation decides signs of constants with
adaptive-precision arithmetic and walks its assumption system, both of which can take minutes
on a hostile formula. ``SIGALRM`` interrupts only the main thread, and candidates are built in
worker threads and processes too. So ``with time_budget(seconds):`` arms a deadline on the
calling thread's CPU clock, and one watchdog thread per process checks the armed deadlines
every ``POLL_SECONDS``; when one passes, it raises ``BudgetExceeded`` in that thread through
CPython's ``PyThreadState_SetAsyncExc``, which delivers an exception at the thread's next
bytecode boundary, as Ctrl-C does in the main thread.

What this cannot do: interrupt a single long C-level call (a multiplication of two
billion-bit integers inside mpmath/gmpy). Callers bound what can reach such a call first; for
candidates, every constant subexpression is checked in float64 before SymPy sees it
(``symbolic.constant_range``).

Why this design:

* CPU time, not wall time, so a budget is the same amount of work on a busy machine (where
  ``time.pthread_getcpuclockid`` is missing, wall time is counted instead);
* ``BudgetExceeded`` derives from ``BaseException``, like ``KeyboardInterrupt``, so library
  code that catches ``Exception`` does not swallow it;
* an exception delivered where Python ignores exceptions (a ``__del__`` method, a garbage
  collector callback such as JAX's) is lost, so an overrun budget fires again every
  ``REFIRE_SECONDS`` until its block is left (and ``sys.unraisablehook`` does not report the
  lost one);
* leaving the ``with`` block withdraws the budget and clears an exception that was scheduled
  but not yet delivered, raising it synchronously instead: no exception arrives after its block;
* budgets nest (each is enforced on its own), and the watchdog parks on a condition when no
  budget is armed, so an idle process pays nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time

POLL_SECONDS = 0.01
REFIRE_SECONDS = 0.1
_MAX_FIRES = 100  # a budget whose block could not be left cleanly stops firing after this many
_IDLE_POLLS = 100  # park the watchdog after this many polls with nothing armed

_SET_ASYNC_EXC = ctypes.pythonapi.PyThreadState_SetAsyncExc  # (unsigned long id, PyObject *exc or NULL)


class BudgetExceeded(BaseException):
    """A ``time_budget`` ran out; raised in the thread that overran it."""


def _thread_clock(thread_id: int):
    """A function giving the CPU seconds spent by thread ``thread_id`` (wall seconds as a fallback)."""
    try:
        clock_id = time.pthread_getcpuclockid(thread_id)
    except (AttributeError, OSError):
        return time.monotonic
    return lambda: time.clock_gettime(clock_id)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Schedule ``exception`` in the thread, or with None clear one scheduled and not yet raised."""
    _SET_ASYNC_EXC(ctypes.c_ulong(thread_id), None if exception is None else ctypes.py_object(exception))


class _Budget:
    __slots__ = ("thread_id", "clock", "deadline", "fired", "last_fired")

    def __init__(self, seconds: float):
        self.thread_id = threading.get_ident()
        self.clock = _thread_clock(self.thread_id)
        self.deadline = self.clock() + seconds
        self.fired = 0  # times BudgetExceeded was scheduled in its thread
        self.last_fired = 0.0

    def due(self, now: float) -> bool:
        """True when the budget is spent and its exception should be scheduled (again) at ``now``."""
        if self.fired >= _MAX_FIRES or (self.fired and now - self.last_fired < REFIRE_SECONDS):
            return False
        try:
            return self.clock() > self.deadline
        except OSError:  # the thread is gone
            return False


class _Watchdog:
    """The armed budgets of this process and the thread that enforces them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.armed: dict[int, _Budget] = {}  # id(budget) -> budget
        self.thread: threading.Thread | None = None
        self.parked = False

    def arm(self, budget: _Budget) -> None:
        with self.lock:
            self.armed[id(budget)] = budget
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="time-budget-watchdog", daemon=True)
                self.thread.start()
            elif self.parked:
                self.wake.notify()

    def disarm(self, budget: _Budget) -> bool:
        """Withdraw ``budget``; True if it (or another budget of this thread) has fired."""
        with self.lock:
            self.armed.pop(id(budget), None)
            owed = bool(budget.fired) or any(b.fired for b in self.armed.values() if b.thread_id == budget.thread_id)
            if owed:
                _raise_in(budget.thread_id, None)  # clear one not yet delivered: it is raised synchronously instead
        return owed

    def run(self) -> None:
        idle = 0
        while True:
            with self.lock:
                if not self.armed:
                    idle += 1
                    if idle > _IDLE_POLLS:
                        self.parked = True
                        self.wake.wait()
                        self.parked = False
                        idle = 0
                now = time.monotonic()
                for budget in self.armed.values():
                    if budget.due(now):
                        budget.fired += 1
                        budget.last_fired = now
                        _raise_in(budget.thread_id, BudgetExceeded)
            time.sleep(POLL_SECONDS)


_watchdog = _Watchdog()


def _quiet_about_lost_budgets(unraisable, report=sys.unraisablehook) -> None:
    if unraisable.exc_type is not BudgetExceeded:  # a lost BudgetExceeded is raised again; nothing to report
        report(unraisable)


sys.unraisablehook = _quiet_about_lost_budgets


def _reset_after_fork() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # the parent's watchdog thread does not exist in the child


os.register_at_fork(after_in_child=_reset_after_fork)


class time_budget:  # noqa: N801 - used like contextlib's context managers
    """``with time_budget(seconds):`` raises ``BudgetExceeded`` once the block has used ``seconds`` of CPU."""

    __slots__ = ("seconds", "budget")

    def __init__(self, seconds: float):
        if not seconds > 0:
            raise ValueError(f"a time budget must be positive, got {seconds!r}")
        self.seconds = seconds
        self.budget = None

    def __enter__(self) -> time_budget:
        self.budget = _Budget(self.seconds)
        try:
            _watchdog.arm(self.budget)
        except BudgetExceeded:  # an enclosing budget ran out while this one was being armed
            _watchdog.disarm(self.budget)
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # An exception can arrive on entering disarm, before the budget is withdrawn: withdraw it
        # then (a budget fires again only REFIRE_SECONDS later, so one retry is enough).
        try:
            owed = _watchdog.disarm(self.budget)
        except BudgetExceeded:
            owed = _watchdog.disarm(self.budget) or True
        if owed and exc_type is None:
            raise BudgetExceeded()
