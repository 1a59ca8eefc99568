"""Export: generated JAX modules import with only jax; the CLI writes files, exports the losses a search found from
its run directory, and refuses bad input. (Values and gradients: test_export_equivalence, test_export_numerics.)"""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from search_runs import finished_run

from autoloss.cli import main
from autoloss.export import EXPORT_FORMATS, MODULE_FORMATS, ExportHeader, Provenance, export_text, jax_module_source
from autoloss.run_store import HALL_OF_FAME, RunStore
from symbolic.candidate import Candidate
from symbolic.zoo import KNOWN_LOSSES


def load_module(candidate, directory, name):
    """Import the exported JAX module of ``candidate`` from a file in ``directory``."""
    path = directory / f"{name}.py"
    path.write_text(jax_module_source(candidate))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["cse_b_cls", "cse_a_cls", "cse_b_reg"])
def test_module_needs_only_jax_and_math(name):
    tree = ast.parse(jax_module_source(KNOWN_LOSSES[name].candidate))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"math", "jax", "jax.numpy", "jax.scipy.special"}


def test_module_has_the_form_signature_and_output_shape(tmp_path):
    module = load_module(KNOWN_LOSSES["ce"].candidate, tmp_path, "ce")
    assert module.FORM == "softmax" and module.INPUTS == ("x", "y", "w")
    x = jnp.zeros((5, 3))
    assert module.loss(x, np.eye(3)[[0, 1, 2, 2, 0]], jnp.ones((5, 3))).shape == (5,)
    assert float(jax.jit(module.loss)(x, np.eye(3)[[0] * 5], 1.0)[0]) == pytest.approx(np.log(3), rel=1e-6)
    reg = load_module(KNOWN_LOSSES["giou"].candidate, tmp_path, "giou")
    assert reg.loss(jnp.ones(4), 2.0, 4.0).shape == (4,)


@pytest.mark.parametrize("to, expected", [("latex", "latex"), ("prefix", "prefix"), ("sympy", "sympy")])
def test_text_exports(to, expected):
    candidate = KNOWN_LOSSES["cse_a_cls"].candidate
    text = export_text(candidate, to)
    assert text.endswith("\n")
    if to == "prefix":
        assert Candidate.parse(text.strip(), "softmax") == candidate
    elif to == "latex":
        assert text.strip() == candidate.latex()
    else:
        assert text.strip() == str(candidate.expr)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_the_export_on_stdout(capsys):
    code, out, err = run(capsys, "export", "-log(sigmoid(x))", "--form", "sigmoid", "--to", "prefix")
    assert code == 0 and err == "" and out == "Softplus(Neg(X))\n"
    code, out, _ = run(capsys, "export", "1 - i/u", "--form", "reg", "--to", "jax", "--json")
    report = json.loads(out)
    assert code == 0 and report["format"] == "jax" and "def loss(i, u, e):" in report["text"]
    assert set(report) >= {"format", "text", "key", "form", "path"} and report["path"] is None


def test_cli_writes_an_importable_module(capsys, tmp_path):
    target = tmp_path / "cse_b_cls.py"
    code, out, _ = run(capsys, "export", KNOWN_LOSSES["cse_b_cls"].formula, "--form", "sigmoid", "--to", "jax",
                       "-o", str(target), "--json")
    assert code == 0 and json.loads(out)["path"] == str(target)
    assert os.listdir(tmp_path) == ["cse_b_cls.py"]  # no temporary file left behind
    spec = importlib.util.spec_from_file_location("cse_b_cls", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported_prefix = module.PREFIX
    assert exported_prefix == KNOWN_LOSSES["cse_b_cls"].candidate.prefix()


def test_cli_rejects_an_unknown_format_with_exit_2(capsys):
    assert main(["export", "x", "--form", "sigmoid", "--to", "onnx"]) == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
    assert "jax" in EXPORT_FORMATS


@pytest.mark.parametrize("argv, message", [
    (["export", "x", "--to", "prefix"], "--form"),
    (["export", "x", "--form", "sigmoid", "--to", "prefix", "-o", "/dev/null/loss.txt"], "cannot write"),
])
def test_cli_usage_errors_exit_2_with_one_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_cli_output_in_a_new_folder_is_written_whole_and_readable(tmp_path, capsys):
    target = tmp_path / "exports" / "losses" / "bce.txt"
    code, out, err = run(capsys, "export", "-log(sigmoid(x))", "--form", "sigmoid", "--to", "prefix", "-o", str(target))
    assert code == 0, err
    plain = tmp_path / "plain.txt"
    plain.write_text("a file written the usual way")
    assert target.read_text().strip() and target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert [path.name for path in target.parent.iterdir()] == ["bce.txt"]  # no temporary file left beside it


@pytest.fixture(scope="module")
def both_run(tmp_path_factory):
    """A finished search of both branches (fake MOS and proxy) and its hall_of_fame.json entries."""
    run_dir = tmp_path_factory.mktemp("both") / "run"
    finished_run(run_dir, branch="both", generations=1)
    return run_dir, RunStore.open(run_dir).read_report(HALL_OF_FAME)["branches"]


@pytest.mark.parametrize("to", EXPORT_FORMATS)
@pytest.mark.parametrize("branch, rank", [("cls", None), ("reg", None), ("reg", 2)])
def test_cli_exports_a_found_loss_of_a_run_as_its_hall_of_fame_entry(capsys, both_run, to, branch, rank):
    run_dir, entries = both_run
    entry = entries[branch][(rank or 1) - 1]
    choice = ["--branch", branch] + ([] if rank is None else ["--rank", str(rank)])
    code, out, err = run(capsys, "export", str(run_dir), "--to", to, *choice, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["found"] == {"run_dir": str(run_dir), "branch": branch, "rank": rank or 1}
    assert report["key"] == entry["key"] and report["infix"] == entry["infix"]
    header = ExportHeader(f"{entry['cpv_summary']} (the search's verdict)",
                          Provenance("run", branch, rank or 1, entry["proxy_ap"]))
    candidate = Candidate.parse(entry["prefix"], entry["form"])
    assert report["text"] == export_text(candidate, to, header=header if to in MODULE_FORMATS else None)
    if to in MODULE_FORMATS:
        assert f"found:   rank {rank or 1} of the {branch} branch of search run run (proxy AP" in report["text"]
        assert str(run_dir.parent) not in report["text"]  # the run's name, never its path


def test_cli_exports_the_best_loss_of_a_single_branch_run_without_branch(capsys, tmp_path):
    result = finished_run(tmp_path / "run", generations=1, final_steps=0)
    target = tmp_path / "best.py"
    code, out, err = run(capsys, "export", str(tmp_path / "run"), "--to", "jax", "-o", str(target))
    assert code == 0 and err == ""
    assert f"rank 1 of the cls branch of {tmp_path / 'run'}" in out
    best = result.best
    header = ExportHeader(f"{best.cpv} (the search's verdict)", Provenance("run", "cls", 1, best.proxy_ap))
    assert target.read_text() == jax_module_source(best.candidate, header=header)


@pytest.mark.parametrize("extra, message", [
    ([], "searched the cls and reg branches; choose one with --branch"),
    (["--branch", "reg", "--rank", "99"], "the reg hall of fame holds"),
    (["--branch", "reg", "--rank", "0"], "give --rank from 1 to"),
    (["--branch", "cls", "--form", "reg"], "are of the sigmoid form, not reg"),
])
def test_cli_run_directory_errors_name_the_run_and_what_is_available(capsys, both_run, extra, message):
    run_dir, _ = both_run
    code, out, err = run(capsys, "export", str(run_dir), "--to", "prefix", *extra)
    assert code == 2 and out == "" and message in err and str(run_dir) in err and "Traceback" not in err


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), "is not a search run directory"),
    (lambda path: None, "is neither a search run directory (no such directory) nor a formula"),
])
def test_cli_export_of_a_directory_that_is_no_run_exits_2(capsys, tmp_path, make, message):
    make(tmp_path / "runs")
    code, out, err = run(capsys, "export", str(tmp_path / "runs"), "--to", "prefix", "--form", "sigmoid")
    assert code == 2 and out == "" and f"{tmp_path / 'runs'} {message}" in err


def test_branch_and_rank_need_a_run_directory(capsys):
    code, _, err = run(capsys, "export", "-log(sigmoid(x))", "--form", "sigmoid", "--to", "prefix", "--rank", "2")
    assert code == 2 and "--branch and --rank pick a found loss of a search run directory" in err


@pytest.mark.parametrize("argv, message", [
    (["-dot(y, log(softmax(x)))", "--form", "softmax", "--to", "torchvision"],
     "a softmax-form loss cannot go into torchvision's FCOS, which classifies with per-class sigmoids (sigmoid form) "
     "and regresses boxes (reg form); export a sigmoid- or reg-form loss --to torchvision, or this one --to jax, "
     "torch or mmdet"),
    (["1 - i/u", "--form", "reg", "--to", "latex", "--trainable-constants"],
     "--trainable-constants (the constants as a parameter) applies to --to jax, torch and mmdet, not latex"),
])
def test_cli_refuses_a_loss_or_setting_the_target_cannot_take(capsys, argv, message):
    code, out, err = run(capsys, "export", *argv)
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_module_exports_are_byte_reproducible_and_say_what_the_loss_is(capsys, tmp_path):
    formula = KNOWN_LOSSES["focal"].formula
    texts = []
    for k in range(2):
        target = tmp_path / f"focal_{k}.py"
        code, _, err = run(capsys, "export", formula, "--form", "sigmoid", "--to", "torch", "--trainable-constants",
                           "-o", str(target))
        assert code == 0, err
        texts.append(target.read_bytes())
    assert texts[0] == texts[1]
    text = texts[0].decode()
    candidate = KNOWN_LOSSES["focal"].candidate
    for line in (f"formula: {candidate.infix()}", f"LaTeX:   {candidate.latex()}", f"prefix:  {candidate.prefix()}",
                 "sigmoid-form detection loss", "CPV:     passed (monotonicity ", "CONSTANTS = (0.25, 1.0, 0.75)"):
        assert line in text
    assert str(tmp_path) not in text and "/" + "work" not in text


def test_torch_exports_are_written_without_torch(tmp_path):
    """With torch not importable, --to torch still writes the module (it needs torch only to run) and says so."""
    script = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from autoloss.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n")
    target = tmp_path / "found.py"
    result = subprocess.run([sys.executable, "-c", script, "export", "1 - i/u + (e - u)/e", "--form", "reg", "--to",
                             "mmdet", "-o", str(target), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["note"].startswith("torch is not installed here; the module is written all the same")
    source = target.read_text()
    assert "class AutolossRegLoss(torch.nn.Module):" in source and "import torch" in source
    ast.parse(source)
