"""Where symbolic proofs run: a warm worker process that can always be stopped.

SymPy has no time limit of its own. A ``limit``, ``factor`` or assumption query on an
unlucky formula can run for minutes, and the alarm signal (``SIGALRM``) that can interrupt
Python code neither works off the main thread (a search judges candidates in worker
threads) nor interrupts a long C-level call (big-integer arithmetic in gmpy, mpmath at high
precision). So every proof of a candidate runs here, as one mechanism with two layers:

* the proofs run in a separate Python process, started once per calling process and kept
  warm (its imports and SymPy's caches stay), fed by pickled calls over a pipe;
* inside it, a proof task is stopped at its budget by the process's own interval timer
  (the worker *is* its main thread), repeating until the limit is lifted, as a raise inside
  a garbage-collector callback is dropped; the proof code catches ``ProofTimeout`` per
  property, so whatever was decided before the budget ran out is kept, and the worker stays
  warm;
* the caller waits until the worker has spent the budget plus ``KILL_MARGIN`` of CPU time
  (or, as a backstop, ``WALL_FACTOR`` times that in wall time plus ``WALL_SLACK``). A worker
  that has not answered by then is inside a step no signal reaches: it is killed, a fresh one
  is started at once in the background, and ``call`` raises ``ProofTimeout``.

Budgets are CPU seconds of the worker (:func:`clock`), not wall seconds, as for the other
symbolic budgets (``symbolic.time_budget``): a proof gets the same amount of work on a busy
machine as on an idle one, so a search's verdicts, and with them its trajectory, do not depend
on what else the machine runs. (A proof that needs about its whole budget can still land on
either side of it from run to run; the budget should leave room.)

Starting a worker (about as long as importing the project) is not charged to any budget:
``call`` waits for the worker to be ready before its clock starts. Calls from several
threads of one process take turns on one worker.

``worker_main`` is the worker's loop: length-prefixed pickles in on stdin, out on stdout;
it exits when its input closes.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psutil

KILL_MARGIN = 0.3  # CPU seconds past a task's budget before its worker is killed
WALL_FACTOR, WALL_SLACK = 20.0, 10.0  # the wall-time backstop of a call: a worker that gets no CPU at all
POLL_SECONDS = 0.05  # how often the caller looks at the worker's CPU time
STARTUP_TIMEOUT = 300.0  # seconds a fresh worker may take to import the project
_HEADER = struct.Struct("<Q")
_WORKER_COMMAND = "from symbolic.cpv.proof_worker import worker_main; worker_main()"
_READY = b"ready"


class ProofTimeout(BaseException):  # noqa: N818 - BaseException: SymPy's ``except Exception`` must not swallow it
    """A proof ran out of its time budget."""


class WorkerUnavailable(RuntimeError):
    """The proof worker could not be started or died unexpectedly."""


# --- inside the worker ------------------------------------------------------------------------


_IN_WORKER = False
_DEADLINE = math.inf  # the innermost time limit in force (clock() seconds)
REPEAT = 0.02  # seconds: the alarm repeats until the limit is lifted, as a raise can be swallowed


def clock() -> float:
    """The proofs' clock: CPU seconds of this process (in the worker, the proofs' own work)."""
    return time.process_time()


def _raise_timeout(signum, frame):
    # An exception raised inside a garbage-collector callback or a __del__ is printed and dropped,
    # so the alarm repeats (every REPEAT seconds) and raises whenever the limit has passed.
    if clock() >= _DEADLINE:
        raise ProofTimeout


def _arm(deadline: float) -> None:
    global _DEADLINE
    _DEADLINE = deadline
    if deadline == math.inf:
        signal.setitimer(signal.ITIMER_PROF, 0)
    else:
        signal.setitimer(signal.ITIMER_PROF, max(deadline - clock(), 1e-6), REPEAT)


def _disarm() -> None:
    """Lift every limit; a late alarm landing before the deadline is cleared is caught and the clearing retried."""
    while True:
        try:
            _arm(math.inf)
            return
        except ProofTimeout:
            continue


@contextlib.contextmanager
def time_limit(deadline: float):
    """Stop the enclosed code with ``ProofTimeout`` at ``deadline`` (:func:`clock` seconds).

    Limits nest: an inner one never extends an outer one, and the outer one is back in force
    on exit. Only in the worker process (its main thread); elsewhere the code runs unbounded
    by this and relies on its own deadline checks, as proofs called directly in tests do.
    """
    if not _IN_WORKER:
        yield
        return
    outer = _DEADLINE
    if min(deadline, outer) <= clock():
        raise ProofTimeout
    _arm(min(deadline, outer))
    try:
        yield
    finally:
        _arm(outer)


def _read_exact(stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _write_message(stream, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _quiet_dropped_timeouts(unraisable) -> None:
    """Print unraisable errors as Python does, except a ``ProofTimeout`` dropped by a callback (the alarm repeats)."""
    if not isinstance(unraisable.exc_value, ProofTimeout):
        sys.__unraisablehook__(unraisable)


def worker_main() -> None:
    """The worker's loop: call each pickled (function, args) and send back (ok, result)."""
    global _IN_WORKER
    _IN_WORKER = True
    signal.signal(signal.SIGPROF, _raise_timeout)
    sys.unraisablehook = _quiet_dropped_timeouts
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal stops the caller, which stops us
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    import symbolic.cpv.proofs  # noqa: F401 - the imports are the start-up cost; pay it before "ready"

    _write_message(stdout, _READY)
    while True:
        try:
            size = _HEADER.unpack(_read_exact(stdin, _HEADER.size))[0]
            function, args = pickle.loads(_read_exact(stdin, size))
        except EOFError:
            return
        try:
            reply = (True, function(*args))
        except ProofTimeout:
            reply = (False, "ProofTimeout")
        except Exception as error:  # noqa: BLE001 - reported to the caller, the worker stays up
            reply = (False, f"{type(error).__name__}: {error}")
        _disarm()
        try:
            payload = pickle.dumps(reply)
        except Exception as error:  # noqa: BLE001
            payload = pickle.dumps((False, f"unpicklable result: {error}"))
        _write_message(stdout, payload)


# --- in the calling process -------------------------------------------------------------------


class ProofWorker:
    """One warm worker process; ``call`` runs a module-level function in it under a hard limit."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._ready = False
        self.starts = 0  # how many worker processes were started (for tests and benchmarks)

    def _start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        # -c, not -m: the worker's loop must run in the module object the proofs import
        self._process = subprocess.Popen([sys.executable, "-c", _WORKER_COMMAND], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, bufsize=0)
        self._ready = False
        self.starts += 1

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            for stream in (self._process.stdin, self._process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        self._process = None
        self._ready = False

    def _receive(self, expired: Callable[[], bool]) -> bytes | None:
        """One message from the worker, or None when ``expired()`` turns true first."""
        fd = self._process.stdout.fileno()
        data, size = bytearray(), None
        while size is None or len(data) < _HEADER.size + size:
            if size is None and len(data) >= _HEADER.size:
                size = _HEADER.unpack_from(data)[0]
                continue
            if not select.select([fd], [], [], POLL_SECONDS)[0]:
                if expired():
                    return None
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerUnavailable(f"the proof worker exited (code {self._process.poll()})")
            data += chunk
        return bytes(data[_HEADER.size:_HEADER.size + size])

    def _ensure_ready(self) -> None:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            self._start()
        if not self._ready:
            started = time.perf_counter()
            message = self._receive(lambda: time.perf_counter() - started > STARTUP_TIMEOUT)
            if message != _READY:
                self._stop()
                raise WorkerUnavailable("the proof worker did not start")
            self._ready = True

    def call(self, function, args: tuple, seconds: float):
        """``function(*args)`` in the worker; ``ProofTimeout`` past ``seconds`` + KILL_MARGIN of its CPU time."""
        with self._lock:
            self._ensure_ready()
            payload = pickle.dumps((function, args))
            try:
                self._process.stdin.write(_HEADER.pack(len(payload)) + payload)
                self._process.stdin.flush()
                message = self._receive(self._expiry(max(0.0, seconds) + KILL_MARGIN))
            except (BrokenPipeError, WorkerUnavailable) as error:
                self._stop()
                raise WorkerUnavailable(str(error)) from None
            if message is None:  # stuck in a step no signal reaches: stop it, warm up a fresh one
                self._stop()
                self._start()
                raise ProofTimeout
            ok, result = pickle.loads(message)
            if ok:
                return result
            if result == "ProofTimeout":
                raise ProofTimeout
            raise RuntimeError(result)

    def _expiry(self, seconds: float) -> Callable[[], bool]:
        """Whether the worker has spent ``seconds`` of CPU time since now (or the wall-time backstop passed)."""
        worker = psutil.Process(self._process.pid)

        def cpu() -> float:
            try:
                times = worker.cpu_times()
            except psutil.Error:
                return math.inf
            return times.user + times.system

        start, wall_end = cpu(), time.perf_counter() + WALL_FACTOR * seconds + WALL_SLACK
        return lambda: cpu() - start > seconds or time.perf_counter() > wall_end

    def close(self) -> None:
        """Stop the worker process."""
        with self._lock:
            self._stop()


_WORKER: ProofWorker | None = None
_WORKER_LOCK = threading.Lock()


def proof_worker() -> ProofWorker:
    """The calling process's proof worker (created on first use, stopped at exit)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ProofWorker()
            atexit.register(_WORKER.close)
        return _WORKER
