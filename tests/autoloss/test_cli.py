"""The command line: text and JSON output, and exit code 2 with a clear message on bad input."""

import json
import subprocess
import sys

import pytest

from autoloss.cli import main
from symbolic.zoo import KNOWN_LOSSES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_prints_every_printed_form(capsys):
    code, out, err = run(capsys, "show", "-log(sigmoid(x))", "--form", "sigmoid")
    assert code == 0 and err == ""
    for field in ("infix", "prefix", "latex", "key", "size", "depth", "softplus(-x)", "Softplus(Neg(X))"):
        assert field in out


def test_show_json_is_one_object_on_stdout(capsys):
    code, out, _ = run(capsys, "show", "Neg(Dot(Mul(Y,Add(1,Sin(Z))),Log(Softmax(X))))", "--form", "softmax", "--json")
    report = json.loads(out)
    assert code == 0 and report["form"] == "softmax" and report["size"] > 5
    assert set(report) >= {"infix", "prefix", "latex", "key", "fingerprint", "size", "depth", "gradient_key",
                           "gradient_fingerprint"}


def test_show_json_gives_a_positive_multiple_the_same_gradient_key(capsys):
    reports = []
    for text in ("1 - i/u", "3 - 2*i/u", "1 - 2*i/u"):
        code, out, _ = run(capsys, "show", text, "--form", "reg", "--json")
        reports.append(json.loads(out))
    assert reports[0]["key"] != reports[1]["key"] and reports[0]["gradient_key"] == reports[1]["gradient_key"]
    assert reports[2]["gradient_key"] == reports[0]["gradient_key"] and reports[0]["gradient_key"] is not None
    assert len({r["gradient_fingerprint"] for r in reports}) == 1


def test_zoo_lists_every_known_loss(capsys):
    code, out, _ = run(capsys, "zoo")
    assert code == 0
    for name in KNOWN_LOSSES:
        assert name in out
    code, out, _ = run(capsys, "zoo", "--json")
    assert [loss["name"] for loss in json.loads(out)["losses"]] == list(KNOWN_LOSSES)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["show", "-log(sigmoid(x)", "--form", "sigmoid"], "column"),
        (["show", "frob(x)", "--form", "sigmoid"], "unknown function"),
        (["show", "sin(w)", "--form", "sigmoid"], "must depend on x"),
        (["show", "x/0", "--form", "sigmoid"], "zoo"),
        (["show", "", "--form", "reg"], "empty"),
        (["show", "(" * 4000 + "x" + ")" * 4000, "--form", "sigmoid"], "nest"),
        (["show", "x+" * 600_000 + "x", "--form", "sigmoid"], "limit"),
    ],
)
def test_bad_formulas_exit_2_with_one_message_on_stderr(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err.lower() and "Traceback" not in err


def test_console_script_reports_usage_errors_with_exit_2():
    done = subprocess.run([sys.executable, "-m", "autoloss", "show", "x", "--form", "nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice" in done.stderr and done.stdout == ""


def test_verify_reports_the_failing_property_and_exits_1(capsys):
    code, out, _ = run(capsys, "verify", "-log(sigmoid(x)) + x*x", "--form", "sigmoid", "--json")
    report = json.loads(out)
    assert code == 1 and report["verdict"]["passed"] is False
    failed = [p["name"] for p in report["verdict"]["properties"] if p["status"] == "failed"]
    assert "monotonicity" in failed
    code, out, _ = run(capsys, "verify", "1 - i/u + (e - u)/e", "--form", "reg")
    assert code == 0 and out.startswith("PASSED") and "distance_consistency" in out


def test_zoo_shows_each_verdict(capsys):
    code, out, _ = run(capsys, "zoo", "--json")
    assert all(loss["verdict"]["passed"] for loss in json.loads(out)["losses"])
