"""``python -m benchmarks.transfer``: both published pairs where their form allows, on both datasets, found
losses (and why not), --write, and a real smoke run."""

import pytest

from autoloss.final_comparison import PAPER_COLUMNS
from benchmarks import transfer

A_ON_FCOS = "not trained: cse_a_cls is a softmax-form loss; the fcos classifier takes the sigmoid form"
B_ON_FASTER_RCNN = "not trained: cse_b_cls is a sigmoid-form loss; the faster-rcnn classifier takes the softmax form"


def test_every_row_on_both_detectors_and_datasets(table_of, fake_tasks):
    section = transfer.main(["--preset", "smoke", "--seeds", "2"])
    rows = table_of(section)
    expected = []
    for data in ("shapes", "variant"):
        expected += [
            ("fcos", data, "baseline (ref)", "focal", "giou", ""),
            ("fcos", data, "CSE-Autoloss-B pair", "cse_b_cls", "cse_b_reg", ""),
            ("fcos", data, "default cls + CSE-Autoloss-B reg", "focal", "cse_b_reg", ""),
            ("fcos", data, "CSE-Autoloss-A pair (searched on faster-rcnn)", "cse_a_cls", "cse_a_reg", A_ON_FCOS),
            ("fcos", data, "default cls + CSE-Autoloss-A reg (searched on faster-rcnn)", "focal", "cse_a_reg", ""),
            ("faster-rcnn", data, "baseline (ref)", "cross_entropy", "giou", ""),
            ("faster-rcnn", data, "CSE-Autoloss-A pair", "cse_a_cls", "cse_a_reg", ""),
            ("faster-rcnn", data, "default cls + CSE-Autoloss-A reg", "cross_entropy", "cse_a_reg", ""),
            ("faster-rcnn", data, "CSE-Autoloss-B pair (searched on fcos)", "cse_b_cls", "cse_b_reg", B_ON_FASTER_RCNN),
            ("faster-rcnn", data, "default cls + CSE-Autoloss-B reg (searched on fcos)", "cross_entropy", "cse_b_reg",
             ""),
        ]
    assert [(r["detector"], r["data"], r["row"], r["cls loss"], r["reg loss"], r["note"]) for r in rows] == expected
    for row in rows:
        if row["note"]:
            assert all(row[c] == "n/a" for c in PAPER_COLUMNS) and row["vs ref (AP)"] == "n/a"
        else:
            assert " ± " in row["AP"] and row["min/run"] != "-"
    assert len(fake_tasks) == 2 * 2 * 8  # seeds x datasets x trainable rows
    variant = {spec["data"] for spec in fake_tasks} - {"shapes:image_size=64,train=8,search_val=2,final_val=4"}
    assert variant == {"shapes:seed=1,classes=6,sizes=0.12-0.6,max_objects=6,image_size=64,train=8,search_val=2,"
                       "final_val=4"}
    assert "variant = `shapes:seed=1,classes=6" in section


def test_losses_found_with_fcos_on_faster_rcnn_where_the_form_allows(table_of, fake_tasks, fcos_search_run):
    rows = table_of(transfer.main(["--preset", "smoke", "--found", str(fcos_search_run), "--only", "found"]))
    assert [(r["detector"], r["data"], r["row"]) for r in rows] == [
        (detector, data, row) for data in ("shapes", "variant") for detector in ("fcos", "faster-rcnn")
        for row in ("found cls (fcos search) + default reg", "default cls + found reg (fcos search)",
                    "found pair (fcos search)")]
    unfit = "not trained: a sigmoid-form loss cannot train the softmax classifier of faster-rcnn"
    for row in rows:
        trained = row["detector"] == "fcos" or row["row"].startswith("default cls")
        assert (row["note"] == "") == trained and (row["AP"] == "n/a") != trained
        assert trained or row["note"] == unfit
    assert len(fake_tasks) == 2 * (3 + 1)  # one seed: fcos all three, faster-rcnn the reg loss


def test_write_replaces_only_its_own_section(fake_tasks, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Loss combinations, x (smoke preset)\n\nkept\n")
    for _ in range(2):
        transfer.main(["--preset", "smoke", "--only", "baseline", "--write", "--results", str(results)])
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Loss combinations, x (smoke preset)\n\nkept\n\n## Transfer")
    assert text.count("## Transfer of searched losses") == 1


def test_bad_arguments_are_usage_errors(fake_tasks, capsys):
    with pytest.raises(SystemExit) as stopped:
        transfer.main(["--preset", "smoke", "--detectors", "fcos"])
    assert stopped.value.code == 2 and "unrecognized arguments: --detectors" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_preset_trains_through_the_experiment_path(table_of, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))  # the generated smoke datasets
    argv = ["--preset", "smoke", "--only", "CSE-Autoloss-A pair", "--work-dir", str(tmp_path / "runs")]
    rows = table_of(transfer.main(argv))
    assert [(r["detector"], r["data"], r["note"] == "") for r in rows] == [
        ("fcos", "shapes", False), ("faster-rcnn", "shapes", True), ("fcos", "variant", False),
        ("faster-rcnn", "variant", True)]
    assert all(0 <= float(r["AP"]) <= 100 for r in rows if not r["note"])
    assert len(list((tmp_path / "runs").glob("faster-rcnn-*/experiment.json"))) == 2
