"""The search, end to end: ``search(config) -> SearchResult``.

For every searched branch (``cls``, ``reg``, or both in turn, the other branch keeping its default
loss) the driver runs the :class:`~autoloss.evolution.Evolution` machine: it answers MOS requests with
the simulator (``simulate.Simulator``, in this process, in fixed batches, on the records' own
candidates) and proxy requests with :func:`autoloss.proxy.train_and_evaluate` on the task runner
(local worker processes, or Dask with ``dask_scheduler``; :mod:`autoloss.executors`), which stops a
training at its time limit and retries it once; the worker receives the loss as text and is the only
place that parses it. After every stage it appends the stage's events to the log and replaces the
checkpoint (the typed, versioned :class:`~autoloss.search_state.SearchState`; :mod:`autoloss.run_store`),
so ``search(..., resume=True)`` continues a killed run and ends with what the uninterrupted run would
have found; a resumed run's folder (and its checkpoint's version) is checked before any work.

Then the final evaluation (Sec. 4 of the paper): the default losses of the detector (the baseline)
and the best found loss of each branch (and, for ``both``, the two winners together) are trained
with the longer final schedule on the train split and evaluated on ``final_val``, which the search
never saw, each with ``final_seeds`` seeds and more while a found row's difference to the baseline is within the
seed spread (``autoloss.final_comparison``). Each model is saved under ``RUN_DIR/final/ROW`` (first seed) or
``RUN_DIR/final/ROW-seedS``.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from autoloss.devices import visible_gpus
from autoloss.evolution import Evolution, EvolutionSettings, Request
from autoloss.executors import TaskRunner, TrainingTask
from autoloss.final_stage import FinalStage
from autoloss.proxy import train_and_evaluate
from autoloss.run_store import CHECKPOINT, RunStore
from autoloss.search_config import EXECUTION_KEYS, SearchConfig, SearchConfigError, from_mapping
from autoloss.search_report import SearchProgress, generation_line
from autoloss.search_result import SearchResult, found_records, write_reports
from autoloss.search_state import EvolutionState, SearchState
from autoloss.training_progress import RunningTrainings
from autoloss.training_tasks import (
    default_losses,
    make_simulator,
    simulation_config,
    task_spec,
    warm_start_params,
    warm_start_settings,
)
from detection.dataset_spec import parse_dataset_spec


def as_config(config: SearchConfig | str | Mapping | None) -> SearchConfig:
    """A SearchConfig from a config, a preset name, a dict of settings, or None (the demo preset)."""
    if config is None:
        return SearchConfig.preset("demo")
    if isinstance(config, SearchConfig):
        return config
    if isinstance(config, str):
        return SearchConfig.preset(config)
    return from_mapping(config, source="config")


def missing_data(config: SearchConfig) -> list[str]:
    """What a coco/voc dataset spec of the settings names and this machine lacks: one line each, with the setting."""
    missing = []
    for name in ("data", "search_val_data", "final_val_data"):
        spec = getattr(config, name)
        missing += [f"setting {name!r}: {path} does not exist (spec {spec!r})"
                    for path in (parse_dataset_spec(spec).paths() if spec else []) if not path.exists()]
    return missing


def check_data(config: SearchConfig) -> None:
    """SearchConfigError naming the setting when a coco/voc dataset spec points at nothing."""
    missing = missing_data(config)
    if missing:
        raise SearchConfigError(missing[0])


def check_workers_data(config: SearchConfig, runner: TaskRunner) -> None:
    """SearchConfigError naming the worker and the path when a worker without this machine's files lacks the data."""
    if runner.shared_filesystem:
        return
    missing = [f"{problem} on worker {worker}" for worker, problems in runner.on_every_worker(missing_data, config)
               .items() for problem in problems]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SearchConfigError(f"{missing[0]}{more}; put the data at the same path on every worker")


def resolve_run(config, run_dir, resume: bool, *, check_mos: bool = True) -> tuple[SearchConfig, RunStore | None]:
    """The effective config, and the store of a resumed run (a new run's store is created later).

    A resumed run keeps its stored settings; a ``config`` given with it must agree on every setting but
    the execution ones (workers, Dask), which it may change. Its folder is checked (checkpoint and log)
    before anything else happens. Nothing is written here.
    """
    if resume:
        if run_dir is None:
            raise SearchConfigError("resume needs the run directory")
        store = RunStore.open(run_dir)
        state = store.validate()
        if state is not None:
            SearchState.from_json(state, str(store.path / CHECKPOINT))  # damaged or of another version: refused
        stored = store.config()
        if config is None:
            return stored, store
        config = as_config(config)
        store.check_config(config)
        return stored.replace(**{key: getattr(config, key) for key in EXECUTION_KEYS}), store
    config = as_config(config)
    check_data(config)
    if config.method == "cse" and check_mos:
        for branch in config.branches:
            simulation_config(config, branch)  # MOS settings are checked before anything is written
    if run_dir is not None:
        RunStore.check_new(run_dir)
    return config, None


def search(
    config: SearchConfig | str | Mapping | None = None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    simulator: Any = None,
    executor: Executor | Callable[[], Executor] | None = None,
    proxy_task: Callable[[dict], dict] | None = None,
) -> SearchResult:
    """Run a search (or continue the one in ``run_dir`` with ``resume=True``); return what it found.

    ``simulator``: an object with ``simulate_many(candidates)`` and ``baseline``, or a factory
    ``branch -> simulator`` such as a class (default: ``simulate.Simulator`` of the search's settings).
    ``executor``: a ``concurrent.futures.Executor`` to run the trainings on, without enforced time limits
    (default: ``config.workers`` local worker processes with hard time limits, or Dask at
    ``config.dask_scheduler``). ``proxy_task``: the training function (default
    ``autoloss.proxy.train_and_evaluate``; a picklable top-level function for worker processes).

    With GPUs, a search that has not used JAX yet sets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` here (unless
    set), so its simulation shares the GPU with the workers (``autoloss.devices``).
    """
    config, store = resolve_run(config, run_dir, resume, check_mos=simulator is None)
    if visible_gpus():
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    runner = _task_runner(config, executor)
    reporter = SearchProgress(progress)
    try:
        check_workers_data(config, runner)
        if store is None:
            store = RunStore.create(run_dir or Path("runs") / f"search-{datetime.datetime.now():%Y%m%d-%H%M%S}", config)
        with store.lock():
            state, summary = _SearchRun(config, store, reporter, runner, simulator,
                                        proxy_task or train_and_evaluate).run()
    finally:
        reporter.close()
        runner.close()
    return SearchResult.from_summary(store.path, config, summary, found_records(config, state))


def _task_runner(config: SearchConfig, executor: Executor | None) -> TaskRunner:
    """The runner of the caller's executor, of Dask (connected now, to fail early), or of local processes."""
    if executor is not None:
        return TaskRunner.of(executor)
    if config.dask_scheduler:
        return TaskRunner.dask(config.dask_scheduler, timeout=config.dask_connect_timeout)
    return TaskRunner.local(config.workers)


class _SearchRun:
    """One session of a search: from the checkpoint (or the start) to the end, saving after every stage."""

    def __init__(self, config: SearchConfig, store: RunStore, reporter: SearchProgress, runner: TaskRunner,
                 simulator, proxy_task):
        self.config, self.store, self.reporter, self.runner = config, store, reporter, runner
        self.simulator_arg, self.proxy_task = simulator, proxy_task
        self.simulators: dict[str, Any] = {}
        self.warm_starts: dict[str, Any] = {}
        self.session_start = time.perf_counter()

    def run(self) -> tuple[SearchState, dict]:
        repaired = self.store.repair_log()
        if repaired:
            self.reporter.message(repaired)
        saved = self.store.load_checkpoint()
        state = SearchState() if saved is None else SearchState.from_json(saved, str(self.store.path / CHECKPOINT))
        if saved is not None:
            self.reporter.message(f"resuming the search in {self.store.path}")
        self.base_seconds = state.seconds.get("total", 0.0)
        if state.stage == "search":
            for branch in self.config.branches:
                self._search_branch(state, branch)
            state.stage = "final" if self.config.final_steps else "done"
            self._save(state)
        if state.stage == "final":
            started = time.perf_counter()
            FinalStage(self.config, self.store, self.reporter, self.runner, self.proxy_task, self._save,
                       self._monitor).run(state)
            self._add_seconds(state, "final", time.perf_counter() - started)
            state.stage = "done"
            self._save(state)
        return state, write_reports(self.store, self.config, state)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _save(self, state: SearchState, events=()) -> None:
        self.store.append_log(events)  # the log first: a resumed stage skips what it already holds
        state.seconds["total"] = round(self.base_seconds + time.perf_counter() - self.session_start, 3)
        self.store.save_checkpoint(state.to_json())

    def _add_seconds(self, state: SearchState, name: str, seconds: float) -> None:
        state.seconds[name] = round(state.seconds.get(name, 0.0) + seconds, 3)

    def _commit(self, state: SearchState, branch: str, evo: EvolutionState, events) -> None:
        state.branches[branch] = evo
        self._save(state, events)
        closed = [e for e in events if e.get("event") == "generation"]
        for event in closed:
            self.reporter.close()
            self.reporter.message(generation_line(branch, event, self.config.generations))
        if closed:
            write_reports(self.store, self.config, state)

    # --- the evolution ---------------------------------------------------------------------------

    def _search_branch(self, state: SearchState, branch: str) -> None:
        machine = Evolution(EvolutionSettings.from_config(self.config, branch), progress=self.reporter.breeding)
        evo = state.branches.get(branch) or machine.init()
        if evo.stage != "done":
            self.reporter.message(f"searching the {branch} branch ({evo.form} form) with method "
                                  f"{self.config.method}, {self.config.generations} generations")
        while True:
            started = time.perf_counter()
            evo, request = machine.ask(evo)
            self.reporter.close()
            self._add_seconds(state, "breed", time.perf_counter() - started)
            self._commit(state, branch, evo, request.events)
            if request.stage == "done":
                return
            if request.stage == "generation":
                continue
            if request.stage == "mos":
                evo = self._simulate(state, branch, machine, evo, request)
            else:
                evo = self._train_proxies(state, branch, machine, evo, request)

    def _simulator(self, state: SearchState, branch: str):
        if branch not in self.simulators:
            started = time.perf_counter()
            given = self.simulator_arg
            if given is None:
                self.reporter.message(f"preparing MOS for the {branch} branch (warm start, cached after the first run)")
                simulator = make_simulator(self.config, branch, progress=self.reporter.enabled)
            else:
                is_factory = isinstance(given, type) or not hasattr(given, "simulate_many")
                simulator = given(branch) if is_factory else given
            self.simulators[branch] = simulator
            baseline = getattr(simulator, "baseline", None)
            if baseline is not None and branch not in state.mos_baseline:
                state.mos_baseline[branch] = {"score": getattr(baseline, "score", None),
                                              "passed": getattr(baseline, "passed", None)}
                score = state.mos_baseline[branch]["score"]
                self.reporter.message(f"MOS baseline ({default_losses(self.config)[branch]['name']}): AP "
                                      + ("-" if score is None else f"{100 * score:.2f}"))
            self._add_seconds(state, "mos", time.perf_counter() - started)
        return self.simulators[branch]

    def _simulate(self, state: SearchState, branch: str, machine: Evolution, evo: EvolutionState,
                  request: Request) -> EvolutionState:
        simulator = self._simulator(state, branch)
        self.reporter.stage(f"gen {evo.generation + 1} MOS", len(evo.pool), done=len(evo.mos))
        started = time.perf_counter()
        outcomes = simulator.simulate_many([record.candidate for record in request.candidates])
        results = {record.key: outcome.to_dict() if hasattr(outcome, "to_dict") else dict(outcome)
                   for record, outcome in zip(request.candidates, outcomes, strict=True)}
        evo, events = machine.tell(evo, "mos", results)
        self._add_seconds(state, "mos", time.perf_counter() - started)
        self._commit(state, branch, evo, events)
        self.reporter.advance(len(results))
        return evo

    def _warm_start(self, branch: str):
        """The warm start's parameters for proxy trainings of ``branch``, shared with workers that cannot read
        the warm-start cache of this machine (Dask); None where they can, or where proxies start from scratch."""
        if self.config.proxy_init != "warm" or self.runner.shared_filesystem:
            return None
        settings = json.dumps(warm_start_settings(self.config, branch), sort_keys=True)
        if settings not in self.warm_starts:
            params = warm_start_params(self.config, branch, progress=self.reporter.enabled)
            self.warm_starts[settings] = self.runner.share(params)
        return self.warm_starts[settings]

    def _monitor(self) -> RunningTrainings:
        return RunningTrainings(self.reporter.trainings)

    def _train_proxies(self, state: SearchState, branch: str, machine: Evolution, evo: EvolutionState,
                       request: Request) -> EvolutionState:
        generation = evo.generation + 1
        warm_start = self._warm_start(branch)
        self.reporter.stage(f"gen {generation} proxy", len(evo.proxy_keys), unit="training",
                            done=len(evo.proxy_keys) - len(request.candidates))
        defaults = default_losses(self.config)
        # the worker process receives the loss as text and parses it (the only parse outside the funnel)
        tasks = {record.key: TrainingTask(
            task_spec(self.config, {**defaults, branch: {"prefix": record.prefix, "form": evo.form}},
                      branch=branch, warm_start=warm_start),
            self.config.proxy_time_limit, f"gen {generation} proxy {_short(record.infix)}")
            for record in request.candidates}
        started = time.perf_counter()

        def on_result(key: str, result: dict) -> None:
            nonlocal evo
            evo, events = machine.tell(evo, "proxy", {key: result})
            self._commit(state, branch, evo, events)
            ap = evo.proxy[key].ap
            self.reporter.advance(1, last_AP="failed" if ap is None else f"{100 * ap:.2f}")

        self.runner.run(self.proxy_task, tasks, on_result, self._monitor())
        self._add_seconds(state, "proxy", time.perf_counter() - started)
        return evo


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
