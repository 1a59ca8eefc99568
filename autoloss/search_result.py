"""What a search found: the hall of fame, its Pareto front, the filter funnel and the final evaluation, for people and
notebooks.

:func:`summarize` turns a search state (``autoloss.search_state.SearchState``, the checkpoint) into the
JSON reports of the run directory; :class:`SearchResult` is what ``autoloss.search`` returns and
:meth:`SearchResult.load` reads back from any run directory, finished or not (a checkpoint of another
version is refused, naming both versions). Each found loss is a :class:`FoundLoss` whose
``candidate`` is a ``symbolic.Candidate`` (``.latex()``, ``.to_jax()``, ``.prefix()``): the search's
own candidate when the result comes from the search in this process, else parsed once from the
report's prefix on first use. Each branch's Pareto front of complexity against proxy AP, with PySR's
score and choice of "best", is an ``autoloss.pareto.ParetoFront`` (``SearchResult.pareto``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from pathlib import Path
from typing import Any

from autoloss.evolution import hall_of_fame
from autoloss.final_comparison import final_table
from autoloss.pareto import ParetoFront, pareto_hall_of_fame, points_of
from autoloss.records import CandidateRecord
from autoloss.run_store import CHECKPOINT, HALL_OF_FAME, PROGRESS, RESULT, RunStore
from autoloss.search_config import SearchConfig
from autoloss.search_state import SearchState
from symbolic.candidate import Candidate
from symbolic.cpv import VerdictSummary


def cpv_summary(cpv: VerdictSummary | None) -> str:
    """``passed (2/3 proved)``, ``failed: monotonicity`` or ``not checked`` (baselines without CPV)."""
    return "not checked" if cpv is None else cpv.text()


def hall_of_fame_entries(evaluated, size: int, branch: str, form: str) -> list[dict]:
    """The JSON entries of a branch's hall of fame: the loss in infix, LaTeX and prefix, with its scores."""
    entries = []
    for rank, record in enumerate(hall_of_fame(evaluated, size), start=1):
        entries.append({
            "rank": rank, "branch": branch, "form": form, "key": record.key, "infix": record.infix,
            "latex": record.candidate.latex(), "prefix": record.prefix, "size": record.size,
            "generation": record.generation, "origin": record.origin, "proxy_ap": record.proxy.ap,
            "proxy_metrics": record.proxy.metrics, "mos_score": None if record.mos is None else record.mos.score,
            "cpv": None if record.cpv is None else {k: v for k, v in record.cpv.to_dict().items() if k != "seconds"},
            "cpv_summary": cpv_summary(record.cpv),
        })
    return entries


def pareto_of(evaluated, measure: str) -> ParetoFront:
    """The Pareto front of a branch's proxy-trained records (complexity by ``measure``, see autoloss.pareto)."""
    return pareto_hall_of_fame(points_of(evaluated, measure=measure), measure)


def funnel(generations: list[dict]) -> dict[str, int]:
    """Candidates at each stage summed over generations (the keys of ``autoloss.plots_search.plot_funnel``)."""
    total: Counter = Counter()
    for g in generations:
        for name in ("generated", "unique", "duplicates", "cpv", "mos", "proxy", "proxy_failed"):
            total[name] += g.get(name, 0)
        total["rejected_by_cpv"] += sum(n for reason, n in g.get("rejected", {}).items() if reason.startswith("cpv"))
        total["invalid"] += g.get("rejected", {}).get("invalid", 0)
        total["rejected_by_mos"] += g.get("cpv", 0) - g.get("mos", 0)
    return {name: total[name] for name in ("generated", "unique", "duplicates", "invalid", "rejected_by_cpv", "cpv",
                                           "rejected_by_mos", "mos", "proxy", "proxy_failed")}


def failed_trainings(state: SearchState) -> list[dict]:
    """Every proxy training that failed (closed generations, then the current one), with its reason and attempts."""
    failed = []
    for branch, evo in state.branches.items():
        by_key = {r.key: r for r in evo.pool}
        current = [by_key[key].replace(proxy=result) for key, result in evo.proxy.items() if key in by_key]
        for record in evo.evaluated + tuple(current):
            if record.proxy is not None and record.proxy.status == "failed":
                failed.append({"branch": branch, "generation": record.generation, "key": record.key,
                               "infix": record.infix, "reason": record.proxy.reason,
                               "attempts": record.proxy.attempts})
    return failed


def summarize(config: SearchConfig, state: SearchState) -> dict:
    """The reports of a search state: hall of fame, progress (per generation, funnel) and final evaluation."""
    branches, generations = {}, []
    for branch, evo in state.branches.items():
        branches[branch] = {
            "form": evo.form,
            "hall_of_fame": hall_of_fame_entries(evo.evaluated, config.hall_of_fame_size, branch, evo.form),
            "generations": [{**g, "branch": branch} for g in evo.generations],
            "pareto": pareto_of(evo.evaluated, config.complexity_measure).to_dict(),
            "funnel": funnel(evo.generations),
            "finished": evo.stage == "done",
        }
        generations += branches[branch]["generations"]
    return {
        "method": config.method, "detector": config.detector, "branch": config.branch,
        "finished": state.stage == "done", "branches": branches, "generations": generations,
        "funnel": funnel(generations), "mos_baseline": state.mos_baseline,
        "failed_trainings": failed_trainings(state),
        "final": final_table(state.final), "seconds": state.seconds,
    }


def found_records(config: SearchConfig, state: SearchState) -> dict[str, CandidateRecord]:
    """The records of every branch's hall of fame by key (each carrying its candidate)."""
    return {r.key: r for evo in state.branches.values() for r in hall_of_fame(evo.evaluated, config.hall_of_fame_size)}


def write_reports(store: RunStore, config: SearchConfig, state: SearchState) -> dict:
    """Write hall_of_fame.json and progress.json (and result.json once finished); return the summary."""
    summary = summarize(config, state)
    store.write_report(HALL_OF_FAME, {"branches": {b: s["hall_of_fame"] for b, s in summary["branches"].items()},
                                      "pareto": {b: s["pareto"] for b, s in summary["branches"].items()}})
    store.write_report(PROGRESS, {"generations": summary["generations"], "funnel": summary["funnel"],
                                  "branches": {b: {"generations": s["generations"], "funnel": s["funnel"]}
                                               for b, s in summary["branches"].items()}})
    if summary["finished"]:
        store.write_report(RESULT, {"config": config.to_dict(), **summary})
    return summary


@dataclasses.dataclass(frozen=True)
class FoundLoss:
    """One loss of the hall of fame: its scores, and the formula with Candidate's printers and lowering."""

    rank: int
    branch: str
    form: str
    formula: str  # canonical infix
    proxy_ap: float
    mos_score: float | None
    cpv: str  # cpv_summary: "passed (2/3 proved)", or "not checked" for a baseline without CPV
    size: int
    generation: int
    key: str
    authors_prefix: str = dataclasses.field(repr=False, default="")
    proxy_metrics: dict = dataclasses.field(repr=False, default_factory=dict)

    @functools.cached_property
    def candidate(self) -> Candidate:
        """The loss as a ``symbolic.Candidate`` (the search's own, or parsed once from the report's prefix)."""
        return Candidate.parse(self.authors_prefix, self.form)

    def infix(self) -> str:
        """Plain math text of the loss."""
        return self.formula

    def latex(self) -> str:
        """LaTeX of the loss."""
        return self.candidate.latex()

    def prefix(self) -> str:
        """The authors' prefix format (for --loss_cls/--loss_reg of their tools/train.py)."""
        return self.authors_prefix

    def to_jax(self):
        """The loss as a jitted pure JAX function with its form's signature."""
        return self.candidate.to_jax()

    @classmethod
    def from_entry(cls, entry: dict, record: CandidateRecord | None = None) -> FoundLoss:
        """The FoundLoss of a hall_of_fame.json entry; with the search's ``record``, its candidate is the record's."""
        found = cls(entry["rank"], entry["branch"], entry["form"], entry["infix"], entry["proxy_ap"],
                    entry["mos_score"], entry["cpv_summary"], entry["size"], entry["generation"], entry["key"],
                    entry["prefix"], entry["proxy_metrics"])
        if record is not None and "candidate" in record.__dict__:
            found.__dict__["candidate"] = record.candidate  # the cached_property's slot
        return found


@dataclasses.dataclass
class SearchResult:
    """The outcome of a search: hall of fame, winners per branch, funnel, per-generation progress, final table, and
    each branch's Pareto front (``pareto[branch].best_entry`` is the front's chosen best)."""

    run_dir: Path
    config: SearchConfig
    hall_of_fame: list[FoundLoss]
    winners: dict[str, FoundLoss]
    funnel: dict[str, int]
    generations: list[dict]
    final: dict[str, dict]
    seconds: dict[str, float]
    finished: bool
    summary: dict = dataclasses.field(repr=False, default_factory=dict)
    pareto: dict[str, ParetoFront] = dataclasses.field(repr=False, default_factory=dict)

    @property
    def best(self) -> FoundLoss | None:
        """The best loss of the (first) searched branch; ``winners`` has every branch's."""
        return self.winners.get(self.config.branches[0])

    @classmethod
    def from_summary(cls, run_dir, config: SearchConfig, summary: dict,
                     records: dict[str, CandidateRecord] | None = None) -> SearchResult:
        """The result of a :func:`summarize` summary; ``records`` (:func:`found_records`) lend their candidates."""
        records = records or {}
        entries = [FoundLoss.from_entry(e, records.get(e["key"])) for b in summary["branches"].values()
                   for e in b["hall_of_fame"]]
        winners = {e.branch: e for e in entries if e.rank == 1}
        pareto = {branch: ParetoFront.from_dict(part["pareto"]) for branch, part in summary["branches"].items()}
        return cls(Path(run_dir), config, entries, winners, summary["funnel"], summary["generations"],
                   summary["final"], summary["seconds"], summary["finished"], summary, pareto)

    @classmethod
    def load(cls, run_dir) -> SearchResult:
        """The result stored in a run directory (a finished one, or the state of an unfinished one)."""
        store = RunStore.open(run_dir)
        config = store.config()
        saved = store.load_checkpoint()
        state = SearchState() if saved is None else SearchState.from_json(saved, str(store.path / CHECKPOINT))
        return cls.from_summary(run_dir, config, summarize(config, state))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary (as in result.json), with the run directory."""
        return {"run_dir": str(self.run_dir), "config": self.config.to_dict(), **self.summary}

    def to_dataframe(self):
        """The hall of fame as a pandas DataFrame (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("SearchResult.to_dataframe needs pandas: pip install pandas") from None
        names = ("rank", "branch", "formula", "proxy_ap", "mos_score", "cpv", "size", "generation", "key")
        rows = [{**{name: getattr(e, name) for name in names}, "prefix": e.prefix()} for e in self.hall_of_fame]
        return pandas.DataFrame(rows)
