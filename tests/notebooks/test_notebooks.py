"""Every notebook runs top to bottom in a python3 kernel with its smallest settings, and is committed without outputs.

Each notebook has one code cell tagged ``parameters``; the run appends the settings of ``SMALLEST`` to it (each
must be a name that cell sets), in a working directory and data cache of its own.
"""

import ast
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TINY_SEARCH = {"METHOD": "cpv-only", "GENERATIONS": 1, "POPULATION": 1, "TOP_K": 1, "PROXY_STEPS": 2,
               "IMAGE_SIZE": 64, "TRAIN_IMAGES": 8, "VAL_IMAGES": 2, "BATCH_SIZE": 2}
SMALLEST = {
    "01_search_space.ipynb": {"SAMPLES_PER_FORM": 2, "RANDOM_TREES": 100, "VERIFIED_PER_FORM": 1,
                              "VERIFY_TIME_BUDGET": 0.1, "MAX_DEPTH": 3},
    "02_run_a_search.ipynb": {**TINY_SEARCH, "PARENTS": 1, "PROXY_INIT": "scratch", "FINAL_STEPS": 0, "WORKERS": 1,
                              "RUN_DIR": "run"},
    "03_inspect_found_losses.ipynb": {**TINY_SEARCH, "RUN_DIR": None},
}


def read(path: Path):
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def parameters_cell(notebook):
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1 and cells[0].cell_type == "code", "a notebook needs exactly one code cell tagged parameters"
    return cells[0]


def assigned_names(source: str) -> set[str]:
    return {target.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_the_notebooks_are_there():
    assert {path.name for path in NOTEBOOKS} >= set(SMALLEST)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebooks_carry_no_outputs(path):
    notebook = read(path)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"
    parameters_cell(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for all notebooks (they share the small generated datasets)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_with_its_smallest_settings(path, tmp_path, cache, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(cache))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's temporary folders
    notebook = read(path)
    cell = parameters_cell(notebook)
    settings = SMALLEST.get(path.name, {})
    unknown = set(settings) - assigned_names(cell.source)
    assert not unknown, f"{path.name}'s parameters cell does not set {sorted(unknown)}"
    cell.source += "\n\n# smallest settings\n" + "\n".join(f"{name} = {value!r}" for name, value in settings.items())
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
