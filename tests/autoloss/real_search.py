"""A real tiny search in its own process, for tests that kill it (``python real_search.py RUN_DIR SETTINGS``).

SETTINGS is a JSON object: ``config`` (SearchConfig settings), ``resume`` (continue RUN_DIR), ``dask``
(run on a LocalCluster of two worker processes started here), and ``stop_in`` with ``marker``: stop in
that stage — ``breed`` (mid-breeding of the second generation), ``mos`` (after a generation's first
MOS batch was saved, in its second), ``proxy`` (after a generation's first proxy result was saved,
while another training runs) or ``final`` (after the first final row was saved) — by writing the
marker file and sleeping until the test kills the process group.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import autoloss.search_driver as driver
from autoloss.evolution import Evolution
from autoloss.search_config import SearchConfig
from symbolic.funnel import Funnel


def stop_here(marker: str) -> None:
    """Say where the search is, then wait for the kill."""
    Path(marker).write_text("stopped")
    time.sleep(3600)


def install_stop(stage: str, marker: str) -> None:
    """Wrap the driver so that the search stops in ``stage`` (see the module docstring)."""
    if stage == "breed":
        breed, judge = Evolution._breed, Funnel._judge
        breeding = []

        def breeding_generation(self, state):
            breeding.append(state.generation)
            return breed(self, state)

        def judging(self, *args):
            if breeding[-1] == 1:
                stop_here(marker)
            return judge(self, *args)

        Evolution._breed, Funnel._judge = breeding_generation, judging
    elif stage == "mos":
        simulate = driver._SearchRun._simulate

        def simulating(self, state, branch, machine, evo, request):
            if evo.mos:  # a batch of this generation is saved already
                stop_here(marker)
            return simulate(self, state, branch, machine, evo, request)

        driver._SearchRun._simulate = simulating
    else:
        save = driver._SearchRun._save
        def saving(self, state, events=()):
            save(self, state, events)
            if any((event.get("stage") == "proxy") if stage == "proxy" else event["event"] == "final"
                   for event in events):
                stop_here(marker)

        driver._SearchRun._save = saving


def main(run_dir: str, settings: dict) -> None:
    """Run (or resume) the search as ``settings`` say."""
    if settings.get("stop_in"):
        install_stop(settings["stop_in"], settings["marker"])
    config = SearchConfig.from_dict(settings["config"])
    if not settings.get("dask"):
        driver.search(None if settings.get("resume") else config, run_dir=run_dir, resume=bool(settings.get("resume")),
                      progress=False)
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        driver.search(config.replace(dask_scheduler=cluster.scheduler_address), run_dir=run_dir, progress=False)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
