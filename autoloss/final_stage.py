"""The search's final evaluation: the baseline and each branch's winner trained with the final schedule on the train
split, over seeds, and evaluated on ``final_val``, which the search never saw.

The rows (:func:`final_rows`): the detector's default losses (the baseline), each branch's best found loss with
the other branch's default, and for ``both`` the two winners together. Every row trains ``final_seeds`` seeds and,
while a found row's difference to the baseline is within the seed spread, one more seed of both, up to
``final_max_seeds`` (``autoloss.final_comparison``); each round is planned from the checkpoint alone, so a resumed
search trains only what is missing. Each training is saved as it finishes (checkpoint and log) and its model
under ``RUN_DIR/final/ROW`` (first seed) or ``RUN_DIR/final/ROW-seedS``.
"""

from __future__ import annotations

from collections.abc import Callable

from autoloss.evolution import hall_of_fame
from autoloss.executors import TaskRunner, TrainingTask
from autoloss.final_comparison import round_plan
from autoloss.records import ap_metrics
from autoloss.run_store import RunStore
from autoloss.search_config import SearchConfig
from autoloss.search_report import SearchProgress
from autoloss.search_state import SearchState
from autoloss.training_tasks import default_losses, task_spec
from detection.checkpoints import write_atomically


def final_rows(config: SearchConfig, state: SearchState) -> dict[str, dict]:
    """{row: {"cls": loss, "reg": loss}}: the baseline, each branch's winner, and both winners together."""
    defaults = default_losses(config)
    found = {}
    for branch, evo in state.branches.items():
        best = hall_of_fame(evo.evaluated, 1)
        if best:
            found[branch] = {"prefix": best[0].prefix, "form": evo.form, "infix": best[0].infix}
    rows = {"baseline": defaults}
    if len(config.branches) == 1:
        if found:
            rows["found"] = {**defaults, **found}
    else:
        rows.update({f"found-{branch}": {**defaults, branch: loss} for branch, loss in found.items()})
        if len(found) == 2:
            rows["found-both"] = {**defaults, **found}
    return rows


class FinalStage:
    """The final trainings of one search session; ``save(state, events)`` checkpoints, ``monitor()`` shows them."""

    def __init__(self, config: SearchConfig, store: RunStore, reporter: SearchProgress, runner: TaskRunner,
                 proxy_task: Callable[[dict], dict], save: Callable, monitor: Callable):
        self.config, self.store, self.reporter, self.runner = config, store, reporter, runner
        self.proxy_task, self.save, self.monitor = proxy_task, save, monitor

    def run(self, state: SearchState) -> None:
        """Train every final training the state lacks, round by round, until no row asks for another seed."""
        rows = final_rows(self.config, state)
        while True:
            plan = round_plan(state.final, rows, self.config.seed, self.config.final_seeds, self.config.final_max_seeds)
            missing = {key: value for key, value in plan.items() if key not in state.final}
            if not missing:
                return
            self._round(state, rows, plan, missing)

    def _round(self, state: SearchState, rows: dict, plan: dict, missing: dict) -> None:
        seeds = sorted({seed for _, seed in missing.values()})
        self.reporter.message(f"final evaluation: {', '.join(rows)}, seed{'s' * (len(seeds) > 1)} "
                              f"{', '.join(map(str, seeds))} ({self.config.final_steps} steps each)")
        self.reporter.stage("final", len(plan), unit="training", done=len(plan) - len(missing))
        return_model = not self.runner.shared_filesystem
        tasks = {key: TrainingTask(task_spec(self.config.replace(seed=seed), rows[row], final=True,
                                             return_model=return_model, out_dir=self.store.path / "final" / key),
                                   self.config.final_time_limit, f"final {key}")
                 for key, (row, seed) in missing.items()}

        def on_result(key: str, result: dict) -> None:
            for file_name, data in (result.pop("files", None) or {}).items():  # a model trained elsewhere
                write_atomically(self.store.path / "final" / key / file_name, data)
            row_name, seed = missing[key]
            losses = {branch: loss.get("infix") or loss.get("name") for branch, loss in rows[row_name].items()}
            row = {"row": row_name, "seed": seed, "status": result.get("status"), "reason": result.get("reason"),
                   "losses": losses, "metrics": ap_metrics(result.get("metrics") or {}),
                   "seconds": result.get("seconds"), "out_dir": result.get("out_dir"),
                   "attempts": result.get("attempts")}
            state.final[key] = row
            timings = {k: v for k, v in result.items() if k.endswith(("seconds", "_second")) and k != "seconds"}
            self.save(state, [{"id": f"final/{key}", "event": "final", **row, "timings": timings}])
            self.reporter.advance(1)

        self.runner.run(self.proxy_task, tasks, on_result, self.monitor())
        self.reporter.close()
