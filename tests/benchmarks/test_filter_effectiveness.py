"""``python -m benchmarks.filter_effectiveness``: the funnel of one stream, the false-rejection estimate, argument
errors, and a real smoke run."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from search_fakes import FakeSimulator, fake_proxy

from benchmarks import filter_effectiveness


def tables(section: str) -> list[list[list[str]]]:
    """The markdown tables of a section, as rows of cells (header and rule lines dropped)."""
    found, current = [], None
    for line in section.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                found.append(current)
            elif not line.startswith("|---"):
                current.append([cell.strip() for cell in line.strip("|").split("|")])
        else:
            current = None
    return found


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(filter_effectiveness, "make_simulator", lambda config, branch, progress: FakeSimulator())
    monkeypatch.setattr(filter_effectiveness, "train_and_evaluate", fake_proxy)
    monkeypatch.setattr(filter_effectiveness.TaskRunner, "local",
                        staticmethod(lambda workers: filter_effectiveness.TaskRunner.of(ThreadPoolExecutor(2))))


def test_the_funnel_adds_up_and_the_estimates_follow_the_samples(fakes):
    outcome = filter_effectiveness.study(filter_effectiveness.SearchConfig.preset(
        "demo", zoo_seeds=("focal", "bce", "cse_b_cls")), 3000, 4, 0.9, False)
    counts, groups = outcome["counts"], outcome["groups"]
    assert counts["generated"] == 3000 and counts["unique"] + counts["duplicates"] == 3000
    layers = counts["value_duplicates"] + counts["canonical_duplicates"] + counts["gradient_duplicates"]
    assert layers == counts["duplicates"] and min(counts["value_duplicates"], counts["gradient_duplicates"]) >= 0
    assert counts["unique"] == counts["invalid"] + counts["rejected_by_cpv"] + counts["passed_cpv"]
    assert counts["passed_cpv"] >= 3  # the zoo seeds pass
    assert groups["rejected by CPV"]["size"] == counts["rejected_by_cpv"]
    assert groups["rejected by MOS"]["size"] + groups["passed MOS"]["size"] == counts["passed_cpv"]
    assert outcome["baseline_ap"] == 0.2 and outcome["threshold"] == pytest.approx(0.18)
    for group in groups.values():
        assert group["trained"] == min(4, group["size"])
        expected = group["good"] / group["trained"] * group["size"] if group["trained"] else 0.0
        assert group["estimated_good"] == pytest.approx(expected)


def test_the_section_states_the_share_filtered_and_one_row_per_group(fakes, capsys):
    section = filter_effectiveness.main(["--preset", "smoke", "--quiet"])
    funnel, groups = tables(section)
    assert funnel[0][0] == "1,000" and funnel[0][-1].endswith("%**")
    assert sum(int(cell.replace(",", "")) for cell in funnel[0][1:7]) == 1000  # the layers add up
    assert [row[0] for row in groups] == list(filter_effectiveness.GROUPS)
    shares = [row[-1] for row in groups]
    assert shares == ["-"] * 3 or sum(int(share.rstrip("%")) for share in shares) in (99, 100, 101)


@pytest.mark.parametrize(("argv", "message"), [
    (["--generated", "0"], "--generated must be at least 1"),
    (["--sample", "-1"], "--sample must be at least 0"),
    (["--good-fraction", "0"], "--good-fraction must be in (0, 2]"),
])
def test_bad_arguments_exit_2_and_say_what_is_wrong(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        filter_effectiveness.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_smoke_run_simulates_and_trains_each_group(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path / "cache"))
    outcome_section = filter_effectiveness.main(["--preset", "smoke", "--quiet"])
    funnel, groups = tables(outcome_section)
    assert int(funnel[0][6]) >= 2  # the two zoo seeds pass CPV
    assert sum(int(row[2]) for row in groups) >= 2  # samples of the non-empty groups were proxy-trained
