"""The CSE-Autoloss evolution as an ask/tell state machine over typed, JSON-ready state.

One branch (one loss form) is searched by one :class:`Evolution`. Its structure is fixed at
construction (:class:`EvolutionSettings`); everything that changes is an
:class:`~autoloss.search_state.EvolutionState`, never changed in place, which the driver writes into
the checkpoint. Every random choice of generation g comes from ``random.Random(f"{seed}-{branch}-{g}")``,
so the same state gives the same next state: a run resumed from any checkpoint continues exactly as an
uninterrupted one.

A generation (CSE-Autoloss, Sec. 3 and Algorithm 1) goes through the stages of ``state.stage``:

* ``breed``: offspring of the parents by crossover and mutation (random trees in generation 0, plus
  the zoo seeds) go through the filter funnel (``symbolic.funnel``: value, canonical and gradient
  dedup against everything the search has seen, sampled CPV, then the proofs and the float32 check)
  in growing chunks until ``population`` (M) candidates passed or ``max_generated`` raw trees were
  made. Each passed candidate becomes a :class:`~autoloss.records.CandidateRecord`. ``ask`` does this
  itself; it needs no outside evaluation.
* ``mos``: ``ask`` returns the next fixed batch of records to simulate; ``tell`` records the results.
  When all are in, the passed candidates are ranked by MOS score and the best K move on.
* ``proxy``: ``ask`` returns the records still lacking a proxy result; ``tell`` records results
  one at a time or together (a failure is a result: status ``failed`` with its reason). When all are
  in, ``ask`` closes the generation (and says so with a ``generation`` request): the best P
  proxy-trained candidates of the whole search become parents (ties broken toward smaller trees;
  ranked by AP less ``complexity_penalty`` per unit of complexity, ``autoloss.pareto.rank_parents``),
  and the next generation starts (or the state is ``done``).

The baselines of the paper's ablation are modes of the same machine (``search_config.METHODS``):
``cpv-only`` sends K CPV-passing candidates straight to the proxy, ``vanilla`` sends K unchecked
candidates, ``random`` sends K random candidates every generation. All train K candidates per
generation on the proxy, the same budget as ``cse``.

``ask`` and ``tell`` also return *events*: one JSON-ready record per candidate and stage it reached
(each with a unique ``id``) and one per finished generation, which the driver appends to the log.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping

from autoloss.pareto import rank_parents
from autoloss.records import CandidateRecord, MosResult, ProxyResult
from autoloss.search_config import METHODS
from autoloss.search_state import EvolutionState
from detection.evaluation import AP_COLUMNS
from symbolic.funnel import Funnel, Sifted
from symbolic.printers import to_prefix
from symbolic.tree import Tree, tree_depth, tree_size
from symbolic.variation import crossover, mutate, random_tree
from symbolic.zoo import KNOWN_LOSSES


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """The fixed structure of one branch's search (see ``autoloss.search_config`` for the meanings)."""

    branch: str
    form: str
    method: str = "cse"
    seed: int = 0
    generations: int = 3
    population: int = 48
    max_generated: int = 300_000
    top_k: int = 3
    parents: int = 3
    crossover_rate: float = 0.5
    max_size: int = 32
    max_depth: int = 8
    init_depth: int = 5
    zoo_seeds: tuple[str, ...] = ()
    verify_time_budget: float = 0.0  # proofs' outcomes depend on the CPU time they get: 0 keeps a run reproducible
    mos_batch_size: int = 64
    complexity_penalty: float = 0.0  # parents by proxy AP less this per unit of complexity (autoloss.pareto)
    complexity_measure: str = "size"

    @classmethod
    def from_config(cls, config, branch: str) -> EvolutionSettings:
        """The settings of ``branch`` in a ``SearchConfig``."""
        form = config.form_of(branch)
        names = {field.name for field in dataclasses.fields(cls)} - {"branch", "form", "zoo_seeds"}
        seeds = tuple(name for name in config.zoo_seeds if KNOWN_LOSSES[name].form == form)
        return cls(branch=branch, form=form, zoo_seeds=seeds, **{name: getattr(config, name) for name in names})


@dataclasses.dataclass(frozen=True)
class Request:
    """What the search needs next: ``stage`` mos or proxy with its candidates; or ``generation`` (one just
    closed: ask again) or ``done``; plus the events since the last request."""

    stage: str
    candidates: tuple[CandidateRecord, ...] = ()
    events: tuple[dict, ...] = ()


def rank_key(record: CandidateRecord) -> tuple:
    """Sort key of proxy-trained records: higher proxy AP first, then smaller trees, then key."""
    return (-record.proxy.ap, record.size, record.key)


def proxy_succeeded(record: CandidateRecord) -> bool:
    """True when the record's proxy evaluation gave a finite AP."""
    return record.proxy is not None and record.proxy.succeeded


def hall_of_fame(evaluated, size: int) -> list[CandidateRecord]:
    """The ``size`` best proxy-trained records, ranked (ties toward simpler formulas)."""
    return sorted((r for r in evaluated if proxy_succeeded(r)), key=rank_key)[:size]


class _Tally:
    """A generation's breeding counts, as logged: generated, unique, duplicates, and rejections by reason."""

    def __init__(self):
        self.counts = Counter(generated=0, unique=0, duplicates=0, gradient_duplicates=0)
        self.rejected: Counter = Counter()

    def add(self, sifted: Sifted) -> None:
        self.counts["generated"] += 1
        duplicate = sifted.layer in ("value", "canonical", "gradient")
        self.counts["duplicates"] += duplicate
        self.counts["unique"] += not duplicate
        self.counts["gradient_duplicates"] += sifted.layer == "gradient"
        if sifted.layer not in ("value", "passed"):
            self.rejected[sifted.tally_key] += 1


class Evolution:
    """The ask/tell machine of one branch; ``progress(counts)`` is called while breeding, if given."""

    def __init__(self, settings: EvolutionSettings, *, progress: Callable[[dict], None] | None = None):
        if settings.method not in METHODS:
            raise ValueError(f"unknown method {settings.method!r}; choose one of {', '.join(METHODS)}")
        self.settings = settings
        self.method = METHODS[settings.method]
        self.progress = progress

    def init(self) -> EvolutionState:
        """The state before generation 0."""
        return EvolutionState(self.settings.branch, self.settings.form, self.settings.method)

    def ask(self, state: EvolutionState) -> tuple[EvolutionState, Request]:
        """The next state and what it needs evaluated (breeding and stage changes happen here)."""
        events: list[dict] = []
        while True:
            if state.stage == "done":
                return state, Request("done", (), tuple(events))
            if state.stage == "breed":
                state, new = self._breed(state)
                events += new
            elif state.stage == "mos":
                batch = self._next_mos_batch(state)
                if batch:
                    return state, Request("mos", batch, tuple(events))
                state = self._select_for_proxy(state)
            else:
                by_key = {r.key: r for r in state.pool}
                missing = tuple(by_key[key] for key in state.proxy_keys if key not in state.proxy)
                if missing:
                    return state, Request("proxy", missing, tuple(events))
                state, new = self._close_generation(state)
                return state, Request("generation", (), tuple(events + new))

    def tell(self, state: EvolutionState, stage: str, results: Mapping[str, Mapping]) -> tuple[EvolutionState, list]:
        """Record MOS or proxy ``results`` ({candidate key: result}); returns the state and new events."""
        if stage != state.stage or stage not in ("mos", "proxy"):
            raise ValueError(f"told {stage} results while the search is at stage {state.stage!r}")
        wanted = {r.key for r in state.pool} if stage == "mos" else set(state.proxy_keys)
        foreign = sorted(set(results) - wanted)
        if foreign:
            raise ValueError(f"{stage} results for candidates not asked for: {', '.join(foreign[:3])}")
        records = {r.key: r for r in state.pool}
        clean = MosResult.of if stage == "mos" else ProxyResult.of
        stored, events = dict(getattr(state, stage)), []
        for key, result in results.items():
            stored[key] = clean(result)
            events.append(self._event(records[key], stage, **stored[key].to_json(), **_extra(stage, result)))
        return state.replace(**{stage: stored}), events

    # --- breeding --------------------------------------------------------------------------------

    def _random_tree(self, rng: random.Random) -> Tree:
        s = self.settings
        while True:
            tree = random_tree(rng, s.form, max_depth=s.init_depth)
            if tree_size(tree) <= s.max_size and tree_depth(tree) <= s.max_depth:
                return tree

    def _offspring(self, rng: random.Random, parents: list[Tree]) -> tuple[Tree, str]:
        s = self.settings
        if not parents:
            return self._random_tree(rng), "random"
        if len(parents) > 1 and rng.random() < s.crossover_rate:
            a, b = rng.sample(parents, 2)
            return crossover(rng, a, b, s.form, max_size=s.max_size, max_depth=s.max_depth), "crossover"
        return mutate(rng, rng.choice(parents), s.form, max_size=s.max_size, max_depth=s.max_depth), "mutation"

    @property
    def target(self) -> int:
        """Candidates a generation's breeding admits: M for MOS to rank, else the K the proxy trains."""
        return self.settings.population if self.method.mos else self.settings.top_k

    def breeding(self, state: EvolutionState, on_chunk: Callable[[], None] | None = None):
        """(funnel, sifted stream) of the breeding of ``state.generation``: offspring of the parents (random trees
        and the zoo seeds in generation 0) through a funnel on a copy of the state's dedup memory, lazily."""
        s, generation = self.settings, state.generation
        rng = random.Random(f"{s.seed}-{s.branch}-{generation}")
        parents = [p.candidate.tree for p in state.parents] if self.method.evolve else []
        seeds = [(KNOWN_LOSSES[n].candidate.tree, f"zoo:{n}") for n in s.zoo_seeds] if generation == 0 else []
        funnel = Funnel(s.form, cpv=self.method.cpv, verify_time_budget=s.verify_time_budget, dedup=state.dedup.copy())

        def draw(size: int) -> list[tuple[Tree, str]]:
            nonlocal seeds
            batch, seeds = seeds[:size], seeds[size:]
            return batch + [self._offspring(rng, parents) for _ in range(size - len(batch))]

        return funnel, funnel.fill(draw, target=self.target, limit=s.max_generated, on_chunk=on_chunk)

    def _breed(self, state: EvolutionState) -> tuple[EvolutionState, list[dict]]:
        generation, started = state.generation, time.perf_counter()
        tally, pool, events = _Tally(), [], []

        def report() -> None:
            if self.progress is not None:
                self.progress({"generation": generation, "passed": len(pool), "target": self.target, **tally.counts})

        funnel, stream = self.breeding(state, on_chunk=report)
        for sifted in stream:
            tally.add(sifted)
            if sifted.layer in ("cpv", "passed"):
                record = CandidateRecord.of(sifted, generation)
                status = "passed" if sifted.passed else "rejected"
                reason = {} if sifted.passed else {"reason": sifted.reason}
                events.append(self._event(record, "cpv", status=status, **reason, seconds=round(sifted.seconds, 4)))
                if sifted.passed:
                    pool.append(record)
            elif sifted.layer != "value":  # value duplicates are only counted
                events.append(self._raw_event(generation, sifted))
        current = {"generation": generation, **tally.counts, "cpv": len(pool),
                   "rejected": dict(sorted(tally.rejected.items())),
                   "breed_seconds": round(time.perf_counter() - started, 3)}
        keys = () if self.method.mos else tuple(r.key for r in pool)
        return state.replace(dedup=funnel.dedup, pool=tuple(pool), mos={}, proxy={}, proxy_keys=keys, current=current,
                             stage="mos" if self.method.mos else "proxy"), events

    # --- MOS and proxy ---------------------------------------------------------------------------

    def _next_mos_batch(self, state: EvolutionState) -> tuple[CandidateRecord, ...]:
        size = self.settings.mos_batch_size
        for start in range(0, len(state.pool), size):  # fixed batches: a resumed run simulates the same ones
            batch = state.pool[start:start + size]
            if any(r.key not in state.mos for r in batch):
                return batch
        return ()

    def _select_for_proxy(self, state: EvolutionState) -> EvolutionState:
        results = state.mos
        passed = [r for r in state.pool if results[r.key].passed]
        passed.sort(key=lambda r: (-_finite_or(results[r.key].score, -math.inf), r.size, r.key))
        return state.replace(proxy_keys=tuple(r.key for r in passed[: self.settings.top_k]), stage="proxy",
                             current={**state.current, "mos": len(passed)})

    def _close_generation(self, state: EvolutionState) -> tuple[EvolutionState, list[dict]]:
        s = self.settings
        trained = [r.replace(mos=state.mos.get(r.key), proxy=state.proxy[r.key])
                   for r in state.pool if r.key in state.proxy_keys]
        evaluated = state.evaluated + tuple(trained)
        aps = [r.proxy.ap if proxy_succeeded(r) else None for r in trained]
        finite = [ap for ap in aps if ap is not None]
        summary = {**state.current, "mos": state.current.get("mos", len(state.pool)),
                   "proxy": len(trained), "proxy_failed": len(trained) - len(finite), "proxy_aps": aps,
                   "best": max(finite, default=None), "median": statistics.median(finite) if finite else None}
        # nothing trained well yet: keep the parents, else breed from the generation's best-screened candidates
        by_key = {r.key: r for r in state.pool}
        screened = [by_key[key] for key in state.proxy_keys] + [r for r in state.pool if r.key not in state.proxy_keys]
        parents = rank_parents(evaluated, s.parents, penalty=s.complexity_penalty, measure=s.complexity_measure) \
            or list(state.parents) or screened[: s.parents]
        summary["parents"] = [p.key for p in parents]
        event = {"id": f"{s.branch}/{state.generation}/generation", "event": "generation", "branch": s.branch,
                 **summary}
        generation = state.generation + 1
        state = state.replace(evaluated=evaluated, generations=state.generations + (summary,),
                              parents=tuple(parents) if self.method.evolve else (), generation=generation, pool=(),
                              mos={}, proxy={}, proxy_keys=(), current={},
                              stage="done" if generation >= s.generations else "breed")
        return state, [event]

    # --- events ----------------------------------------------------------------------------------

    def _event(self, record: CandidateRecord, stage: str, **fields) -> dict:
        s = self.settings
        return {"id": f"{s.branch}/{record.generation}/{stage}/{record.key}", "event": "candidate",
                "branch": s.branch, "generation": record.generation, "stage": stage, "key": record.key,
                "prefix": record.prefix, "infix": record.infix, "size": record.size, "origin": record.origin, **fields}

    def _raw_event(self, generation: int, sifted: Sifted) -> dict:
        s = self.settings
        return {"id": f"{s.branch}/{generation}/cpv/{sifted.fingerprint}", "event": "candidate", "branch": s.branch,
                "generation": generation, "stage": "cpv", "fingerprint": sifted.fingerprint,
                "prefix": to_prefix(sifted.tree, s.form), "size": tree_size(sifted.tree), "origin": sifted.origin,
                "status": "rejected", "reason": sifted.reason}


def _finite_or(value, default: float) -> float:
    return value if isinstance(value, int | float) and math.isfinite(value) else default


def _extra(stage: str, result: Mapping) -> dict:
    """Fields logged but not kept in the state: the MOS loss curve, the proxy's timings."""
    if stage == "mos" and result.get("loss_curve") is not None:
        return {"loss_curve": [v if math.isfinite(v) else None for v in map(float, result["loss_curve"])]}
    if stage == "proxy":
        timings = {k: v for k, v in (result.get("metrics") or {}).items() if k not in AP_COLUMNS}
        timings.update({k: result[k] for k in ("train_seconds", "compile_seconds", "images_per_second", "final_loss")
                        if k in result})
        return {"timings": timings}
    return {}
