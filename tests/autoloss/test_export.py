"""Export: generated JAX modules import with only jax and match ``Candidate.to_jax()``; the CLI writes files and
exports the losses a search found from its run directory."""

import ast
import importlib.util
import itertools
import json
import os
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from search_runs import finished_run

from autoloss.cli import main
from autoloss.export import EXPORT_FORMATS, STABLE_LOG_TEMPLATES, TEMPLATES, export_text, jax_module_source
from autoloss.run_store import HALL_OF_FAME, RunStore
from symbolic.candidate import Candidate
from symbolic.forms import FORMS
from symbolic.operators import OPERATORS
from symbolic.variation import random_candidate
from symbolic.zoo import KNOWN_LOSSES

RANDOM_PER_FORM = 70
RTOL, ATOL = 2e-5, 1e-6  # float32


def load_module(candidate, directory, name):
    """Import the exported module of ``candidate`` from a file in ``directory``."""
    path = directory / f"{name}.py"
    path.write_text(jax_module_source(candidate))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sigmoid_extremes():
    grid = np.array(list(itertools.product([-100.0, -30.0, -5.0, 0.0, 5.0, 30.0, 100.0], [0.0, 1.0], [0.0, 0.5, 1.0])))
    return {"x": grid[:, 0], "y": grid[:, 1], "w": grid[:, 1] * grid[:, 2]}


def _softmax_extremes(num_classes=4):
    logits = np.array([[100, -100, 0, 0], [-100, 100, 0, 0], [0, 0, 0, 100], [0, 0, 0, -100],
                       [100, 100, 100, 100], [-100, -100, -100, -100], [0, 0, 0, 0], [30, -30, 30, -30]], float)
    target = np.array([0, 0, 3, 3, 1, 3, 2, 0])
    iou = np.where(target == num_classes - 1, 1.0, np.array([1.0, 0.05, 1, 1, 0.5, 1, 0.0, 1.0]))
    return {"x": logits, "y": np.eye(num_classes)[target], "w": np.repeat(iou[:, None], num_classes, axis=1)}


def _reg_extremes():
    areas = np.array([[0, 0, 0], [0, 1, 1], [0, 1e5, 2e5], [1e5, 1e5, 1e5], [0.5, 1, 1], [1, 1, 1e5], [0, 4, 16]])
    return {"i": areas[:, 0], "u": areas[:, 1], "e": areas[:, 2]}


EXTREMES = {"sigmoid": _sigmoid_extremes(), "softmax": _softmax_extremes(), "reg": _reg_extremes()}


def inputs_with_extremes(form):
    """The form's probe inputs followed by extreme ones (logits ±100, zero and huge areas), as float32."""
    probes = form.probe_inputs()
    return [jnp.asarray(np.concatenate([probes[n], EXTREMES[form.name][n]]), jnp.float32) for n in form.input_names]


def assert_close(got, expected, what):
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=RTOL, atol=ATOL, equal_nan=True,
                               err_msg=what)


def check_module_matches(candidate, module, *, full_gradient):
    """Values and derivatives of the module's ``loss`` equal those of ``candidate.to_jax()``."""
    args = inputs_with_extremes(candidate.form)
    reference = candidate.to_jax()
    with jax.disable_jit():  # op by op: hundreds of candidates, no compile each
        assert_close(module.loss(*args), reference(*args), f"value of {candidate}")
        if full_gradient:
            grads = [jax.grad(lambda *a, f=f: jnp.sum(f(*a)), argnums=(0, 1, 2))(*args)
                     for f in (module.loss, reference)]
            for got, expected, name in zip(*grads, candidate.form.input_names, strict=True):
                assert_close(got, expected, f"d/d{name} of {candidate}")
        else:  # a derivative along a random direction of all inputs, forward mode (cheaper op by op)
            rng = np.random.default_rng(0)
            tangents = [jnp.asarray(rng.normal(size=a.shape), jnp.float32) for a in args]
            got = jax.jvp(module.loss, args, tangents)[1]
            assert_close(got, jax.jvp(reference, args, tangents)[1], f"directional derivative of {candidate}")


@pytest.mark.parametrize("name", list(KNOWN_LOSSES))
def test_zoo_loss_modules_match_to_jax_in_value_and_gradient(tmp_path, name):
    candidate = KNOWN_LOSSES[name].candidate
    check_module_matches(candidate, load_module(candidate, tmp_path, f"zoo_{name}"), full_gradient=True)


@pytest.mark.parametrize("form", list(FORMS))
def test_random_candidate_modules_match_to_jax(tmp_path, form):
    for seed in range(RANDOM_PER_FORM):
        candidate = random_candidate(random.Random(seed), form)
        module = load_module(candidate, tmp_path, f"random_{form}_{seed}")
        check_module_matches(candidate, module, full_gradient=False)


def test_every_operator_of_the_table_has_a_template():
    assert set(TEMPLATES) == set(OPERATORS)
    assert set(STABLE_LOG_TEMPLATES) == {name for name, op in OPERATORS.items() if op.stable_log is not None}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_operator_alone_matches_to_jax(tmp_path, form):
    a, b, _ = FORMS[form].input_names
    formulas = {op.name: f"{op.name}({a}, {b})" if op.arity == 2 else f"{op.name}({a})"
                for op in FORMS[form].operators if op.name not in ("dot", "softmax")}
    formulas |= {"add": f"{a} + {b}", "sub": f"{a} - {b}", "mul": f"{a}*{b}", "div": f"{a}/{b}",
                 "log_sigmoid": f"log(sigmoid({a}))", "powers": f"{a}**3/{b}**2 + sqrt(sqrt({a}))/3"}
    if form == "softmax":
        formulas = {"dot": "dot(x, y)", "softmax": "dot(y, softmax(x))", "log_softmax": "dot(y, log(softmax(x)))",
                    **{name: f"dot(y, {text})" for name, text in formulas.items()}}
    for name, text in formulas.items():
        candidate = Candidate.parse(text, form)
        check_module_matches(candidate, load_module(candidate, tmp_path, f"op_{name}"), full_gradient=True)


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
    (["export", "x", "--form", "sigmoid", "--to", "prefix", "-o", "/nonexistent-dir/loss.txt"], "cannot write"),
])
def test_cli_usage_errors_exit_2_with_one_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and message in err and "Traceback" not in err


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
    expected = run(capsys, "export", entry["prefix"], "--form", entry["form"], "--to", to)
    assert expected[0] == 0 and report["text"] == expected[1]


def test_cli_exports_the_best_loss_of_a_single_branch_run_without_branch(capsys, tmp_path):
    result = finished_run(tmp_path / "run", generations=1, final_steps=0)
    target = tmp_path / "best.py"
    code, out, err = run(capsys, "export", str(tmp_path / "run"), "--to", "jax", "-o", str(target))
    assert code == 0 and err == ""
    assert f"rank 1 of the cls branch of {tmp_path / 'run'}" in out
    assert target.read_text() == jax_module_source(result.best.candidate)


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
