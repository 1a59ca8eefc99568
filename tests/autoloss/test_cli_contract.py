"""The command line's contract: with --json every outcome is one JSON object on stdout, errors included; exit 2 for
bad input (explicit error types), 1 for a failed check or an internal error (with a traceback and a request for a
bug report), 130 when interrupted; zoo names wherever a formula is expected."""

import json

import pytest

from autoloss import cli
from autoloss.cli import COMMANDS, main
from symbolic.zoo import KNOWN_LOSSES

# One bad input for every command; each fails before any long work starts.
BAD_INPUT = {
    "show": (["show", "-log(sigmoid(x)", "--form", "sigmoid"], "column"),
    "verify": (["verify", "frob(x)", "--form", "sigmoid"], "unknown function"),
    "zoo": (["zoo", "--bogus"], "unrecognized arguments: --bogus"),
    "train": (["train", "--loss-cls", "focall"], "unknown classification loss 'focall'"),
    "evaluate": (["evaluate", "/nowhere/run"], "experiment.json not found"),
    "export": (["export", "x", "--to", "prefix"], "--form"),
    "plot": (["plot", "sin(w)", "--form", "sigmoid", "-o", "/tmp/never.png"], "must depend on x"),
    "report": (["report", "/nowhere/run"], "is not a directory"),
    "search": (["search", "--generations", "0"], "'generations' must be an integer in [1, 100000], got 0"),
    "simulate": (["simulate", "bce", "--form", "sigmoid", "--steps", "0"], "steps=0 is out of range"),
    "refine": (["refine", "-log(sigmoid(x))", "--form", "sigmoid"], "no numeric constants to refine"),
    "split-coco": (["split-coco", "/nowhere/ann.json", "--out", "/nowhere/split"], "cannot read annotation file"),
}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_a_bad_input_case():
    assert set(BAD_INPUT) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_is_exit_2_with_one_json_error_object_and_no_traceback(capsys, tmp_path, command):
    argv, message = BAD_INPUT[command]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2, err
    error = json.loads(out)["error"]  # the whole of stdout is this one object
    assert set(error) == {"message", "where", "hint", "kind", "type"} and error["kind"] == "usage"
    assert message in error["message"] + (error["where"] or "") + (error["hint"] or "")
    assert "Traceback" not in err and message in err
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and message in err and "Traceback" not in err


def test_where_and_hint_name_the_problem(capsys, tmp_path):
    error = json.loads(run(capsys, "show", "-log(sigmoid(x)", "--form", "sigmoid", "--json")[1])["error"]
    assert error["where"] == "column 5 of '-log(sigmoid(x)'" and error["type"] == "ParseError"
    error = json.loads(run(capsys, "show", "x", "--form", "nope", "--json")[1])["error"]
    assert error["where"] == "--form" and error["message"].startswith("argument --form: invalid choice: 'nope'")
    error = json.loads(run(capsys, "report", tmp_path, "--json")[1])["error"]
    assert error["message"].endswith("(no run.json or config.json)")
    assert error["hint"] == "give a directory written by autoloss search"


def test_an_internal_error_is_exit_1_with_a_traceback_and_a_request_for_a_bug_report(capsys, monkeypatch):
    def broken(args):
        raise ValueError("an index went wrong deep inside")  # a bare ValueError is a bug, not bad input

    monkeypatch.setitem(COMMANDS, "zoo", (broken, COMMANDS["zoo"][1]))
    code, out, err = run(capsys, "zoo", "--json")
    error = json.loads(out)["error"]
    assert code == 1 and error["kind"] == "internal" and error["type"] == "ValueError"
    assert error["message"] == "internal error: ValueError: an index went wrong deep inside"
    assert error["where"].endswith("in broken") and "please report it" in error["hint"]
    assert "Traceback (most recent call last)" in err and "please report it" in err
    code, out, err = run(capsys, "zoo")
    assert code == 1 and out == "" and "Traceback" in err


def test_an_interrupt_is_exit_130_with_how_to_continue(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(COMMANDS, "zoo", (interrupted, COMMANDS["zoo"][1]))
    code, out, err = run(capsys, "zoo", "--json")
    assert code == 130 and json.loads(out)["error"]["kind"] == "interrupted" and "interrupted" in err


def test_a_failed_check_exits_1_with_its_report(capsys):
    code, out, _ = run(capsys, "verify", "x*x", "--form", "sigmoid", "--json")
    assert code == 1 and json.loads(out)["verdict"]["passed"] is False
    code, out, _ = run(capsys, "verify", "bce")
    assert code == 0 and out.startswith("PASSED")


def test_zoo_names_are_accepted_wherever_a_formula_is(capsys, tmp_path):
    code, out, _ = run(capsys, "show", "cse_b_reg", "--json")
    assert code == 0 and json.loads(out)["form"] == "reg"
    code, out, _ = run(capsys, "verify", "focal", "--form", "sigmoid", "--json")
    assert code == 0 and json.loads(out)["candidate"]["form"] == "sigmoid"
    code, out, _ = run(capsys, "export", "cse_a_cls", "--to", "prefix", "--json")
    assert code == 0 and json.loads(out)["text"].strip() == KNOWN_LOSSES["cse_a_cls"].candidate.prefix()
    code, out, _ = run(capsys, "plot", "giou", "-o", tmp_path / "giou.png", "--json")
    assert code == 0 and (tmp_path / "giou.png").is_file()
    code, out, err = run(capsys, "show", "giou", "--form", "sigmoid", "--json")
    assert code == 2 and json.loads(out)["error"]["hint"] == "leave out --form or use --form reg"
    code, out, err = run(capsys, "show", "x*y", "--json")
    assert code == 2 and json.loads(out)["error"]["where"] == "--form"


def test_an_output_path_starting_with_minus_is_written_as_typed(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "export", "bce", "--to", "prefix", "-o", "-x.txt")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-x.txt"]


def test_usage_errors_are_explicit_types():
    assert cli.is_usage_error(cli.UsageError("bad")) and not cli.is_usage_error(ValueError("bad"))
