"""The verdict types of convergence property verification and their one summary.

* ``Proof``: what a symbolic argument decided about one property — ``proved``,
  ``refuted`` (with a rigorous counterexample) or ``undecided`` (with why) — with the
  argument that decided it and the domain it covers;
* ``PropertyResult``: one property's verdict, ``proved`` (a symbolic argument decided it
  and the sampled check agrees), ``sampled`` (it holds at every probe point, no proof) or
  ``failed`` (a counterexample), with its argument and domain;
* ``Verdict``: a candidate's properties, passed when no required property failed;
* ``VerdictSummary``: the compact record a search keeps per candidate, and its one line of
  text (``passed (2/3 proved)``, ``failed: monotonicity``) used by every report.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

STATUSES = ("proved", "sampled", "failed")


@dataclasses.dataclass(frozen=True)
class Proof:
    """The outcome of a symbolic argument about one property."""

    status: str  # "proved" | "refuted" | "undecided"
    argument: str  # what decided it, e.g. "SymPy assumptions", "interval branch and bound (812 boxes)"
    domain: str  # where it holds, e.g. "all real x", "x in [-100, 100]"
    detail: str = ""
    counterexample: dict | None = None
    timed_out: bool = False  # undecided because the time budget ran out

    @classmethod
    def undecided(cls, detail: str, *, timed_out: bool = False) -> Proof:
        """No argument decided it, and why."""
        return cls("undecided", "", "", detail, None, timed_out)


def describe_range(name: str, lo: float, hi: float) -> str:
    """``all real x``, ``x >= 3``, ``x in [-100, 100]``."""
    if lo == -math.inf and hi == math.inf:
        return f"all real {name}"
    if hi == math.inf:
        return f"{name} >= {lo:.4g}" if lo else f"{name} >= 0"
    if lo == -math.inf:
        return f"{name} <= {hi:.4g}"
    return f"{name} in [{lo:.4g}, {hi:.4g}]"


@dataclasses.dataclass(frozen=True)
class Sampled:
    """One property's sampled check: whether it holds at every probe point, where, and else a counterexample."""

    name: str
    required: bool
    holds: bool
    evidence: str  # the probe: points and ranges
    reason: str = ""  # why it failed
    counterexample: dict | None = None


@dataclasses.dataclass(frozen=True)
class PropertyResult:
    """One property's verdict: status, whether it is required, evidence and counterexample."""

    name: str
    status: str  # "proved" | "sampled" | "failed"
    required: bool
    detail: str
    counterexample: dict | None = None
    seconds: float = 0.0
    argument: str = ""  # what decided the status: a proof's argument, "sampled check" or "counterexample"
    domain: str = ""  # where: the proof's domain, or the probe's points and ranges


@dataclasses.dataclass(frozen=True)
class VerdictSummary:
    """Which required properties were proved, only sampled or failed: what a search keeps per candidate."""

    passed: bool
    proved: tuple[str, ...]
    sampled: tuple[str, ...]
    failed: tuple[str, ...]
    seconds: float = 0.0

    def text(self) -> str:
        """``passed (2/3 proved)`` or ``failed: monotonicity, convergence``."""
        if not self.passed:
            return "failed: " + ", ".join(self.failed)
        return f"passed ({len(self.proved)}/{len(self.proved) + len(self.sampled)} proved)"

    def to_dict(self) -> dict:
        """A JSON-ready dict (lists for the names)."""
        return {"passed": self.passed, "proved": list(self.proved), "sampled": list(self.sampled),
                "failed": list(self.failed), "seconds": round(self.seconds, 4)}

    @classmethod
    def from_dict(cls, data: dict) -> VerdictSummary:
        """The summary written by ``to_dict``."""
        return cls(bool(data["passed"]), tuple(data["proved"]), tuple(data["sampled"]), tuple(data["failed"]),
                   float(data.get("seconds", 0.0)))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The CPV verdict of one candidate: passed when no required property failed."""

    passed: bool
    form: str
    key: str
    properties: tuple[PropertyResult, ...]
    seconds: float
    formula: str = ""

    def result(self, name: str) -> PropertyResult:
        """The result of the property called ``name``."""
        for result in self.properties:
            if result.name == name:
                return result
        raise KeyError(f"no property {name!r}; have {[p.name for p in self.properties]}")

    @property
    def failed_properties(self) -> tuple[str, ...]:
        """Names of the required properties that failed."""
        return tuple(p.name for p in self.properties if p.required and p.status == "failed")

    def summary(self) -> VerdictSummary:
        """The required properties by status."""
        required = [p for p in self.properties if p.required]
        return VerdictSummary(self.passed, tuple(p.name for p in required if p.status == "proved"),
                              tuple(p.name for p in required if p.status == "sampled"), self.failed_properties,
                              self.seconds)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """One JSON object."""
        return json.dumps(self.to_dict(), allow_nan=False, default=float)

    @classmethod
    def from_json(cls, text: str | dict) -> Verdict:
        """The verdict written by ``to_json`` (or its dict)."""
        data = json.loads(text) if isinstance(text, str) else dict(text)
        properties = tuple(PropertyResult(**p) for p in data.pop("properties"))
        return cls(properties=properties, **data)


def combine(sampled: Sampled, proof: Proof | None, seconds: float, budget: float) -> PropertyResult:
    """A property's verdict: a sampled failure wins, then a refutation; proved needs the proof and the samples."""
    if not sampled.holds:
        reason = sampled.reason
        if proof is not None and proof.status == "proved":
            reason += " (the formula is proved, but the guarded float64 numerics violate it)"
        return PropertyResult(sampled.name, "failed", sampled.required, reason, sampled.counterexample, seconds,
                              "counterexample on the probe", sampled.evidence)
    if proof is not None and proof.status == "refuted":
        return PropertyResult(sampled.name, "failed", sampled.required, proof.detail, proof.counterexample, seconds,
                              f"counterexample by {proof.argument}", proof.domain)
    if proof is not None and proof.status == "proved":
        detail = proof.detail or f"proved on {proof.domain}"
        return PropertyResult(sampled.name, "proved", sampled.required, f"{detail} ({proof.argument}); the "
                              f"sampled check agrees, {sampled.evidence}", None, seconds, proof.argument, proof.domain)
    if proof is None:
        why = ""
    elif proof.timed_out:
        why = f"; the proof ran out of its time budget ({budget:g} s)" + (f": {proof.detail}" if proof.detail else "")
    else:
        why = f"; proof undecided: {proof.detail}"
    return PropertyResult(sampled.name, "sampled", sampled.required, sampled.evidence + why, None, seconds,
                          "sampled check", sampled.evidence)


def format_verdict(verdict: Verdict) -> str:
    """Human-readable text: overall result, then one line per property with its evidence."""
    head = f"{'PASSED' if verdict.passed else 'FAILED'}  {verdict.form} loss"
    if verdict.formula:
        head += f"  {verdict.formula}"
    lines = [head + f"  ({verdict.seconds:.2f}s)"]
    for p in verdict.properties:
        flag = "" if p.required else " (informative)"
        lines.append(f"  {p.name:<22} {p.status:<8}{flag} {p.detail}")
        if p.counterexample:
            example = ", ".join(f"{k}={_short(v)}" for k, v in p.counterexample.items())
            lines.append(f"  {'':<22} counterexample: {example}")
    return "\n".join(lines)


def _short(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def json_safe(value):
    """Counterexamples as JSON-safe numbers (non-finite floats as strings)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else str(float(value))
    return value
