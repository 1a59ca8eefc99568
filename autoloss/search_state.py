"""The state of a search as typed data: one :class:`EvolutionState` per branch inside a :class:`SearchState`.

Both have a JSON round trip; ``SearchState.to_json`` is what ``autoloss.run_store`` writes as
``checkpoint.json`` after every stage, stamped with ``STATE_VERSION``. Reading a checkpoint
(:meth:`SearchState.from_json`) refuses, with the file, both versions and what to do, a checkpoint
written in another record format: a resumed search never mixes records of two formats.

Version 2: candidates are :class:`autoloss.records.CandidateRecord` (with gradient identities) and
the dedup memory is a ``symbolic.funnel.DedupState``. Version 1 kept untyped dicts and the three
``seen_*`` lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from autoloss.records import CandidateRecord, MosResult, ProxyResult
from autoloss.run_store import RunDirectoryError
from symbolic.funnel import DedupState

STATE_VERSION = 2
STAGES = ("search", "final", "done")  # of the whole search; a branch's stages are EVOLUTION_STAGES
EVOLUTION_STAGES = ("breed", "mos", "proxy", "done")


@dataclasses.dataclass(frozen=True)
class EvolutionState:
    """Everything that changes in one branch's evolution (``autoloss.evolution``); never changed in place.

    ``pool`` holds the generation's admitted candidates, ``mos`` and ``proxy`` their results so far
    (by key), ``proxy_keys`` those chosen for the proxy; ``evaluated`` every proxy-trained record of
    the search, its results attached; ``generations`` the closed generations' summaries (as logged)
    and ``current`` the counts of the generation in progress.
    """

    branch: str
    form: str
    method: str
    generation: int = 0
    stage: str = "breed"
    dedup: DedupState = dataclasses.field(default_factory=DedupState)
    parents: tuple[CandidateRecord, ...] = ()
    pool: tuple[CandidateRecord, ...] = ()
    mos: Mapping[str, MosResult] = dataclasses.field(default_factory=dict)
    proxy_keys: tuple[str, ...] = ()
    proxy: Mapping[str, ProxyResult] = dataclasses.field(default_factory=dict)
    evaluated: tuple[CandidateRecord, ...] = ()
    generations: tuple[dict, ...] = ()
    current: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def replace(self, **changes) -> EvolutionState:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return {"branch": self.branch, "form": self.form, "method": self.method, "generation": self.generation,
                "stage": self.stage, "dedup": self.dedup.to_json(), "parents": [r.to_json() for r in self.parents],
                "pool": [r.to_json() for r in self.pool], "mos": {k: v.to_json() for k, v in self.mos.items()},
                "proxy_keys": list(self.proxy_keys), "proxy": {k: v.to_json() for k, v in self.proxy.items()},
                "evaluated": [r.to_json() for r in self.evaluated], "generations": list(self.generations),
                "current": dict(self.current)}

    @classmethod
    def from_json(cls, data: Mapping) -> EvolutionState:
        """The state written by :meth:`to_json`."""
        def records(name: str) -> tuple[CandidateRecord, ...]:
            return tuple(CandidateRecord.from_json(r) for r in data[name])

        if data["stage"] not in EVOLUTION_STAGES:
            raise ValueError(f"unknown stage {data['stage']!r}")
        return cls(data["branch"], data["form"], data["method"], int(data["generation"]), data["stage"],
                   DedupState.from_json(data["dedup"]), records("parents"), records("pool"),
                   {k: MosResult.from_json(v) for k, v in data["mos"].items()}, tuple(data["proxy_keys"]),
                   {k: ProxyResult.from_json(v) for k, v in data["proxy"].items()}, records("evaluated"),
                   tuple(data["generations"]), dict(data["current"]))


@dataclasses.dataclass
class SearchState:
    """The whole search: its stage, each branch's evolution, the final rows, the MOS baselines, the seconds spent.

    Changed in place by the driver (``autoloss.search_driver``), which saves it after every stage.
    """

    stage: str = "search"
    branches: dict[str, EvolutionState] = dataclasses.field(default_factory=dict)
    final: dict[str, dict] = dataclasses.field(default_factory=dict)
    mos_baseline: dict[str, dict] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        """The checkpoint's JSON, with ``version``."""
        return {"version": STATE_VERSION, "stage": self.stage,
                "branches": {name: evo.to_json() for name, evo in self.branches.items()}, "final": self.final,
                "mos_baseline": self.mos_baseline, "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: Any, where: str = "the checkpoint") -> SearchState:
        """The state of a checkpoint; RunDirectoryError naming ``where`` if it is damaged or of another version."""
        if not isinstance(data, dict) or data.get("stage") not in STAGES or not isinstance(data.get("branches"), dict):
            raise RunDirectoryError(f"{where} is damaged: not a search state", where=where, hint=_DAMAGED)
        version = data.get("version")
        if version != STATE_VERSION:
            raise RunDirectoryError(
                f"{where}: checkpoint version {version} cannot be read by this autoloss, which expects checkpoint "
                f"version {STATE_VERSION} (candidates as typed records with gradient identities)", where=where,
                hint="finish or report that run with the autoloss version that wrote it, or start the search again "
                     "with a new --out")
        try:
            branches = {name: EvolutionState.from_json(evo) for name, evo in data["branches"].items()}
            return cls(data["stage"], branches, dict(data["final"]), dict(data["mos_baseline"]),
                       dict(data["seconds"]))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RunDirectoryError(f"{where} is damaged: not a search state of version {STATE_VERSION} "
                                    f"({type(error).__name__}: {error})", where=where, hint=_DAMAGED) from None


_DAMAGED = "restore it from a backup, or start the search again with a new --out"
