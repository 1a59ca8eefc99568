"""The run directory of a search: what was asked, everything that happened, and where it stands.

Layout (every JSON file is UTF-8; JSON files other than the log are replaced atomically — temporary
file, fsync, ``os.replace`` — so a kill at any moment leaves the previous complete version)::

    RUN_DIR/
      run.json           marker {"format": "cse-autoloss-search", "version": 1, "created": ...}
      config.json        every setting of the search (SearchConfig.to_dict), written once
      candidates.jsonl   the log, append-only, flushed and fsynced after every stage (see below)
      checkpoint.json    the search state (autoloss.search_state, versioned), replaced after every stage
      hall_of_fame.json  {"branches": {branch: [entry, ...]}} — rank, branch, form, key, infix,
                         latex, prefix, size, generation, proxy_ap, proxy_metrics, mos_score, cpv;
                         and {"pareto": {branch: ParetoFront.to_dict()}} (autoloss.pareto)
      progress.json      {"generations": [...], "funnel": {...}}: the data layout of
                         autoloss.plots_search (plot_search_progress, plot_funnel), plus per
                         generation the counts generated, unique, cpv, mos, proxy, best, median
      result.json        the final report (final evaluation rows, funnel, timings) once finished
      final/ROW[-seedS]/ each model of the final evaluation (``autoloss evaluate`` reads it)
      .lock              held (flock) while a search runs here

``candidates.jsonl`` holds one object per line, each with a unique ``id``:

* ``"event": "candidate"`` — one per candidate and stage it reached: ``branch``, ``generation``,
  ``stage`` (cpv, mos or proxy), ``status`` (passed/rejected, ok/failed), ``reason`` of a rejection,
  ``prefix`` (authors' format; ``key``, ``infix`` once a SymPy candidate was built), ``size``,
  ``origin`` (random, mutation, crossover, zoo:NAME), the stage's scores and ``seconds``. Raw trees
  that repeat a seen one (same functional fingerprint) are only counted, in the generation record.
* ``"event": "generation"`` — the generation's funnel, rejection reasons, proxy APs and parents.
* ``"event": "final"`` — one per training of the final evaluation (``row``, ``seed``).

A resumed search redoes the stage it was killed in; records already in the log are not written again
(by ``id``). Before any work, :meth:`RunStore.validate` reads the checkpoint and every line of the log
and names the file (and line) of anything damaged, with what to do. The only repair is of a last line
torn by a kill (no final newline): :meth:`RunStore.repair_log`, under the run's lock, moves it to
``candidates.jsonl.torn`` and says so — the log is never truncated silently.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from autoloss.search_config import SearchConfig, SearchConfigError
from detection.checkpoints import write_atomically

FORMAT = "cse-autoloss-search"
VERSION = 1
MARKER, CONFIG, LOG, CHECKPOINT = "run.json", "config.json", "candidates.jsonl", "checkpoint.json"
TORN = LOG + ".torn"
HALL_OF_FAME, PROGRESS, RESULT, LOCK = "hall_of_fame.json", "progress.json", "result.json", ".lock"


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (not a run, another run, busy, other settings, damaged)."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message if hint is None else f"{message}; {hint}")
        self.message, self.where, self.hint = message, where, hint


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=1, allow_nan=False).encode()


class RunStore:
    """Reads and writes one run directory; create it with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._logged: set[str] | None = None

    @staticmethod
    def check_new(path: str | os.PathLike) -> None:
        """RunDirectoryError unless ``path`` is missing or an empty directory."""
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise RunDirectoryError(f"{path} exists and is not a directory", where=str(path),
                                        hint="choose another --out")
            if (path / MARKER).is_file():
                raise RunDirectoryError(f"{path} already holds a search run", where=str(path),
                                        hint=f"continue it with --resume {path}, or choose a new --out")
            if any(path.iterdir()):
                raise RunDirectoryError(f"{path} is not empty and not a search run", where=str(path),
                                        hint="choose a new --out (nothing in it was changed)")

    @classmethod
    def create(cls, path: str | os.PathLike, config: SearchConfig) -> RunStore:
        """A new run in ``path`` (created; an existing directory must be empty)."""
        cls.check_new(path)
        store = cls(path)
        store.path.mkdir(parents=True, exist_ok=True)
        write_atomically(store.path / CONFIG, _dump(config.to_dict()))
        created = datetime.datetime.now().isoformat(timespec="seconds")
        marker = {"format": FORMAT, "version": VERSION, "created": created}
        write_atomically(store.path / MARKER, _dump(marker))
        store._logged = set()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunStore:
        """The existing run in ``path``; RunDirectoryError if it is not one."""
        store = cls(path)
        marker_path = store.path / MARKER
        where = str(store.path)
        if not store.path.is_dir():
            raise RunDirectoryError(f"{store.path} is not a directory", where=where,
                                    hint="give the run directory of a search")
        if not marker_path.is_file() or not (store.path / CONFIG).is_file():
            raise RunDirectoryError(f"{store.path} is not a search run directory (no {MARKER} or {CONFIG})",
                                    where=where, hint="give a directory written by autoloss search")
        marker = store._read(MARKER)
        if not isinstance(marker, dict) or marker.get("format") != FORMAT:
            raise RunDirectoryError(f"{marker_path} does not describe a search run", where=str(marker_path),
                                    hint="give a directory written by autoloss search")
        if marker.get("version") != VERSION:
            raise RunDirectoryError(f"{store.path} was written by run format version {marker.get('version')}; "
                                    f"this autoloss reads version {VERSION}", where=str(marker_path),
                                    hint="use the autoloss version that wrote it")
        return store

    def _read(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            where = f"{path}:{error.lineno}:{error.colno}" if isinstance(error, json.JSONDecodeError) else str(path)
            raise RunDirectoryError(f"{path} is damaged: {_json_problem(error)}", where=where,
                                    hint=_DAMAGED_HINTS.get(name, _DAMAGED_HINTS[None])) from None

    def config(self) -> SearchConfig:
        """The settings the run was started with."""
        try:
            return SearchConfig.from_dict(self._read(CONFIG), source=str(self.path / CONFIG))
        except SearchConfigError as error:
            raise RunDirectoryError(str(error), where=str(self.path / CONFIG),
                                    hint=_DAMAGED_HINTS[CONFIG]) from None

    def check_config(self, config: SearchConfig) -> None:
        """RunDirectoryError naming every result-relevant setting where ``config`` differs from the run's."""
        differences = self.config().differences(config)
        if differences:
            listed = "; ".join(f"{key}: run {ours!r}, given {theirs!r}" for key, (ours, theirs) in differences.items())
            raise RunDirectoryError(f"{self.path} was started with other settings ({listed})",
                                    where=", ".join(differences),
                                    hint="resume it with its own settings, or start a new run with --out")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock; RunDirectoryError if another search is running in it."""
        with open(self.path / LOCK, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirectoryError(f"another search is running in {self.path}", where=str(self.path),
                                        hint="wait for it to end, or stop it first") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- the log ---------------------------------------------------------------------------------

    def _logged_ids(self) -> set[str]:
        if self._logged is None:
            self._logged = {record["id"] for record in self.read_log()}
        return self._logged

    def read_log(self) -> list[dict]:
        """Every complete record of ``candidates.jsonl`` (a torn last line is left out, not removed).

        RunDirectoryError naming the file and line when a complete line is not a record.
        """
        path = self.path / LOG
        if not path.is_file():
            return []
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        records = []
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise RunDirectoryError(f"{path} is damaged: line {number} is not a JSON record "
                                        f"({_json_problem(error)})", where=f"{path}:{number}",
                                        hint=_DAMAGED_HINTS[LOG]) from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise RunDirectoryError(f"{path} is damaged: line {number} is not a record with an id",
                                        where=f"{path}:{number}", hint=_DAMAGED_HINTS[LOG])
            records.append(record)
        return records

    def _check_tail(self) -> None:
        path = self.path / LOG
        if path.is_file() and path.stat().st_size:
            with open(path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            if torn:
                raise RunDirectoryError(f"{path} ends in a line torn by an interrupted write", where=str(path),
                                        hint="resume the search, which moves that line aside before writing")

    def validate(self) -> dict | None:
        """Read everything a resumed search relies on (config, checkpoint, log); the checkpoint. Writes nothing."""
        self.config()
        state = self.load_checkpoint()
        if state is not None and not isinstance(state, dict):
            raise RunDirectoryError(f"{self.path / CHECKPOINT} is damaged: not a search state",
                                    where=str(self.path / CHECKPOINT), hint=_DAMAGED_HINTS[CHECKPOINT])
        self._logged = {record["id"] for record in self.read_log()}
        return state

    def repair_log(self) -> str | None:
        """Move a last line torn by a kill to ``candidates.jsonl.torn`` (hold the lock); what was done, or None."""
        path = self.path / LOG
        data = path.read_bytes() if path.is_file() else b""
        if not data or data.endswith(b"\n"):
            return None
        keep = data.rfind(b"\n") + 1
        with open(self.path / TORN, "ab") as handle:
            handle.write(data[keep:] + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            os.fsync(handle.fileno())
        return (f"the last line of {path} was torn by an interrupted write ({len(data) - keep} bytes, no record); "
                f"moved it to {self.path / TORN}")

    def append_log(self, records: Iterable[dict]) -> int:
        """Append the records not logged yet, then flush and fsync; returns how many were written.

        RunDirectoryError if the log ends in a torn line (:meth:`repair_log` first).
        """
        logged = self._logged_ids()
        new = {}
        for record in records:
            if record["id"] not in logged and record["id"] not in new:
                new[record["id"]] = json.dumps(record, allow_nan=False) + "\n"
        if new:
            self._check_tail()
            with open(self.path / LOG, "a", encoding="utf-8") as handle:
                handle.write("".join(new.values()))
                handle.flush()
                os.fsync(handle.fileno())
            logged.update(new)
        return len(new)

    # --- state and reports -----------------------------------------------------------------------

    def save_checkpoint(self, state: dict) -> None:
        """Replace the checkpoint atomically."""
        write_atomically(self.path / CHECKPOINT, json.dumps(state, allow_nan=False).encode())

    def load_checkpoint(self) -> dict | None:
        """The last checkpoint, or None before the first stage finished."""
        return self._read(CHECKPOINT) if (self.path / CHECKPOINT).is_file() else None

    def write_report(self, name: str, value: Any) -> None:
        """Replace one of the report files (hall_of_fame.json, progress.json, result.json) atomically."""
        write_atomically(self.path / name, _dump(value))

    def read_report(self, name: str) -> Any:
        """A report file's content, or None if it was not written yet."""
        return self._read(name) if (self.path / name).is_file() else None


_DAMAGED_HINTS = {
    CHECKPOINT: "it is replaced atomically, so something else changed it: restore it from a backup, or start "
                "the search again with a new --out (candidates.jsonl keeps the records of this run)",
    LOG: "restore the file from a backup, or remove the damaged line (its record is then missing from the log "
         "and the report, and the search goes on without it)",
    CONFIG: "restore it from a backup; it holds the settings the run was started with",
    MARKER: "restore it from a backup; it marks the folder as a search run",
    None: "delete it: a resumed search writes it again from the checkpoint",
}


def _json_problem(error: ValueError) -> str:
    """What is wrong with a JSON text, in words."""
    if isinstance(error, json.JSONDecodeError):
        # A text cut inside a string is reported at the string's start, not at the end of the text.
        cut = error.pos >= len(error.doc.rstrip()) or error.msg.startswith("Unterminated string")
        kind = "truncated JSON" if cut else "malformed JSON"
        return f"{kind} ({error.msg}: line {error.lineno} column {error.colno})"
    return f"not UTF-8 text ({error})"
