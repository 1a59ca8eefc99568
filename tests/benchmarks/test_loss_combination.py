"""``python -m benchmarks.loss_combination``: every row and column, --found, --write, argument errors, and a
real smoke run through the experiment path."""

import json
import math

import pytest

from autoloss.final_comparison import PAPER_COLUMNS
from benchmarks import loss_combination
from detection.detectors import DETECTORS


def test_every_row_and_column_with_mean_and_std(table_of, fake_tasks, tmp_path):
    section = loss_combination.main(["--preset", "smoke", "--seeds", "2", "--work-dir", str(tmp_path / "runs")])
    rows = table_of(section)
    pairs = [(r["detector"], r["row"], r["cls loss"], r["reg loss"]) for r in rows]
    assert pairs == [
        ("fcos", "baseline (ref)", "focal", "giou"),
        ("fcos", "searched cls (CSE-Autoloss-B) + default reg", "cse_b_cls", "giou"),
        ("fcos", "default cls + searched reg (CSE-Autoloss-B)", "focal", "cse_b_reg"),
        ("fcos", "searched pair (CSE-Autoloss-B)", "cse_b_cls", "cse_b_reg"),
        ("fcos", "reg variant: IoU", "focal", "iou"),
        ("fcos", "reg variant: GIoU (the ref's runs)", "focal", "giou"),
        ("fcos", "reg variant: DIoU", "focal", "diou"),
        ("fcos", "reg variant: CIoU", "focal", "ciou"),
        ("faster-rcnn", "baseline (L1)", "cross_entropy", "l1"),
        ("faster-rcnn", "baseline (ref)", "cross_entropy", "giou"),
        ("faster-rcnn", "searched cls (CSE-Autoloss-A) + default reg", "cse_a_cls", "giou"),
        ("faster-rcnn", "default cls + searched reg (CSE-Autoloss-A)", "cross_entropy", "cse_a_reg"),
        ("faster-rcnn", "searched pair (CSE-Autoloss-A)", "cse_a_cls", "cse_a_reg"),
        ("faster-rcnn", "reg variant: IoU", "cross_entropy", "iou"),
        ("faster-rcnn", "reg variant: GIoU (the ref's runs)", "cross_entropy", "giou"),
        ("faster-rcnn", "reg variant: DIoU", "cross_entropy", "diou"),
        ("faster-rcnn", "reg variant: CIoU", "cross_entropy", "ciou"),
    ]
    # each distinct (detector, pair, seed) is trained once: the GIoU variant is the baseline's runs
    assert len(fake_tasks) == 2 * (7 + 8)
    assert {spec["seed"] for spec in fake_tasks} == {0, 1}
    assert all(spec["data"].startswith("shapes:") and spec["steps"] == 2 for spec in fake_tasks)
    for row in rows:
        assert row["data"] == "shapes" and row["AP_L"] == "-"  # no value: "-", never NaN
        if row["reg loss"] == "diou" and row["detector"] == "faster-rcnn":
            assert "±" not in row["AP"] and "1 of 2 seeds failed (diverged at step 3)" in row["note"]
        else:
            mean, std = (float(part) for part in row["AP"].split(" ± "))
            assert 0 <= mean <= 50 and std >= 0 and row["min/run"] == "0.5"
        assert row["vs ref (AP)"] == "ref" if "ref" in row["row"] else row["vs ref (AP)"][0] in "+-"
    assert "Schedule: steps fcos 2, faster-rcnn 2; batch 2; 2 seed(s)" in section
    assert "Command: `python -m benchmarks.loss_combination --preset smoke --seeds 2" in section
    assert section.startswith("## Loss combinations, CSE-Autoloss Tables 6-7 in miniature (smoke preset)\n")


def test_found_losses_add_rows_where_their_form_fits(table_of, fake_tasks, fcos_search_run):
    section = loss_combination.main(["--preset", "smoke", "--found", str(fcos_search_run)])
    found = [r for r in table_of(section) if "found" in r["row"]]
    assert [(r["detector"], r["row"]) for r in found] == [
        ("fcos", "found cls (fcos search) + default reg"),
        ("fcos", "default cls + found reg (fcos search)"),
        ("fcos", "found pair (fcos search)"),
        ("faster-rcnn", "default cls + found reg (fcos search)"),
    ]
    assert found[0]["cls loss"].startswith("found cls: `") and found[0]["reg loss"] == "giou"
    assert found[3]["cls loss"] == "cross_entropy" and found[3]["reg loss"].startswith("found reg: `")
    assert [spec["reg"] for spec in fake_tasks if spec["detector"] == "faster-rcnn"][-1]["form"] == "reg"
    assert not math.isnan(float(found[3]["AP"]))


def test_write_replaces_only_its_own_section(fake_tasks, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    argv = ["--preset", "smoke", "--detectors", "fcos", "--only", "baseline", "--write", "--results", str(results)]
    loss_combination.main(argv)
    loss_combination.main(argv)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Other\n\nkept\n\n## Loss combinations")
    assert text.count("## Loss combinations") == 1 and text.count("| fcos | shapes | baseline (ref) |") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--detectors", "fcos,yolo"], "--detectors takes a comma-separated list of fcos, faster-rcnn, got yolo"),
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--workers", "-1"], "--workers must be 0"),
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--found", "no/such/run"], "--found no/such/run: not a directory"),
        (["--only", "yolo"], "--only 'yolo' matches no row; rows: baseline"),
        (["--report-only"], "--report-only reads the finished runs of --records DIR; give that folder"),
    ],
)
def test_bad_arguments_are_usage_errors(fake_tasks, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        loss_combination.main(["--preset", "smoke", *argv])
    assert stopped.value.code == 2 and message in capsys.readouterr().err and not fake_tasks


def test_records_that_name_a_file_are_a_usage_error(fake_tasks, tmp_path, capsys):
    (tmp_path / "records.json").write_text("{}")
    with pytest.raises(SystemExit) as stopped:
        loss_combination.main(["--preset", "smoke", "--records", str(tmp_path / "records.json")])
    assert stopped.value.code == 2 and "records.json: a file, not a folder" in capsys.readouterr().err
    assert not fake_tasks


def test_found_needs_a_search_run(fake_tasks, tmp_path, capsys):
    with pytest.raises(SystemExit):
        loss_combination.main(["--preset", "smoke", "--found", str(tmp_path)])
    assert f"--found {tmp_path}: cannot read the search run" in capsys.readouterr().err


def test_records_are_read_instead_of_training_and_report_only_trains_nothing(table_of, fake_tasks, tmp_path):
    records = tmp_path / "records"
    argv = ["--preset", "smoke", "--detectors", "fcos", "--records", str(records)]
    first = table_of(loss_combination.main([*argv, "--only", "baseline", "--work-dir", str(tmp_path / "a")]))
    assert len(fake_tasks) == 1 and len(list(records.glob("fcos-*.json"))) == 1
    # another machine, another work folder: the record stands for the training
    again = table_of(loss_combination.main([*argv, "--only", "baseline", "--work-dir", str(tmp_path / "b")]))
    assert len(fake_tasks) == 1 and again[0]["AP"] == first[0]["AP"] and again[0]["min/run"] == "0.5"
    assert again[0]["note"] == "1 of 1 from the records"
    report = table_of(loss_combination.main([*argv, "--report-only"]))
    assert len(fake_tasks) == 1 and [r["AP"] for r in report if r["note"] == "1 of 1 seeds not trained yet"] == [
        "-"] * (len(report) - 2)  # the baseline and the GIoU variant (the baseline's runs) are recorded


def test_a_record_of_another_task_is_refused(fake_tasks, tmp_path, capsys):
    records = tmp_path / "records"
    argv = ["--preset", "smoke", "--detectors", "fcos", "--only", "baseline", "--records", str(records)]
    loss_combination.main(argv)
    (path,) = records.glob("*.json")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "task": {**record["task"], "seed": 7}}))
    with pytest.raises(SystemExit):
        loss_combination.main(argv)
    assert "records another task than its name says" in capsys.readouterr().err


def test_the_default_preset_trains_each_detector_with_its_own_schedule(fake_tasks):
    loss_combination.main(["--preset", "default", "--only", "baseline"])
    steps_rate = {(spec["detector"], spec["steps"], spec["learning_rate"]) for spec in fake_tasks}
    assert steps_rate == {(name, DETECTORS[name].default_steps, DETECTORS[name].default_optimizer.learning_rate)
                          for name in ("fcos", "faster-rcnn")}
    assert len(fake_tasks) == 3 * 3 and {spec["image_size"] for spec in fake_tasks} == {128}


@pytest.mark.slow
def test_smoke_preset_trains_through_the_experiment_path(table_of, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))  # the generated smoke datasets
    argv = ["--preset", "smoke", "--only", "baseline", "--work-dir", str(tmp_path / "runs")]
    rows = table_of(loss_combination.main(argv))
    assert [(r["detector"], r["row"]) for r in rows] == [
        ("fcos", "baseline (ref)"), ("faster-rcnn", "baseline (L1)"), ("faster-rcnn", "baseline (ref)")]
    for row in rows:
        assert all(row[c] == "-" or 0 <= float(row[c]) <= 100 for c in PAPER_COLUMNS) and row["note"] == ""
    assert len(list((tmp_path / "runs").glob("*/experiment.json"))) == 3  # run directories of run_experiment
    again = table_of(loss_combination.main(argv))
    assert [r["AP"] for r in again] == [r["AP"] for r in rows]
    assert all(r["note"] == "1 run(s) reused from the work folder" for r in again)
