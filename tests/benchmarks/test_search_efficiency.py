"""``python -m benchmarks.search_efficiency``: the table, the claim, reuse of finished runs, argument errors, and a
real smoke run of the searches and final trainings."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

from autoloss import plots_search
from autoloss.run_store import RunStore
from autoloss.search_driver import search
from benchmarks import search_efficiency

ROW_ORDER = ("random", "vanilla", "cpv-only", "cse")  # the default: the weakest filter first


@pytest.fixture
def fake_searches(monkeypatch):
    """Searches with the fake simulation and proxy (threads), and fake final trainings."""
    def fake_search(config, **options):
        with ThreadPoolExecutor(2) as executor:
            return search(config, simulator=FakeSimulator, executor=executor, proxy_task=fake_proxy, **options)

    monkeypatch.setattr(search_efficiency, "search", fake_search)
    monkeypatch.setattr(search_efficiency, "train_and_evaluate", fake_proxy)


def table_rows(section: str) -> dict[str, list[str]]:
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_one_row_per_method_the_claim_and_each_seeds_winners(fake_searches, tmp_path):
    argv = ["--preset", "smoke", "--seeds", "2", "--work-dir", str(tmp_path), "--quiet"]
    section = search_efficiency.main(argv)
    rows = table_rows(section)
    assert tuple(rows) == ROW_ORDER
    assert rows["cse"][2] != "0" and rows["vanilla"][2] == "0"  # only cse simulates
    assert all(row[3] == "1" for row in rows.values())  # the same proxy budget: generations x top_k
    assert "Claim (>= 10x fewer proxy evaluations" in section and "vanilla" in section.split("Claim")[1]
    assert "* seed 0 winners" in section and "* seed 1 winners" in section
    assert {p.name for p in (tmp_path / "seed1").iterdir()} == set(ROW_ORDER)  # the fake finals write nothing
    again = search_efficiency.main(argv)  # finished runs are reused, not searched again
    assert table_rows(again)["cse"][6:] == rows["cse"][6:]


def test_each_training_outside_the_searches_says_when_it_starts_and_what_it_reached(fake_searches, tmp_path,
                                                                                     capsys):
    search_efficiency.main(["--preset", "smoke", "--methods", "vanilla", "--work-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert "seed 0, baseline proxy: training 2 steps ..." in err and "seed 0, baseline proxy: AP " in err
    assert "seed 0, vanilla's best, final training in" in err and "seed 0, baseline, final training in" in err


def test_evaluations_to_reach_reads_the_proxy_results_in_log_order(fake_searches, tmp_path):
    search_efficiency.main(["--preset", "smoke", "--methods", "vanilla", "--work-dir", str(tmp_path), "--quiet"])
    run_dir = tmp_path / "seed0" / "vanilla"
    aps = [e["ap"] for e in RunStore(run_dir).read_log() if e.get("stage") == "proxy"]
    curve = search_efficiency.proxy_curve(run_dir)
    assert curve == aps
    assert search_efficiency.evaluations_to_reach(curve, min(aps)) == (1, len(aps))
    assert search_efficiency.evaluations_to_reach(curve, 2.0) == (None, len(aps))
    assert search_efficiency.evaluations_to_reach([None, 0.1, 0.5], 0.4) == (3, 3)


@pytest.mark.parametrize(("argv", "message"), [
    (["--methods", "cse,genetic"], "unknown method genetic"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--report-only"], "--report-only reads the finished searches of --records DIR"),
])
def test_bad_arguments_exit_2_and_say_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_records_that_name_a_file_are_a_usage_error(tmp_path, capsys):
    (tmp_path / "records.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.main(["--records", str(tmp_path / "records.json")])
    assert exit_info.value.code == 2 and "records.json: a file, not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_smoke_run_searches_and_trains_finals(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    section = search_efficiency.main(["--preset", "smoke", "--methods", "vanilla,cse", "--work-dir",
                                      str(tmp_path / "runs"), "--quiet"])
    rows = table_rows(section)
    assert tuple(rows) == ("vanilla", "cse") and all(row[3] == "1" for row in rows.values())
    assert "Baseline (focal + GIoU): proxy AP" in section
    assert (tmp_path / "runs" / "seed0" / "final" / "cse" / "experiment.json").is_file()


def test_records_stand_for_finished_searches_on_another_machine(fake_searches, tmp_path, monkeypatch):
    records = tmp_path / "records"
    argv = ["--preset", "smoke", "--methods", "vanilla,cse", "--records", str(records), "--quiet"]
    first = search_efficiency.main([*argv, "--work-dir", str(tmp_path / "a")])
    assert {p.name for p in (records / "seed0").iterdir()} == {"baseline.json", "vanilla.json", "cse.json"}
    curve = json.loads((records / "seed0" / "cse.json").read_text())["curve"]
    assert len(curve) == 1 and 0 <= curve[0] <= 1  # one proxy evaluation in the smoke preset

    def no_search(*args, **kwargs):
        raise AssertionError("a recorded search ran again")

    monkeypatch.setattr(search_efficiency, "search", no_search)
    monkeypatch.setattr(search_efficiency, "train_and_evaluate", no_search)
    again = search_efficiency.main([*argv, "--work-dir", str(tmp_path / "b")])  # nothing there: only the records
    assert table_rows(again)["cse"][6:] == table_rows(first)["cse"][6:]
    studied = sum(json.loads((records / "seed0" / f"{m}.json").read_text())["wall_seconds"] for m in ("vanilla", "cse"))
    assert f"their winners' final trainings took {studied / 60:.0f} min when they ran" in again
    with pytest.raises(SystemExit, match="records preset 'smoke', not 'demo'"):
        search_efficiency.main(["--preset", "demo", "--methods", "cse", "--records", str(records), "--quiet"])


def test_report_only_shows_a_study_in_progress_and_searches_nothing(fake_searches, tmp_path, monkeypatch):
    records = tmp_path / "records"
    search_efficiency.main(["--preset", "smoke", "--seeds", "2", "--methods", "vanilla,cse", "--records",
                            str(records), "--work-dir", str(tmp_path / "a"), "--quiet"])
    (records / "seed1" / "vanilla.json").unlink()  # seed 1 is still searching vanilla
    monkeypatch.setattr(search_efficiency, "search", lambda *a, **k: pytest.fail("a report searched"))
    monkeypatch.setattr(search_efficiency, "train_and_evaluate", lambda *a, **k: pytest.fail("a report trained"))
    report = search_efficiency.main(["--preset", "smoke", "--seeds", "2", "--methods", "random,vanilla,cse",
                                     "--records", str(records), "--report-only", "--quiet"])
    rows = table_rows(report)
    assert rows["random"][1] == "not yet searched" and rows["cse"][3] == "1"
    assert "vanilla (seed 0 only)" in rows and "seeds 0, 1;" in report
    assert "seed 0: " in report.split("Claim")[1] and "seed 1: " not in report.split("Claim")[1]
    assert "* seed 1 winners — cse: `" in report
    with pytest.raises(SystemExit, match="holds no finished seed"):
        search_efficiency.main(["--preset", "smoke", "--records", str(tmp_path / "empty"), "--report-only"])


def test_best_so_far_and_its_plot():
    assert plots_search.best_so_far([None, 0.2, 0.1, 0.3]).tolist()[1:] == [0.2, 0.2, 0.3]
    figure = plots_search.plot_best_so_far({"cse": [[0.1, 0.3], [0.2, None, 0.4]], "vanilla": [[None, 0.1]]},
                                           baseline=0.25)
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "cse (2 seeds)" in labels and "vanilla (1 seed)" in labels
    assert "baseline's proxy AP (mean over seeds)" in labels
    with pytest.raises(ValueError, match="no proxy evaluations"):
        plots_search.plot_best_so_far({"cse": [[]]})
