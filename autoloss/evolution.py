"""The CSE-Autoloss evolution as an ask/tell state machine over plain, JSON-ready data.

One branch (one loss form) is searched by one :class:`Evolution`. Its structure is fixed at
construction (:class:`EvolutionSettings`); everything that changes is the state, a dict of lists,
dicts, strings and numbers that :mod:`autoloss.run_store` writes as the checkpoint. Every random
choice of generation g comes from ``random.Random(f"{seed}-{branch}-{g}")``, so the same state gives
the same next state: a run resumed from any checkpoint continues exactly as an uninterrupted one.

A generation (CSE-Autoloss, Sec. 3 and Algorithm 1) goes through the stages of ``state["stage"]``:

* ``breed``: offspring of the parents by crossover and mutation (random trees in generation 0, plus
  the zoo seeds) in growing chunks; each raw tree is deduplicated against every tree seen in the
  search by its functional fingerprint, screened by the batched sampled CPV (``check_trees``), built
  as a SymPy ``Candidate`` (deduplicated by canonical key, then by gradient equivalence:
  ``symbolic.gradient_equivalence``) and verified (``verify``: proofs and the float32 check), until
  ``population`` (M) candidates passed or ``max_generated`` raw trees were made. ``ask`` does this
  itself; it needs no outside evaluation.
* ``mos``: ``ask`` returns the next fixed batch of candidates to simulate; ``tell`` records the
  results. When all are in, the passed candidates are ranked by MOS score and the best K move on.
* ``proxy``: ``ask`` returns the candidates still lacking a proxy result; ``tell`` records results
  one at a time or together (a failure is a result: status ``failed`` with its reason). When all are
  in, ``ask`` closes the generation (and says so with a ``generation`` request): the best P
  proxy-trained candidates of the whole search become parents (ties broken toward smaller trees;
  ranked by AP less ``complexity_penalty`` per unit of complexity, ``autoloss.pareto.rank_parents``),
  and the next generation starts (or the state is ``done``).

The baselines of the paper's ablation are modes of the same machine (``METHODS``): ``cpv-only``
sends K CPV-passing candidates straight to the proxy, ``vanilla`` sends K unchecked candidates,
``random`` sends K random candidates every generation. All train K candidates per generation on the
proxy, the same budget as ``cse``.

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
from detection.evaluation import AP_COLUMNS
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate, fingerprint_rows
from symbolic.cpv import check_trees, verify
from symbolic.forms import probe_inputs
from symbolic.gradient_equivalence import GradientIndex
from symbolic.numeric import evaluate_trees
from symbolic.parser import parse_tree
from symbolic.printers import to_prefix
from symbolic.tree import Tree, tree_depth, tree_size
from symbolic.variation import crossover, mutate, random_tree
from symbolic.zoo import KNOWN_LOSSES

FIRST_CHUNK, LARGEST_CHUNK = 256, 8192  # raw trees per breeding chunk: doubled while too few pass


@dataclasses.dataclass(frozen=True)
class Method:
    """Which filters a search method applies and whether it breeds from parents."""

    name: str
    cpv: bool
    mos: bool
    evolve: bool


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("cse", cpv=True, mos=True, evolve=True),
        Method("cpv-only", cpv=True, mos=False, evolve=True),
        Method("vanilla", cpv=False, mos=False, evolve=True),
        Method("random", cpv=False, mos=False, evolve=False),
    )
}


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
class _Seen:
    """What breeding has admitted so far: canonical keys (CPV-passed) and the gradient identities."""

    keys: set[str]
    gradients: GradientIndex


@dataclasses.dataclass(frozen=True)
class Request:
    """What the search needs next: ``stage`` mos or proxy with its candidates; or ``generation`` (one just
    closed: ask again) or ``done``; plus the events since the last request."""

    stage: str
    candidates: tuple[dict, ...] = ()
    events: tuple[dict, ...] = ()


def rank_key(record: Mapping) -> tuple:
    """Sort key of proxy-trained records: higher proxy AP first, then smaller trees, then key."""
    return (-record["proxy"]["ap"], record["size"], record["key"])


def proxy_succeeded(record: Mapping) -> bool:
    """True when the record's proxy evaluation gave a finite AP."""
    proxy = record.get("proxy") or {}
    return proxy.get("status") == "ok" and proxy.get("ap") is not None and math.isfinite(proxy["ap"])


def hall_of_fame(evaluated: list[dict], size: int) -> list[dict]:
    """The ``size`` best proxy-trained records, ranked (ties toward simpler formulas)."""
    return sorted((r for r in evaluated if proxy_succeeded(r)), key=rank_key)[:size]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Evolution:
    """The ask/tell machine of one branch; ``progress(counts)`` is called while breeding, if given."""

    def __init__(self, settings: EvolutionSettings, *, progress: Callable[[dict], None] | None = None):
        if settings.method not in METHODS:
            raise ValueError(f"unknown method {settings.method!r}; choose one of {', '.join(METHODS)}")
        self.settings = settings
        self.method = METHODS[settings.method]
        self.progress = progress

    # --- state -----------------------------------------------------------------------------------

    def init(self) -> dict:
        """The state before generation 0."""
        s = self.settings
        return {
            "branch": s.branch, "form": s.form, "method": s.method, "generation": 0, "stage": "breed",
            "seen_fingerprints": [], "seen_keys": [], "seen_gradients": [], "parents": [], "pool": [], "mos": {},
            "proxy_keys": [], "proxy": {}, "evaluated": [], "generations": [], "current": {},
        }

    def ask(self, state: dict) -> tuple[dict, Request]:
        """The next state and what it needs evaluated (breeding and stage changes happen here)."""
        events: list[dict] = []
        while True:
            stage = state["stage"]
            if stage == "done":
                return state, Request("done", (), tuple(events))
            if stage == "breed":
                state, new = self._breed(state)
                events += new
            elif stage == "mos":
                batch = self._next_mos_batch(state)
                if batch:
                    return state, Request("mos", tuple(batch), tuple(events))
                state = self._select_for_proxy(state)
            else:
                by_key = {r["key"]: r for r in state["pool"]}
                missing = [by_key[key] for key in state["proxy_keys"] if key not in state["proxy"]]
                if missing:
                    return state, Request("proxy", tuple(missing), tuple(events))
                state, new = self._close_generation(state)
                return state, Request("generation", (), tuple(events + new))

    def tell(self, state: dict, stage: str, results: Mapping[str, Mapping]) -> tuple[dict, list[dict]]:
        """Record MOS or proxy ``results`` ({candidate key: result}); returns the state and new events."""
        if stage != state["stage"] or stage not in ("mos", "proxy"):
            raise ValueError(f"told {stage} results while the search is at stage {state['stage']!r}")
        wanted = {r["key"] for r in state["pool"]} if stage == "mos" else set(state["proxy_keys"])
        foreign = sorted(set(results) - wanted)
        if foreign:
            raise ValueError(f"{stage} results for candidates not asked for: {', '.join(foreign[:3])}")
        records = {r["key"]: r for r in state["pool"]}
        clean = _mos_result if stage == "mos" else _proxy_result
        stored, events = dict(state[stage]), []
        for key, result in results.items():
            stored[key] = clean(result)
            events.append(self._event(records[key], stage, **stored[key], **_extra(stage, result)))
        return {**state, stage: stored}, events

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

    def _breed(self, state: dict) -> tuple[dict, list[dict]]:
        s, method = self.settings, self.method
        generation = state["generation"]
        started = time.perf_counter()
        rng = random.Random(f"{s.seed}-{s.branch}-{generation}")
        parents = [parse_tree(p["prefix"], s.form) for p in state["parents"]] if method.evolve else []
        seeds = [(KNOWN_LOSSES[n].candidate.tree, f"zoo:{n}") for n in s.zoo_seeds] if generation == 0 else []
        seen_fps = set(state["seen_fingerprints"])
        # a checkpoint written before the gradient layer has no gradients: the layer starts empty
        seen = _Seen(set(state["seen_keys"]), GradientIndex(state.get("seen_gradients", ())))
        new_fps, new_keys, pool, events = [], [], [], []
        counts, rejected = Counter(generated=0, unique=0, duplicates=0, gradient_duplicates=0), Counter()
        target = s.population if method.mos else s.top_k
        chunk = FIRST_CHUNK
        while len(pool) < target and counts["generated"] < s.max_generated:
            size = min(chunk, s.max_generated - counts["generated"])
            batch, seeds = seeds[:size], seeds[size:]
            batch += [self._offspring(rng, parents) for _ in range(size - len(batch))]
            trees = [tree for tree, _ in batch]
            fingerprints = fingerprint_rows(evaluate_trees(trees, probe_inputs(s.form), s.form))
            fresh: dict[int, int] = {}  # index in batch -> row of the sampled CPV check
            in_chunk: set[str] = set()
            for index, fp in enumerate(fingerprints):
                if fp not in seen_fps and fp not in in_chunk:
                    fresh[index] = len(fresh)
                    in_chunk.add(fp)
            checks = check_trees([trees[i] for i in fresh], s.form) if method.cpv else None
            for index, (tree, origin) in enumerate(batch):
                counts["generated"] += 1
                if index not in fresh:
                    counts["duplicates"] += 1
                    continue
                fp = fingerprints[index]
                counts["unique"] += 1
                seen_fps.add(fp)
                new_fps.append(fp)
                row = fresh[index]
                if checks is not None and not checks.passed[row]:
                    reason = f"{checks.first_failure[row]} (sampled CPV)"
                    rejected[f"cpv: {checks.first_failure[row]}"] += 1
                    events.append(self._raw_event(generation, tree, fp, origin, reason))
                    continue
                record, event, outcome = self._judge(tree, fp, origin, generation, seen)
                events.append(event)
                if record is None:
                    rejected[outcome] += 1
                    if outcome in ("duplicate", "gradient duplicate"):
                        counts["duplicates"] += 1
                        counts["unique"] -= 1
                        counts["gradient_duplicates"] += outcome == "gradient duplicate"
                    continue
                seen.keys.add(record["key"])
                new_keys.append(record["key"])
                pool.append(record)
                if len(pool) == target:
                    break
            if self.progress is not None:
                self.progress({"generation": generation, "passed": len(pool), "target": target, **counts})
            chunk = min(LARGEST_CHUNK, chunk * 2)
        current = {"generation": generation, **counts, "cpv": len(pool), "rejected": dict(sorted(rejected.items())),
                   "breed_seconds": round(time.perf_counter() - started, 3)}
        state = {**state, "seen_fingerprints": state["seen_fingerprints"] + new_fps,
                 "seen_keys": state["seen_keys"] + new_keys, "seen_gradients": seen.gradients.admitted,
                 "pool": pool, "mos": {}, "proxy": {},
                 "proxy_keys": [], "current": current, "stage": "mos" if method.mos else "proxy"}
        if not method.mos:
            state["proxy_keys"] = [r["key"] for r in pool]
        return state, events

    def _judge(self, tree: Tree, fp: str, origin: str, generation: int, seen: _Seen):
        """(record or None, event, outcome) of a tree that passed the sampled screen (or was not screened)."""
        s = self.settings
        started = time.perf_counter()
        try:
            candidate = Candidate.from_tree(tree, s.form)
        except InvalidCandidate as error:
            return None, self._raw_event(generation, tree, fp, origin, f"invalid: {error.reason}"), "invalid"
        if candidate.key in seen.keys:
            event = self._raw_event(generation, tree, fp, origin, "duplicate: same canonical form as an earlier "
                                    f"candidate ({candidate.key})")
            return None, event, "duplicate"
        same_gradient = seen.gradients.duplicate_of(candidate)
        if same_gradient is not None:
            event = self._raw_event(generation, tree, fp, origin, f"duplicate: {same_gradient}")
            return None, event, "gradient duplicate"
        record = {"key": candidate.key, "prefix": candidate.prefix(), "infix": candidate.infix(),
                  "size": candidate.size, "origin": origin, "generation": generation, "fingerprint": fp, "cpv": None}
        if self.method.cpv:
            verdict = verify(candidate, time_budget=s.verify_time_budget)
            record["cpv"] = verdict.summary().to_dict()
            if not verdict.passed:
                reason = "CPV failed: " + ", ".join(verdict.failed_properties)
                event = self._event(record, "cpv", status="rejected", reason=reason,
                                    seconds=round(time.perf_counter() - started, 4))
                return None, event, "cpv: " + ",".join(verdict.failed_properties)
        event = self._event(record, "cpv", status="passed", seconds=round(time.perf_counter() - started, 4))
        return record, event, "passed"

    # --- MOS and proxy ---------------------------------------------------------------------------

    def _next_mos_batch(self, state: dict) -> list[dict]:
        pool, done, size = state["pool"], state["mos"], self.settings.mos_batch_size
        for start in range(0, len(pool), size):  # fixed batches: a resumed run simulates the same ones
            batch = pool[start:start + size]
            if any(r["key"] not in done for r in batch):
                return batch
        return []

    def _select_for_proxy(self, state: dict) -> dict:
        results = state["mos"]
        passed = [r for r in state["pool"] if results[r["key"]]["passed"]]
        passed.sort(key=lambda r: (-_finite_or(results[r["key"]]["score"], -math.inf), r["size"], r["key"]))
        current = {**state["current"], "mos": len(passed)}
        return {**state, "proxy_keys": [r["key"] for r in passed[: self.settings.top_k]], "current": current,
                "stage": "proxy"}

    def _close_generation(self, state: dict) -> tuple[dict, list[dict]]:
        s = self.settings
        trained = [{**r, "mos": state["mos"].get(r["key"]), "proxy": state["proxy"][r["key"]]}
                   for r in state["pool"] if r["key"] in state["proxy_keys"]]
        evaluated = state["evaluated"] + trained
        aps = [r["proxy"]["ap"] if proxy_succeeded(r) else None for r in trained]
        finite = [ap for ap in aps if ap is not None]
        summary = {**state["current"], "mos": state["current"].get("mos", len(state["pool"])),
                   "proxy": len(trained), "proxy_failed": len(trained) - len(finite), "proxy_aps": aps,
                   "best": max(finite, default=None), "median": _median(finite)}
        # nothing trained well yet: keep the parents, else breed from the generation's best-screened candidates
        by_key = {r["key"]: r for r in state["pool"]}
        screened = [by_key[key] for key in state["proxy_keys"]] + [r for r in state["pool"]
                                                                   if r["key"] not in state["proxy_keys"]]
        parents = rank_parents(evaluated, s.parents, penalty=s.complexity_penalty, form=s.form,
                               measure=s.complexity_measure) or state["parents"] or screened[: s.parents]
        parents = [{"key": r["key"], "prefix": r["prefix"], "size": r["size"]} for r in parents]
        generation = state["generation"] + 1
        summary["parents"] = [p["key"] for p in parents]
        event = {"id": f"{s.branch}/{state['generation']}/generation", "event": "generation", "branch": s.branch,
                 **summary}
        state = {**state, "evaluated": evaluated, "generations": state["generations"] + [summary],
                 "parents": parents if self.method.evolve else [], "generation": generation, "pool": [],
                 "mos": {}, "proxy": {}, "proxy_keys": [], "current": {},
                 "stage": "done" if generation >= s.generations else "breed"}
        return state, [event]

    # --- events ----------------------------------------------------------------------------------

    def _event(self, record: Mapping, stage: str, **fields) -> dict:
        s = self.settings
        return {"id": f"{s.branch}/{record['generation']}/{stage}/{record['key']}", "event": "candidate",
                "branch": s.branch, "generation": record["generation"], "stage": stage, "key": record["key"],
                "prefix": record["prefix"], "infix": record["infix"], "size": record["size"],
                "origin": record["origin"], **fields}

    def _raw_event(self, generation: int, tree: Tree, fp: str, origin: str, reason: str) -> dict:
        s = self.settings
        return {"id": f"{s.branch}/{generation}/cpv/{fp}", "event": "candidate", "branch": s.branch,
                "generation": generation, "stage": "cpv", "fingerprint": fp, "prefix": to_prefix(tree, s.form),
                "size": tree_size(tree), "origin": origin, "status": "rejected", "reason": reason}


def _finite_or(value, default: float) -> float:
    return value if isinstance(value, int | float) and math.isfinite(value) else default


def _mos_result(result: Mapping) -> dict:
    score = result.get("score")
    return {"status": "passed" if result["passed"] else "rejected", "passed": bool(result["passed"]),
            "score": score if isinstance(score, int | float) and math.isfinite(score) else None,
            "reason": result.get("reason"), "step": result.get("step"),
            "seconds": round(float(result.get("seconds") or 0.0), 4)}


def ap_metrics(metrics: Mapping) -> dict:
    """The AP columns of a metrics dict (no timings, which differ between identical runs), NaN as None."""
    return {k: (v if isinstance(v, int | float) and math.isfinite(v) else None) for k, v in metrics.items()
            if k in AP_COLUMNS}


def _proxy_result(result: Mapping) -> dict:
    metrics = result.get("metrics") or {}
    ap = metrics.get("AP")
    ok = result.get("status") == "ok" and isinstance(ap, int | float) and math.isfinite(ap)
    reason = result.get("reason") if result.get("status") != "ok" else (None if ok else "the proxy AP is not finite")
    return {"status": "ok" if ok else "failed", "ap": ap if ok else None, "reason": reason,
            "metrics": ap_metrics(metrics), "seconds": round(float(result.get("seconds") or 0.0), 3),
            "attempts": int(result.get("attempts", 1))}


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
