"""Fixtures of the loss-table tests: a fake training in place of the real one, and a fake search run."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy, unit_hash

import autoloss
from autoloss.final_comparison import PAPER_COLUMNS
from autoloss.search_config import SearchConfig
from benchmarks import loss_rows

HEADER = ["detector", "data", "row", "cls loss", "reg loss", *PAPER_COLUMNS, "vs ref (AP)", "min/run", "note"]


def fake_training(spec: dict) -> dict:
    """A task result with AP from a hash of the task; diou on Faster R-CNN fails at seed 1."""
    if spec["reg"] == {"name": "diou"} and spec["detector"] == "faster-rcnn" and spec["seed"] == 1:
        return {"status": "failed", "reason": "diverged at step 3", "seconds": 1.0}
    ap = 0.5 * unit_hash(repr(sorted(spec.items())))
    metrics = {"AP": ap, "AP50": 1.5 * ap, "AP75": 0.8 * ap, "AP_S": 0.5 * ap, "AP_M": ap,
               "AP_L": float("nan"), "mAP50_voc": 1.5 * ap}
    return {"status": "ok", "metrics": metrics, "final_loss": 1.0, "train_seconds": 30.0, "compile_seconds": 1.0,
            "images_per_second": 100.0, "out_dir": spec["out_dir"], "seconds": 31.0}


@pytest.fixture
def fake_tasks(monkeypatch):
    """Replace the detector training of every row by ``fake_training``; the specs it got, in order."""
    seen = []

    def record(spec):
        seen.append(spec)
        return fake_training(spec)

    monkeypatch.setattr(loss_rows, "train_and_evaluate", record)
    return seen


@pytest.fixture(scope="session")
def fcos_search_run(tmp_path_factory):
    """The run directory of a tiny FCOS search of both branches (fake simulation and proxy)."""
    run_dir = tmp_path_factory.mktemp("search") / "run"
    settings = {"population": 6, "generations": 1, "top_k": 2, "parents": 2, "final_steps": 2, "branch": "both"}
    with ThreadPoolExecutor(2) as executor:
        autoloss.search(SearchConfig(**settings), run_dir=run_dir, simulator=FakeSimulator, executor=executor,
                        proxy_task=fake_proxy, progress=False)
    return run_dir


def parse_table(section: str) -> list[dict]:
    """The rows of a loss table section's markdown table as {column: cell}; checks the header."""
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == HEADER
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split(" | ")), strict=True))
            for line in lines[1:]]


@pytest.fixture
def table_of():
    """``parse_table``."""
    return parse_table
