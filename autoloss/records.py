"""Typed records of a search: one frozen :class:`CandidateRecord` per admitted candidate, with its stage results.

A record is made once, when a tree passes the filter funnel (``symbolic.funnel``), from the
``Candidate`` built there; between stages (MOS, proxy, parents, hall of fame, reports) the search
passes records, not text. Each has a JSON round trip (``to_json``/``from_json``) for the checkpoint
and a cached ``candidate``: the one built by the funnel, or, for a record read from a checkpoint,
parsed once from its prefix on first use. Only a worker process that receives a training task
parses the loss's text (``autoloss.proxy``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

from detection.evaluation import AP_COLUMNS
from symbolic.candidate import Candidate
from symbolic.cpv import VerdictSummary
from symbolic.funnel import Sifted


def _finite(value) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def ap_metrics(metrics: Mapping) -> dict:
    """The AP columns of a metrics dict (no timings, which differ between identical runs), NaN as None."""
    return {k: _finite(v) for k, v in metrics.items() if k in AP_COLUMNS}


@dataclasses.dataclass(frozen=True)
class MosResult:
    """A candidate's model optimization simulation: passed or rejected (with the reason and step), its AP score."""

    status: str  # passed | rejected
    passed: bool
    score: float | None
    reason: str | None
    step: int | None
    seconds: float

    @classmethod
    def of(cls, result: Mapping) -> MosResult:
        """The result of a simulator's outcome dict (``simulate.SimulationResult.to_dict``); NaN score as None."""
        return cls("passed" if result["passed"] else "rejected", bool(result["passed"]), _finite(result.get("score")),
                   result.get("reason"), result.get("step"), round(float(result.get("seconds") or 0.0), 4))

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> MosResult:
        """The result written by :meth:`to_json`."""
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class ProxyResult:
    """A candidate's proxy training: ok with its AP columns, or failed with the reason; seconds and attempts."""

    status: str  # ok | failed
    ap: float | None
    reason: str | None
    metrics: dict
    seconds: float
    attempts: int

    @classmethod
    def of(cls, result: Mapping) -> ProxyResult:
        """The result of ``autoloss.proxy.train_and_evaluate``'s dict: failed unless its AP is finite."""
        metrics = result.get("metrics") or {}
        ap = _finite(metrics.get("AP"))
        ok = result.get("status") == "ok" and ap is not None
        failed_in_training = result.get("status") != "ok"
        reason = result.get("reason") if failed_in_training else (None if ok else "the proxy AP is not finite")
        return cls("ok" if ok else "failed", ap if ok else None, reason, ap_metrics(metrics),
                   round(float(result.get("seconds") or 0.0), 3), int(result.get("attempts", 1)))

    @property
    def succeeded(self) -> bool:
        """True when the training gave a finite AP."""
        return self.status == "ok" and _finite(self.ap) is not None

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> ProxyResult:
        """The result written by :meth:`to_json`."""
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class CandidateRecord:
    """One candidate of a search: identity, texts, provenance, fingerprints and the result of every stage."""

    key: str
    form: str
    prefix: str  # the authors' format
    infix: str  # canonical plain math
    size: int
    origin: str  # random, mutation, crossover or zoo:NAME
    generation: int
    fingerprint: str  # of the values on the form's probe inputs
    gradient_key: str | None
    gradient_fingerprint: str
    cpv: VerdictSummary | None = None  # None where the method skips CPV
    mos: MosResult | None = None
    proxy: ProxyResult | None = None

    @classmethod
    def of(cls, sifted: Sifted, generation: int) -> CandidateRecord:
        """The record of a candidate the funnel built, carrying that candidate."""
        c = sifted.candidate
        record = cls(c.key, c.form.name, c.prefix(), c.infix(), c.size, sifted.origin, generation, sifted.fingerprint,
                     c.gradient_key, c.gradient_fingerprint, sifted.cpv)
        record.__dict__["candidate"] = c  # the cached_property's slot: never parsed again in this process
        return record

    @functools.cached_property
    def candidate(self) -> Candidate:
        """The ``symbolic.Candidate`` (the funnel's, or parsed once from the prefix for a record read from JSON)."""
        return Candidate.parse(self.prefix, self.form)

    def replace(self, **changes) -> CandidateRecord:
        """A copy with ``changes`` (e.g. ``mos=``, ``proxy=``) that keeps the cached candidate."""
        record = dataclasses.replace(self, **changes)
        if "candidate" in self.__dict__:
            record.__dict__["candidate"] = self.__dict__["candidate"]
        return record

    def to_json(self) -> dict:
        """A JSON-ready dict; the stage results as their own dicts (None where not reached)."""
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        for name in ("cpv", "mos", "proxy"):
            if data[name] is not None:
                data[name] = data[name].to_dict() if name == "cpv" else data[name].to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> CandidateRecord:
        """The record written by :meth:`to_json`."""
        return cls(**{**data, "cpv": None if data["cpv"] is None else VerdictSummary.from_dict(data["cpv"]),
                      "mos": None if data["mos"] is None else MosResult.from_json(data["mos"]),
                      "proxy": None if data["proxy"] is None else ProxyResult.from_json(data["proxy"])})
