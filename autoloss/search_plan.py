"""``autoloss search --dry-run``: every problem of a search's settings found up front, or the plan of its trainings.

The proxy and final trainings are the typed experiments the search will hand its workers
(:func:`autoloss.training_tasks.task_spec`, :func:`autoloss.proxy.experiment_spec`), so the dry run checks and
times exactly those. The simulation (MOS) and its warm start are not timed.
"""

from __future__ import annotations

from autoloss import proxy
from autoloss.run_store import RunStore
from autoloss.search_config import SearchConfig
from autoloss.search_driver import _task_runner, check_workers_data, missing_data
from autoloss.training_tasks import default_losses, simulation_config, task_spec
from detection.experiment_spec import ExperimentSpec
from detection.plan import StagePlan, experiment_problems, plan_stage


def stage_experiments(config: SearchConfig) -> list[tuple[str, ExperimentSpec, int]]:
    """(stage, experiment, trainings) of the proxy and the final stage (the final one unless ``final_steps`` is 0)."""
    losses = default_losses(config)
    stages = [
        (
            "proxy",
            proxy.experiment_spec(task_spec(config, losses)),
            config.generations * config.top_k * len(config.branches),
        )
    ]
    if config.final_steps:
        rows = 2 if len(config.branches) == 1 else 4  # the baseline, each branch's winner, both winners
        finals = rows * config.final_seeds  # at least: up to final_max_seeds when a difference is within the spread
        stages.append(("final", proxy.experiment_spec(task_spec(config, losses, final=True)), finals))
    return stages


def search_problems(config: SearchConfig, run_dir: str | None) -> list[str]:
    """Every problem found without searching: data paths, run folder, MOS settings, backbone weights, the data of
    each stage (and on every Dask worker when a scheduler is set)."""
    missing = missing_data(config)  # named by setting; the stages' data are read only when all exist
    checks = [lambda: RunStore.check_new(run_dir)] if run_dir is not None else []
    if config.method == "cse":
        checks += [lambda branch=branch: simulation_config(config, branch) for branch in config.branches]
    if config.dask_scheduler:
        checks.append(lambda: check_workers_data(config, _task_runner(config, None)))
    for _, experiment, _ in stage_experiments(config):
        if missing:
            checks.append(lambda experiment=experiment: experiment.model.check(experiment.geometry.canvases[0]))
        else:
            checks.append(lambda experiment=experiment: experiment_problems(experiment))
    problems = list(missing)
    for check in checks:
        try:
            result = check()
            found = result if isinstance(result, list) else []  # a check's list of problems, or none (it passed)
        except (ValueError, OSError) as error:
            found = [str(error)]
        problems += [problem for problem in found if problem not in problems]
    return problems


def search_plan(config: SearchConfig, *, timed_steps: int = 2) -> list[StagePlan]:
    """The plan of each stage's trainings (images, canvas, memory, steps, estimated time)."""
    return [
        plan_stage(experiment, name, trainings=trainings, timed_steps=timed_steps)
        for name, experiment, trainings in stage_experiments(config)
    ]
