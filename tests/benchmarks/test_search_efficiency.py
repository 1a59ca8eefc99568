"""``python -m benchmarks.search_efficiency``: the table, the claim, reuse of finished runs, argument errors, and a
real smoke run of the searches and final trainings."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

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


def test_evaluations_to_reach_reads_the_proxy_results_in_log_order(fake_searches, tmp_path):
    search_efficiency.main(["--preset", "smoke", "--methods", "vanilla", "--work-dir", str(tmp_path), "--quiet"])
    run_dir = tmp_path / "seed0" / "vanilla"
    aps = [e["ap"] for e in RunStore(run_dir).read_log() if e.get("stage") == "proxy"]
    assert search_efficiency.evaluations_to_reach(run_dir, min(aps)) == (1, len(aps))
    assert search_efficiency.evaluations_to_reach(run_dir, 2.0) == (None, len(aps))


@pytest.mark.parametrize(("argv", "message"), [
    (["--methods", "cse,genetic"], "unknown method genetic"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
])
def test_bad_arguments_exit_2_and_say_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        search_efficiency.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_smoke_run_searches_and_trains_finals(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    section = search_efficiency.main(["--preset", "smoke", "--methods", "vanilla,cse", "--work-dir",
                                      str(tmp_path / "runs"), "--quiet"])
    rows = table_rows(section)
    assert tuple(rows) == ("vanilla", "cse") and all(row[3] == "1" for row in rows.values())
    assert "Baseline (focal + GIoU): proxy AP" in section
    assert (tmp_path / "runs" / "seed0" / "final" / "cse" / "experiment.json").is_file()
