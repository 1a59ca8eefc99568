"""The candidates of the proxy-fidelity study and their MOS scores.

Sigmoid-form (FCOS classification) losses that span the proxy's range: the zoo's (focal, the detector's
default and the baseline of every comparison; BCE; CSE-Autoloss-B), losses that earlier demo searches found
(``FOUND_BY_DEMO_SEARCHES``), and random candidates from the search's own generator: generation 0 of the
search's evolution (``autoloss.evolution``: random trees, dedup, CPV; a pool of ``random_pool_size``, as
only a few percent of generation 0 pass MOS) simulated by the search's MOS
(``autoloss.training_tasks.make_simulator``), of which ``random_count`` MOS-passed ones are taken evenly
across the MOS ranking, weak ones included, so that the range is wide.

Every candidate but focal trains as the search trains a candidate (its formula, alpha-balanced); focal is
the detector's built-in loss, as in the search's baseline row, and its MOS score is the simulator's baseline.
"""

from __future__ import annotations

import dataclasses
import math
import time

from autoloss.evolution import Evolution, EvolutionSettings
from autoloss.search_config import SearchConfig
from symbolic.candidate import Candidate
from symbolic.zoo import KNOWN_LOSSES

BASELINE = "focal"
ZOO = ("focal", "bce", "cse_b_cls")
# (name, formula): winners of earlier `autoloss search` demo runs, the first the one of the issue that a
# 6000-step training reverses (47.3 AP against focal's 50.5).
FOUND_BY_DEMO_SEARCHES = (
    ("demo-a", "exp(softplus(-cos(erf_s(x))))*erf_s(-w*x/2)"),
    ("demo-b", "erf_s(-w*x*y + alf_s(tanh(x)))"),
    ("demo-c", "erf_s(-w*x*y + sin(tanh(x)))"),
    ("demo-d", "exp(-x*y - erf_s(-x) + exp(exp(1)))"),
)


@dataclasses.dataclass(frozen=True)
class StudyCandidate:
    """A candidate of the study: name, where it comes from, formula, MOS outcome."""

    name: str
    origin: str
    infix: str
    prefix: str | None  # None: the detector's built-in default loss (the baseline)
    mos_score: float | None  # AP on the verification images (fraction); None when the simulation failed
    mos_passed: bool

    def loss_entry(self) -> dict:
        """The classification-loss entry of a training spec (``autoloss.proxy.loss_spec``)."""
        return {"name": self.name} if self.prefix is None else {"prefix": self.prefix, "form": "sigmoid"}

    @property
    def mos_rank_score(self) -> float:
        """The MOS score that ranks it: the score when passed, -1 when rejected (as the search drops it)."""
        return self.mos_score if self.mos_passed and self.mos_score is not None else -1.0

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> StudyCandidate:
        """The candidate of :meth:`to_dict`'s output."""
        return cls(**values)


def fixed_candidates(zoo: tuple[str, ...], found: tuple[tuple[str, str], ...]) -> list[tuple[str, str, Candidate]]:
    """(name, origin, candidate) of the zoo names and the found formulas."""
    rows = [(name, "zoo: " + KNOWN_LOSSES[name].description, KNOWN_LOSSES[name].candidate) for name in zoo]
    return rows + [(name, "found by a demo search", Candidate.parse(text, "sigmoid")) for name, text in found]


def random_pool(config: SearchConfig, size: int) -> list[Candidate]:
    """Generation 0 of the search's own evolution for ``config`` with seed + 1 (the demo searches that found
    ``FOUND_BY_DEMO_SEARCHES`` bred from seed 0's): ``size`` random candidates that passed CPV."""
    settings = config.replace(zoo_seeds=(), seed=config.seed + 1, population=size, mos_batch_size=size)
    machine = Evolution(EvolutionSettings.from_config(settings, "cls"))
    _, request = machine.ask(machine.init())
    return [record.candidate for record in request.candidates]


def spread(count: int, available: int) -> list[int]:
    """``count`` indices evenly across ``range(available)``, both ends included (all when fewer)."""
    if count >= available:
        return list(range(available))
    if count == 1:
        return [0]
    return sorted({round(k * (available - 1) / (count - 1)) for k in range(count)})


def study_candidates(config: SearchConfig, simulator, *, zoo: tuple[str, ...] = ZOO,
                     found: tuple[tuple[str, str], ...] = FOUND_BY_DEMO_SEARCHES,
                     random_count: int = 5, random_pool_size: int = 128) -> tuple[list[StudyCandidate], dict]:
    """The study's candidates with their MOS outcomes, and the MOS cost (CPU seconds, candidates simulated)."""
    fixed = fixed_candidates(zoo, found)
    known = {c.key for _, _, c in fixed}
    pool = [c for c in random_pool(config, random_pool_size) if c.key not in known] if random_count else []
    simulated = [c for name, _, c in fixed if name != BASELINE] + pool
    cpu = time.process_time()
    outcomes = dict(zip([c.key for c in simulated], simulator.simulate_many(simulated), strict=True))
    cost = {"cpu_seconds": round(time.process_time() - cpu, 2), "candidates": len(simulated)}
    rows = []
    for name, origin, candidate in fixed:
        outcome = simulator.baseline if name == BASELINE else outcomes[candidate.key]
        rows.append(_study_candidate(name, origin, candidate, outcome, builtin=name == BASELINE))
    passed = sorted((c for c in pool if outcomes[c.key].passed), key=lambda c: (-outcomes[c.key].score, c.key))
    for number, index in enumerate(spread(random_count, len(passed)), start=1):
        candidate = passed[index]
        origin = (f"random: generation 0 of the search (seed {config.seed + 1}), MOS rank {index + 1} of "
                  f"{len(passed)} passed ({len(pool)} simulated)")
        rows.append(_study_candidate(f"random-{number}", origin, candidate, outcomes[candidate.key]))
    return rows, cost


def _study_candidate(name: str, origin: str, candidate: Candidate, outcome, *, builtin: bool = False):
    score = outcome.score
    return StudyCandidate(name=name, origin=origin, infix=candidate.infix(),
                          prefix=None if builtin else candidate.prefix(),
                          mos_score=score if score is not None and math.isfinite(score) else None,
                          mos_passed=bool(outcome.passed))
