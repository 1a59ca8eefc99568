"""Deterministic stand-ins for the expensive parts of a search, importable by worker processes.

``FakeSimulator`` follows the MOS contract of ``simulate.Simulator`` (``simulate_many``, ``baseline``);
``fake_proxy`` follows ``autoloss.proxy.train_and_evaluate``. Both score a candidate by a hash of its
canonical key, so every run (and every resumed run) sees the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import signal
import time

from symbolic.candidate import Candidate


def unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 16**8


@dataclasses.dataclass
class FakeResult:
    key: str
    infix: str
    passed: bool
    score: float
    reason: str | None
    step: int | None
    loss_curve: list[float]
    seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class FakeSimulator:
    """Rejects a third of the candidates, scores the rest by a hash of their key; counts its calls."""

    def __init__(self, branch: str = "cls"):
        self.branch = branch
        self.calls: list[int] = []
        self.baseline = FakeResult("baseline", "focal", True, 0.5, None, None, [1.0, 0.5], 0.0)

    def simulate_many(self, candidates):
        self.calls.append(len(candidates))
        out = []
        for candidate in candidates:
            score = unit_hash(candidate.key)
            passed = score > 1 / 3
            out.append(FakeResult(candidate.key, candidate.infix(), passed, score if passed else math.nan,
                                  None if passed else "diverged", None if passed else 3, [1.0, score], 0.01))
        return out


def fake_proxy(spec: dict) -> dict:
    """A proxy 'training': AP from a hash of the searched loss, slightly favouring small trees."""
    losses = [spec[branch] for branch in ("cls", "reg") if "prefix" in spec[branch]]
    if not losses:
        return {"status": "ok", "metrics": {"AP": 0.2, "AP50": 0.4}, "seconds": 0.0}
    candidate = Candidate.parse(losses[0]["prefix"], losses[0]["form"])
    delay = float(os.environ.get("AUTOLOSS_FAKE_PROXY_DELAY", "0"))
    if delay:
        time.sleep(delay)
    ap = round(unit_hash("proxy" + candidate.key) * 0.5 + 0.1 / candidate.size, 6)
    return {"status": "ok", "metrics": {"AP": ap, "AP50": 2 * ap, "AP75": ap / 2, "AP_S": ap, "AP_M": ap,
                                        "AP_L": ap}, "seconds": delay}


def injected_proxy(spec: dict) -> dict:
    """``fake_proxy``, but the candidate keyed ``$AUTOLOSS_FAKE_HANG`` hangs (in a C call) and the one keyed
    ``$AUTOLOSS_FAKE_CRASH`` kills its own process, as the OOM killer would."""
    losses = [spec[branch] for branch in ("cls", "reg") if "prefix" in spec[branch]]
    key = Candidate.parse(losses[0]["prefix"], losses[0]["form"]).key if losses else None
    if key is not None and key == os.environ.get("AUTOLOSS_FAKE_HANG"):
        time.sleep(10_000)
    if key is not None and key == os.environ.get("AUTOLOSS_FAKE_CRASH"):
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_proxy(spec)


TIMINGS = ("seconds", "breed_seconds", "train_seconds", "compile_seconds", "images_per_second", "eval_seconds",
           "inference_seconds", "out_dir")


def without_timings(value):
    """``value`` without wall-clock fields (and paths), which differ between otherwise identical runs."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value
