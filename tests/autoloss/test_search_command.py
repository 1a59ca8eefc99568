"""``autoloss search``: the report and JSON, resume, and every kind of bad input as exit code 2 changing nothing."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

import autoloss.search_driver as driver
from autoloss.cli import main
from autoloss.search_config import SearchConfig

TINY = ["--population", "6", "--generations", "1", "--top-k", "2", "--final-steps", "2", "--no-progress"]


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of one ``autoloss`` invocation."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as usage_error:  # argparse's own errors
        code = usage_error.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fakes(monkeypatch):
    """The command's search with fake MOS and proxy on threads (the real ones are tested elsewhere)."""
    monkeypatch.setattr(driver, "make_simulator", lambda config, branch, progress=True: FakeSimulator(branch))
    monkeypatch.setattr(driver, "train_and_evaluate", fake_proxy)
    monkeypatch.setattr(driver.TaskRunner, "local",
                        staticmethod(lambda workers: driver.TaskRunner.of(ThreadPoolExecutor(workers))))


@pytest.fixture
def finished(fakes, tmp_path, capsys):
    """(exit code, stdout, stderr, run directory) of a tiny search with --json."""
    out = tmp_path / "run"
    return (*run_cli(capsys, "search", *TINY, "--out", out, "--json"), out)


def test_search_json_is_one_object_with_funnel_hall_of_fame_and_final_table(finished):
    code, out, err, run_dir = finished
    assert code == 0, err
    report = json.loads(out)
    assert report["run_dir"] == str(run_dir) and report["finished"] and report["config"]["population"] == 6
    assert report["funnel"]["cpv"] == 6 and report["funnel"]["proxy"] == 2
    assert report["funnel"]["generated"] >= report["funnel"]["unique"] >= 6
    entry = report["branches"]["cls"]["hall_of_fame"][0]
    assert {"infix", "latex", "prefix", "proxy_ap", "mos_score", "cpv_summary", "size"} <= set(entry)
    assert set(report["final"]) == {"baseline", "found"} and report["final"]["found"]["delta"]["AP"] is not None
    pareto = report["branches"]["cls"]["pareto"]
    assert pareto["complexity_measure"] == "size" and len(pareto["candidates"]) == 2
    assert pareto["best"] in {e["key"] for e in pareto["front"]} and pareto["front"][0]["score"] == 0.0


def test_search_text_report_and_resume_of_a_finished_run(finished, capsys):
    *_, run_dir = finished
    code, out, err = run_cli(capsys, "search", "--resume", run_dir, "--no-progress")
    assert code == 0, err
    for text in ("search finished: method cse", "rejected by CPV", "rejected by MOS", "proxy-trained 2",
                 "hall of fame, cls", "Pareto front, cls (complexity: size; score as PySR's; * = best):",
                 "final evaluation: 2 steps", "vs baseline", "AP50", "AP_L"):
        assert text in out
    code, _, _ = run_cli(capsys, "search", "--resume", run_dir, "--workers", "3", "--no-progress")
    assert code == 0  # execution settings may change on resume


def test_progress_lines_go_to_stderr(fakes, tmp_path, capsys):
    code, out, err = run_cli(capsys, "search", *TINY[:-1], "--out", tmp_path / "run", "--json")
    assert code == 0 and json.loads(out)
    assert "[cls] generation 1/1: generated" in err and "→ CPV 6 → MOS" in err and "AP best" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "huge"], "unknown preset 'huge'; choose one of demo, small, paper"),
        (["--generations", "0"], r"'generations' must be an integer in [1, 100000], got 0"),
        (["--generations", "many"], "--generations: must be an integer in [1, 100000], got 'many'"),
        (["--method", "bayes"], "'method' must be one of cse, cpv-only, vanilla, random"),
        (["--complexity-penalty", "-0.5"], "'complexity_penalty' must be a number in [0, 1], got -0.5"),
        (["--complexity-penalty", "nan"], "'complexity_penalty' must be a number in [0, 1], got nan"),
        (["--zoo-seeds", "giou"], "'giou' is a reg-form loss"),
        (["--data", "coco:/no/such.json:/no/images"], "setting 'data': /no/such.json does not exist"),
    ],
)
def test_bad_settings_exit_2_with_the_setting_named(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "search", *argv, "--out", tmp_path / "run")
    assert code == 2 and out == "" and message in err
    assert not (tmp_path / "run").exists()


def test_bad_config_files_exit_2(tmp_path, capsys):
    path = tmp_path / "search.toml"
    path.write_text("generatons = 2\n")
    code, _, err = run_cli(capsys, "search", "--config", path, "--out", tmp_path / "run")
    assert code == 2 and "search.toml: unknown setting 'generatons' (did you mean 'generations'?)" in err
    path.write_text("[mos]\nwarp_speed = 9\n")
    code, _, err = run_cli(capsys, "search", "--config", path, "--out", tmp_path / "run")
    assert code == 2 and "setting 'mos': unknown MOS setting 'warp_speed'" in err
    assert not (tmp_path / "run").exists()


def test_run_directories_that_cannot_be_used_exit_2_and_stay_untouched(finished, tmp_path, capsys):
    *_, run_dir = finished
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.png").write_bytes(b"meow")
    cases = [
        (["--out", run_dir], "already holds a search run; continue it with --resume"),
        (["--out", other], "is not empty and not a search run"),
        (["--resume", other], "is not a search run directory"),
        (["--resume", tmp_path / "missing"], "is not a directory"),
        (["--resume", run_dir, "--generations", "2"], "other settings (generations: run 1, given 2)"),
        (["--resume", run_dir, "--preset", "small"], "other settings (generations: run 1, given 6; population"),
        (["--resume", run_dir, "--out", tmp_path / "new"], "give either --out (a new run) or --resume"),
    ]
    for argv, message in cases:
        code, out, err = run_cli(capsys, "search", *argv, "--no-progress")
        assert code == 2 and out == "" and message in err, (argv, err)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert [p.name for p in other.iterdir()] == ["cat.png"]


def test_an_unreachable_dask_scheduler_exits_2_within_seconds(tmp_path, capsys):
    started = time.perf_counter()
    code, _, err = run_cli(capsys, "search", "--dask-scheduler", "tcp://127.0.0.1:9", "--dask-connect-timeout", "1",
                           "--out", tmp_path / "run", "--method", "vanilla")
    assert code == 2 and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s" in err
    assert time.perf_counter() - started < 15 and not (tmp_path / "run").exists()


def test_the_paper_preset_is_documented_but_needs_its_coco_files(tmp_path, capsys):
    assert SearchConfig.preset("paper").final_steps == 90_000
    code, _, err = run_cli(capsys, "search", "--preset", "paper", "--out", tmp_path / "run")
    assert code == 2 and "setting 'data': coco/annotations/search/search_train.json does not exist" in err


def test_dry_run_names_every_problem_of_the_paper_preset(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("x")
    code, out, err = run_cli(capsys, "search", "--preset", "paper", "--dry-run", "--out", tmp_path / "run", "--json",
                             "--dask-scheduler", "tcp://127.0.0.1:9", "--dask-connect-timeout", "1")
    assert code == 2 and json.loads(out)["error"]["kind"] == "usage"
    for problem in ("setting 'data': coco/annotations/search/search_train.json does not exist",
                    "setting 'search_val_data': coco/annotations/search/search_val.json does not exist",
                    "setting 'final_val_data': coco/annotations/instances_val2017.json does not exist",
                    "run is not empty and not a search run", "weights/resnet50-0676ba61.pth not found",
                    "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s"):
        assert problem in err
    assert err.count("resnet50-0676ba61.pth not found") == 1  # the proxy's and the final trainings' problem, once
    assert (tmp_path / "run" / "notes.txt").read_text() == "x"


@pytest.mark.slow  # about 20 s: compiles and times the tiny train step
def test_dry_run_plans_the_proxy_and_final_trainings(tmp_path):
    from autoloss.search_plan import search_plan
    from detection.shapes import ensure_shapes_dataset

    paths = ensure_shapes_dataset(tmp_path / "cache", num_train=8, num_search_val=3, num_final_val=5, image_size=64)
    specs = {split: f"coco:{annotations}:{images}" for split, (annotations, images) in paths.items()}
    config = SearchConfig(data=specs["train"], search_val_data=specs["search_val"], final_val_data=specs["final_val"],
                          image_size=32, generations=2, population=4, top_k=3, proxy_steps=7, proxy_batch_size=2,
                          final_steps=7, final_batch_size=2)  # the proxy's step: compiled once
    proxy, final = (stage.to_dict() for stage in search_plan(config, timed_steps=1))
    assert (proxy["name"], proxy["trainings"], proxy["steps"], proxy["eval_images"]) == ("proxy", 6, 7, 3)
    # two rows (the baseline and the found loss), two seeds each
    assert (final["name"], final["trainings"], final["steps"], final["eval_images"]) == ("final", 4, 7, 5)
    assert proxy["train_images"] == final["train_images"] == 6 and proxy["estimated_seconds"] > 0
