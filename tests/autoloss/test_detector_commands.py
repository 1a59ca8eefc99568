"""``autoloss train`` / ``autoloss evaluate``: JSON contract, saved runs that evaluate again, clear errors."""

import contextlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from autoloss.cli import _option_strings, build_parser, main, protect_formulas, restore_values
from autoloss.detector_commands import format_train
from detection.evaluation import AP_COLUMNS
from detection.experiment import EXPERIMENT_FILE, load_trained_model
from detection.shapes import ensure_shapes_dataset

TINY = ["--steps", "2", "--batch-size", "4", "--image-size", "64"]


def run_cli(*argv):
    """Return (exit code, stdout, stderr) of one ``autoloss`` invocation."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as usage_error:  # argparse's own errors (e.g. an invalid choice)
            code = usage_error.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory):
    """A coco: spec of a tiny 64x64 shapes split."""
    paths = ensure_shapes_dataset(
        tmp_path_factory.mktemp("cache"), num_train=8, num_search_val=4, num_final_val=4, image_size=64
    )
    annotations, images = paths["train"]
    return f"coco:{annotations}:{images}"


@pytest.fixture(scope="module")
def trained(tiny_spec, tmp_path_factory):
    """(exit code, stdout, stderr, run directory) of a tiny focal + GIoU training run with --json."""
    out_dir = tmp_path_factory.mktemp("run")
    return (*run_cli("train", "--data", tiny_spec, *TINY, "--out", out_dir, "--json"), out_dir)


def test_train_json_prints_one_object_with_the_ap_columns(trained):
    code, out, err, out_dir = trained
    assert code == 0
    report = json.loads(out)  # the whole of stdout is one JSON object
    assert set(AP_COLUMNS) <= set(report["metrics"]) and report["steps"] == 2 and report["seed"] == 0
    assert report["out_dir"] == str(out_dir) and report["final_loss"] > 0
    assert report["losses"]["cls"]["name"] == "focal" and report["losses"]["alpha_balance"] is None
    assert "train" in err  # the progress bar is on stderr


def test_saved_run_has_what_evaluate_needs(trained, tiny_spec):
    *_, out_dir = trained
    params, config, metadata = load_trained_model(out_dir)
    assert config.num_classes == 8 and config.image_size == (64, 64) and "head" in params
    assert metadata["data"] == tiny_spec and len(metadata["class_names"]) == 8
    assert json.loads((out_dir / EXPERIMENT_FILE).read_text())["losses"]["reg"]["name"] == "giou"


def test_evaluate_reproduces_the_metrics_of_the_saved_model(trained):
    _, out, _, out_dir = trained
    code, evaluated, err = run_cli("evaluate", out_dir / "checkpoint.msgpack", "--json")
    assert code == 0 and err == ""
    metrics, again = json.loads(out)["metrics"], json.loads(evaluated)["metrics"]
    assert {k: again[k] for k in AP_COLUMNS} == {k: metrics[k] for k in AP_COLUMNS}
    code, text, _ = run_cli("evaluate", out_dir)
    assert code == 0 and "AP50" in text and "mAP50_voc" in text


def test_formula_losses_train(tiny_spec, tmp_path):
    code, out, err = run_cli(
        "train", "--data", tiny_spec, *TINY, "--out", tmp_path, "--json",
        "--loss-cls=-log(sigmoid(x))*y - (1 - y)*log(1 - sigmoid(x))", "--loss-reg", "1 - i/u",
    )  # fmt: skip
    assert code == 0, err
    losses = json.loads(out)["losses"]
    assert losses["cls"]["source"] == losses["reg"]["source"] == "formula"
    assert losses["alpha_balance"] == 0.25 and losses["reg"]["formula"] == "-i/u + 1"


def test_faster_rcnn_trains_with_a_softmax_form_formula_and_evaluates_again(tiny_spec, tmp_path):
    code, out, err = run_cli(
        "train", "--detector", "faster-rcnn", "--data", tiny_spec, *TINY, "--out", tmp_path, "--json",
        "--loss-cls", "cse_a_cls", "--loss-reg", "cse_a_reg",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["detector"] == "faster-rcnn" and report["losses"]["alpha_balance"] is None
    assert report["losses"]["cls"]["formula"] == "-dot(y*(sin(w) + 1), log(softmax(x)))"
    _, config, metadata = load_trained_model(tmp_path)
    assert type(config).__name__ == "FasterRCNNConfig" and metadata["detector"] == "faster-rcnn"
    code, evaluated, _ = run_cli("evaluate", tmp_path, "--json")
    assert code == 0 and json.loads(evaluated)["metrics"]["AP"] == report["metrics"]["AP"]


def test_values_starting_with_minus_are_values_exactly_as_typed():
    parser = build_parser()
    for argv in (["train", "--loss-cls", "-log(sigmoid(x))"], ["train", "--loss-cls=-log(sigmoid(x))"]):
        tokens, originals = protect_formulas(argv, _option_strings(parser))
        args = parser.parse_args(tokens)
        restore_values(args, originals)
        assert args.loss_cls == "-log(sigmoid(x))"
    tokens, originals = protect_formulas(["train", "--out", "-rep", "--seed", "-1"], _option_strings(parser))
    args = parser.parse_args(tokens)
    restore_values(args, originals)
    assert args.out == "-rep" and args.seed == -1  # no leading space in a path


def test_train_refuses_a_folder_that_is_not_empty_and_not_a_run(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "checkpoint.json").write_text('{"my": "own file"}')
    code, out, err = run_cli("train", "--out", other, "--json")
    assert code == 2 and "is not empty and not a run of autoloss train" in err
    assert json.loads(out)["error"]["where"] == "--out"
    assert [p.name for p in other.iterdir()] == ["checkpoint.json"]
    assert (other / "checkpoint.json").read_text() == '{"my": "own file"}'
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert run_cli("train", "--out", a_file)[0] == 2 and a_file.read_text() == "x"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "imagenet"], "unknown dataset kind 'imagenet'; accepted forms"),
        (["train", "--data", "coco:/nowhere/ann.json:/nowhere"], "/nowhere/ann.json"),
        (["train", "--data", "voc:/nowhere/VOC2007"], "/nowhere/VOC2007"),
        (["train", "--detector", "yolo"], "unknown detector 'yolo'; choose one of fcos, faster-rcnn"),
        (["train", "--detector", "faster-rcnn", "--loss-cls", "focal"], "give one of cross_entropy, ce"),
        (["train", "--detector", "faster-rcnn", "--preset", "resnet18"], "unknown faster-rcnn preset 'resnet18'"),
        (["train", "--loss-cls", "focall"], "unknown classification loss 'focall'; give one of focal, bce"),
        (["train", "--loss-reg", "gio"], "unknown regression loss 'gio'; give one of iou, giou"),
        (["train", "--loss-cls", "cse_b_reg"], "'cse_b_reg' is a reg-form loss"),
        (["train", "--loss-cls", "1 - i/u"], "is an input of the reg form"),
        (["train", "--steps", "0"], "--steps must be at least 1, got 0"),
        (["train", "--preset", "resnet18", "--backbone-weights", "/nowhere/r18.pth"], "/nowhere/r18.pth not found"),
        (["evaluate", "/nowhere/run"], "/nowhere/run/experiment.json not found"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(argv, message):
    code, out, err = run_cli(*argv, "--json")
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"
    assert message in err and "Traceback" not in err
    assert err.startswith(f"autoloss {argv[0]}: error: ")


def _png_claiming(path, width, height):
    """A PNG file whose header claims width x height pixels (a decompression bomb)."""
    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
                     + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(
    "records, message",
    [
        ({"images": [{"id": [1], "file_name": "bomb.png"}]}, "images[0].id must be an integer"),
        ({"categories": [{"id": {"a": 1}, "name": "thing"}]}, "categories[0].id must be an integer"),
        ({"categories": []}, "the categories list is empty"),
        ({"images": [{"id": 1, "file_name": "bomb.png"}]}, "claims too many pixels"),
        ({"images": [{"id": 1, "file_name": "/etc/hostname", "width": 4, "height": 4}]}, "leads outside"),
    ],
)
def test_bad_datasets_exit_2_with_a_named_error(tmp_path, records, message):
    _png_claiming(tmp_path / "bomb.png", 40000, 40000)
    document = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}], **records}
    (tmp_path / "ann.json").write_text(json.dumps(document))
    code, out, err = run_cli("train", "--data", f"coco:{tmp_path / 'ann.json'}:{tmp_path}", *TINY,
                             "--out", tmp_path / "run", "--json")
    assert code == 2 and message in out + err and "Traceback" not in out + err


def test_a_voc_split_list_reading_outside_annotations_exits_2(tmp_path):
    voc = tmp_path / "VOC"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("../../secret\n")
    code, out, err = run_cli("train", "--data", f"voc:{voc}", *TINY, "--out", tmp_path / "run", "--json")
    assert code == 2 and "is not a file stem inside Annotations/" in out + err and "Traceback" not in out + err


def test_evaluate_rejects_data_with_other_classes(trained, tmp_path):
    *_, out_dir = trained
    paths = ensure_shapes_dataset(tmp_path, num_train=1, num_search_val=1, num_final_val=1, image_size=64,
                                  num_classes=6)  # fmt: skip
    annotations, images = paths["final_val"]
    code, _, err = run_cli("evaluate", out_dir, "--data", f"coco:{annotations}:{images}")
    assert code == 2 and "has the classes ['circle'" in err and "but the model was trained on ['circle'" in err


def test_divergence_stops_with_a_clear_message(monkeypatch):
    from autoloss import detector_commands
    from detection.training import TrainingDiverged

    def diverge(*args, **kwargs):
        raise TrainingDiverged(7, {"loss": float("nan")})

    monkeypatch.setattr(detector_commands, "run_experiment", diverge)
    code, out, err = run_cli("train", "--loss-cls", "exp(x)", "--json")
    assert code == 2 and "training diverged at step 7: loss=nan" in err
    assert json.loads(out)["error"]["type"] == "TrainingDiverged"


def test_an_existing_run_with_other_settings_is_not_resumed(trained, tiny_spec):
    *_, out_dir = trained
    code, out, err = run_cli("train", "--data", tiny_spec, *TINY, "--out", out_dir, "--loss-reg", "iou")
    assert code == 2 and out == "" and "holds a run with different losses" in err


def test_rerunning_a_finished_run_resumes_it_without_new_steps(trained, tiny_spec):
    _, out, _, out_dir = trained
    code, again, _ = run_cli("train", "--data", tiny_spec, *TINY, "--out", out_dir, "--json")
    assert code == 0 and json.loads(again)["final_loss"] is None
    assert json.loads(again)["metrics"]["AP"] == json.loads(out)["metrics"]["AP"]


def test_a_run_is_not_resumed_on_other_images_under_the_same_spec(tiny_spec, tmp_path):
    _, annotations, images = tiny_spec.split(":")
    document = json.loads(Path(annotations).read_text())
    copy = tmp_path / "train.json"
    copy.write_text(json.dumps(document))
    spec = f"coco:{copy}:{images}"
    assert run_cli("train", "--data", spec, *TINY, "--out", tmp_path / "run")[0] == 0
    kept = document["images"][:6]
    document["images"] = kept
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in {i["id"] for i in kept}]
    copy.write_text(json.dumps(document))  # the same spec now names fewer training images
    code, out, err = run_cli("train", "--data", spec, *TINY, "--out", tmp_path / "run")
    assert code == 2 and out == "" and "holds a run with different train_images" in err


def test_dry_run_names_every_problem_and_trains_nothing(tmp_path):
    code, out, err = run_cli("train", "--dry-run", "--steps", "0", "--preset", "resnet18", "--data",
                             "coco:/nowhere/ann.json:/nowhere", "--eval-data", "voc:/nowhere/VOC",
                             "--backbone-weights", "/nowhere/r18.pth", "--out", tmp_path / "run", "--json")
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"
    assert "4 problems, nothing was run:" in err
    for problem in ("--steps must be at least 1, got 0", "/nowhere/r18.pth not found",
                    "training data 'coco:/nowhere/ann.json:/nowhere'", "evaluation data 'voc:/nowhere/VOC'"):
        assert problem in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # about 10 s: compiles and times the tiny detector's train step
def test_dry_run_prints_the_plan(tiny_spec, tmp_path):
    code, out, _ = run_cli("train", "--dry-run", "--data", tiny_spec, "--steps", "5", "--batch-size", "2",
                           "--image-size", "32", "--out", tmp_path / "run", "--json")
    assert code == 0
    (plan,) = json.loads(out)["plan"]
    assert (plan["train_images"], plan["steps"], plan["batch_size"], plan["canvases"]) == (6, 5, 2, [[32, 32]])
    assert plan["eval_images"] >= 1 and plan["step_memory_bytes"] > 2 * 32 * 32 * 3
    assert plan["seconds_per_step"] > 0 and plan["estimated_seconds"] >= 5 * plan["seconds_per_step"]
    assert not (tmp_path / "run").exists()
    text = format_train(json.loads(out))
    assert "train: 1 training(s) of 5 steps, batch 2, canvas 32x32" in text and "GiB" in text
