"""Run directories written by the real search driver with the fake MOS and proxy of ``search_fakes`` (seconds each).

``finished_run`` is a complete search; ``run_stopped_before_final`` is what a search killed as its final
evaluation starts leaves behind: a checkpoint at the final stage, no final rows and no result.json.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

import autoloss.search_driver as driver
from autoloss.final_stage import FinalStage
from autoloss.search_config import SearchConfig
from autoloss.search_result import SearchResult

TINY = {"population": 6, "generations": 2, "top_k": 2, "parents": 2, "final_steps": 2}


def finished_run(run_dir, **settings) -> SearchResult:
    """A finished search in ``run_dir`` with the fake MOS and proxy on threads."""
    with ThreadPoolExecutor(2) as executor:
        return driver.search(SearchConfig(**{**TINY, **settings}), run_dir=run_dir, simulator=FakeSimulator,
                             executor=executor, proxy_task=fake_proxy, progress=False)


class Stopped(Exception):
    """Stands in for the kill."""


def run_stopped_before_final(run_dir, **settings) -> None:
    """A search in ``run_dir`` stopped when its final evaluation was about to start."""

    def stop(self, state):
        raise Stopped

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FinalStage, "run", stop)
        with pytest.raises(Stopped):
            finished_run(run_dir, **settings)
