"""``autoloss simulate``: formulas in, one verdict per formula out, bad input exits 2."""

import json

from autoloss.cli import main
from detection.shapes import ensure_shapes_dataset


def test_simulate_reports_every_formula_as_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    annotations, images = ensure_shapes_dataset(tmp_path / "data", num_train=32, num_search_val=1, num_final_val=1,
                                                image_size=64)["train"]
    code = main(["simulate", "bce", "-log(sigmoid(x))*y - (1 - y)*log(1 - sigmoid(x))",
                 "exp(x + 100)*(exp(x + 100) + 1)", "--form", "sigmoid", "--data", f"coco:{annotations}:{images}",
                 "--image-size", "64",
                 "--steps", "2", "--warm-start-steps", "2", "--batch-size", "3", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["infix"] for r in report["results"]][2] == "(exp(x + 100) + 1)*exp(x + 100)"
    assert report["results"][2]["passed"] is False and "non-finite" in report["results"][2]["reason"]
    assert report["results"][0]["key"] == report["results"][1]["key"]  # bce by name and by formula
    assert report["baseline"]["passed"] is True


def test_a_form_the_branch_does_not_take_and_a_bad_formula_exit_2(capsys):
    assert main(["simulate", "1 - i/u", "--form", "softmax", "--detector", "fcos"]) == 2
    assert "takes sigmoid-form losses" in capsys.readouterr().err
    assert main(["simulate", "log(", "--form", "sigmoid"]) == 2
    assert capsys.readouterr().err.strip()
    assert main(["simulate", "bce", "giou", "--form", "sigmoid", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["message"] == "'giou' is a reg-form loss, not sigmoid" and error["hint"].startswith("simulate it with")
