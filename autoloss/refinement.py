"""Constant refinement: a found loss's numeric constants tuned by CMA-ES on the simulation (MOS)
score.

The search composes losses from the constants {1, 2, 3}; GLO/TaylorGLO tune a loss's coefficients
once its structure is found. ``refine`` does that for any candidate: its constants are lifted
(``symbolic.constants.lift_constants``: fixed order, the exact candidate rebuilt from new values),
and CMA-ES from ``evosax`` searches them, each constant moving on its own scale ``spread · max(|c|,
1)`` around its value (constants listed in ``fixed`` stay). A population member is rounded to
``digits`` significant digits and rebuilt as a new candidate, which needs its own CPV verdict: one
that fails is discarded (counted and listed, never simulated or returned), as is one that is no
valid loss at all. The others are simulated together in one ``Simulator.simulate_many`` call per
generation; the fitness is the MOS score (AP on the verification images), and a rejected or
discarded member ranks last, as in the search. Each distinct candidate is simulated once. The result
is the best candidate that passed CPV and MOS with a score above the original's, or none.

Seeded: the CMA-ES key is ``jax.random.key(seed)``, split per generation, and the simulation is
deterministic for its config, so the same seed gives the same refined loss. The score is measured on
the verification images the constants were tuned on; ``confirm_on_proxy`` trains the original and
the refined loss on the proxy task (the search's recipe) for a held-out check.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from evosax.algorithms import CMA_ES

from autoloss.cli_contract import UsageError
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.constants import lift_constants
from symbolic.cpv import verify

WORST = 1.0  # fitness of a member that failed CPV or MOS; a passed member's is −AP, in [−1, 0]


@dataclasses.dataclass(frozen=True)
class RefineSettings:
    """The fixed settings of one refinement."""

    generations: int = 8
    population: int = 8  # CMA-ES population: candidates simulated together per generation
    seed: int = 0
    spread: float = 0.5  # initial CMA-ES step, relative to max(|constant|, 1)
    digits: int = 3  # significant digits of a refined constant
    verify_time_budget: float = 0.0  # seconds of proof attempts per member (0: sampled), as in the search
    fixed: tuple[int, ...] = ()  # indices of constants kept as they are (e.g. the 1 of a label complement 1 − y)

    def __post_init__(self):
        for name, low in (("generations", 1), ("population", 2), ("digits", 1)):
            if getattr(self, name) < low:
                raise UsageError(f"{name} must be at least {low}, got {getattr(self, name)}",
                                 where=f"--{name}", hint=f"give --{name} {low} or more")
        if len(set(self.fixed)) != len(self.fixed) or any(k < 0 for k in self.fixed):
            raise UsageError(f"fixed constants must be distinct indices from 0, got {list(self.fixed)}",
                             where="--fix", hint="give e.g. --fix 0,2")
        if not 0 < self.spread <= 10:
            raise UsageError(f"spread must be in (0, 10], got {self.spread}", where="--spread",
                             hint="give e.g. --spread 0.5")


@dataclasses.dataclass(frozen=True)
class Refinement:
    """What ``refine`` found: the original and its score, the refined loss (or None) and the history."""

    original: Candidate
    original_score: float | None
    refined: Candidate | None  # the best CPV- and MOS-passing member that beat the original, if any
    refined_score: float | None
    refined_verdict: dict | None  # its CPV verdict (to_dict)
    history: tuple[dict, ...]  # one line per generation: best score so far, members simulated, discarded
    discarded: tuple[dict, ...]  # members that failed CPV: infix and failed properties
    simulated: int
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready: formulas as infix and prefix, scores as fractions (None when not finite)."""
        def described(candidate):
            if candidate is None:
                return None
            return {"infix": candidate.infix(), "prefix": candidate.prefix(), "key": candidate.key,
                    "constants": list(lift_constants(candidate).values)}

        return {"form": self.original.form.name, "original": described(self.original),
                "original_score": self.original_score, "refined": described(self.refined),
                "refined_score": self.refined_score, "refined_verdict": self.refined_verdict,
                "history": list(self.history), "discarded": list(self.discarded), "simulated": self.simulated,
                "seconds": round(self.seconds, 2)}


def refine(candidate: Candidate, simulator, settings: RefineSettings = RefineSettings(), *,
           progress: Callable[[dict], None] | None = None) -> Refinement:
    """Tune ``candidate``'s constants by CMA-ES on ``simulator``'s MOS score; ``progress(line)`` after each generation.

    Raises UsageError when the candidate has no numeric constants (nothing to tune).
    """
    started = time.perf_counter()
    lifted = refinable(candidate, settings)
    start = np.asarray(lifted.values, dtype=np.float64)
    step = settings.spread * np.maximum(np.abs(start), 1.0)
    step[list(settings.fixed)] = 0.0
    init, ask, tell, params = _cma_es(settings.population, len(start))
    key, init_key = jax.random.split(jax.random.key(settings.seed))
    state = init(init_key, jnp.zeros(len(start)), params)
    scores: dict[str, float | None] = {}  # candidate key -> MOS score if it passed CPV and MOS, else None
    members: dict[str, Candidate] = {}
    discarded: list[dict] = []
    original_score = _simulate([candidate], simulator, scores, members)[candidate.key]
    history = []
    for generation in range(settings.generations):
        key, ask_key, tell_key = jax.random.split(key, 3)
        population, state = ask(ask_key, state, params)
        built = [_member(lifted, start + step * np.asarray(z, np.float64), settings.digits) for z in population]
        fresh = list({c.key: c for c in built if c is not None and c.key not in scores}.values())
        passed = []
        for member in fresh:
            verdict = verify(member, time_budget=settings.verify_time_budget)
            if verdict.passed:
                passed.append(member)
            else:
                scores[member.key] = None
                discarded.append({"infix": member.infix(), "failed": list(verdict.failed_properties)})
        _simulate(passed, simulator, scores, members)
        fitness = [WORST if c is None or scores.get(c.key) is None else -scores[c.key] for c in built]
        state, _ = tell(tell_key, population, jnp.asarray(fitness, jnp.float32), state, params)
        best = max((s for s in scores.values() if s is not None), default=None)
        line = {"generation": generation + 1, "of": settings.generations, "best_score": best,
                "simulated": len(passed), "discarded": len(fresh) - len(passed) + built.count(None),
                "seconds": round(time.perf_counter() - started, 2)}
        history.append(line)
        if progress is not None:
            progress(line)
    ranked = sorted(((s, k) for k, s in scores.items() if s is not None and k != candidate.key), reverse=True)
    refined = None
    if ranked and (original_score is None or ranked[0][0] > original_score):
        refined = members[ranked[0][1]]
    verdict = verify(refined, time_budget=1.0).to_dict() if refined is not None else None
    return Refinement(candidate, original_score, refined, None if refined is None else scores[refined.key],
                      verdict, tuple(history), tuple(discarded), len(members), time.perf_counter() - started)


@functools.lru_cache(maxsize=8)
def _cma_es(population: int, dimensions: int):
    """evosax's CMA-ES for this size, compiled once: (init, ask, tell, default params).

    Run op by op, its defaults, ask and tell compile dozens of small programs (seconds on a CPU).
    """
    strategy = CMA_ES(population_size=population, solution=jnp.zeros(dimensions))
    return (jax.jit(strategy.init), jax.jit(strategy.ask), jax.jit(strategy.tell),
            jax.jit(lambda: strategy.default_params)())


def refinable(candidate: Candidate, settings: RefineSettings):
    """The candidate's lifted constants; UsageError when none are left to tune (none at all, or all fixed)."""
    lifted = lift_constants(candidate)
    if len(lifted) == 0:
        raise UsageError(f"{candidate.infix()} has no numeric constants to refine (exponents and signs are "
                         "structure, not constants)", where="EXPR",
                         hint="give a formula with coefficients or offsets, e.g. a found loss of a search")
    if any(k >= len(lifted) for k in settings.fixed) or len(settings.fixed) == len(lifted):
        raise UsageError(f"--fix {','.join(map(str, settings.fixed))} leaves nothing to tune: {candidate.infix()} has "
                         f"the constants {lifted.values} (indices 0 to {len(lifted) - 1})", where="--fix",
                         hint="fix fewer constants, by their index in that list")
    return lifted


def _member(lifted, values: np.ndarray, digits: int) -> Candidate | None:
    """The candidate with ``values`` for the constants, or None when they make no valid loss (e.g. x drops out)."""
    try:
        return lifted.with_constants(values, digits=digits)
    except (InvalidCandidate, ValueError):
        return None


def _simulate(candidates: list[Candidate], simulator, scores: dict, members: dict) -> dict:
    """Simulate ``candidates`` in one call; record each one's score (None when MOS rejected it)."""
    for candidate, result in zip(candidates, simulator.simulate_many(candidates) if candidates else [], strict=True):
        members[candidate.key] = candidate
        scores[candidate.key] = result.score if result.passed and math.isfinite(result.score) else None
    return scores


def print_progress(line: dict) -> None:
    """The progress line of one generation, on stderr."""
    best = "-" if line["best_score"] is None else f"{100 * line['best_score']:.1f}"
    print(f"refine: generation {line['generation']}/{line['of']}  best MOS AP {best}  simulated {line['simulated']}"
          f"  discarded {line['discarded']}  {line['seconds']:.0f}s", file=sys.stderr, flush=True)


def confirm_on_proxy(config, branch: str, candidates: list[Candidate]) -> list[float | None]:
    """The proxy AP of each candidate in ``branch`` (the search's proxy recipe), None where training failed."""
    from autoloss.proxy import train_and_evaluate
    from autoloss.training_tasks import default_losses, task_spec

    aps = []
    for candidate in candidates:
        losses = {**default_losses(config), branch: {"prefix": candidate.prefix(), "form": candidate.form.name}}
        result = train_and_evaluate(task_spec(config, losses, branch=branch))
        ap = (result.get("metrics") or {}).get("AP") if result.get("status") == "ok" else None
        aps.append(ap if isinstance(ap, float) and math.isfinite(ap) else None)
    return aps
