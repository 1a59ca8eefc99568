"""``autoloss report``: every section and its PNG files for a finished run, a plain note for an unfinished one,
and exit code 2 for a directory that is not a run."""

import json
import re

import pytest
from search_runs import finished_run, run_stopped_before_final

from autoloss.cli import main
from autoloss.final_comparison import PAPER_COLUMNS
from autoloss.run_store import RESULT, RunStore
from autoloss.search_config import SearchConfig

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("# Search report: run", "## Best losses", "### cls branch (sigmoid form)", "### reg branch (reg form)",
            "## Search progress", "## Funnel", "## Final evaluation")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def image_links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A finished search of both branches."""
    return finished_run(tmp_path_factory.mktemp("both") / "run", branch="both")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The run directory of a cls search stopped before its final evaluation."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    run_stopped_before_final(run_dir, generations=1)
    return run_dir


def test_the_report_of_a_finished_run_has_every_section_and_its_images(both, tmp_path, capsys):
    out_dir = tmp_path / "report"
    code, out, err = run_cli(capsys, "report", both.run_dir, "--out", out_dir, "--json")
    assert code == 0, err
    written = json.loads(out)
    assert written["finished"] and written["final_evaluated"] and written["report"] == str(out_dir / "report.md")
    text = (out_dir / "report.md").read_text()
    for section in SECTIONS:
        assert f"\n{section}" in f"\n{text}"
    links = image_links(text)
    assert sorted(links) == sorted(["progress-cls.png", "progress-reg.png", "funnel.png", "loss-cls.png",
                                    "loss-reg.png", "pareto-cls.png", "pareto-reg.png"])
    assert sorted(written["images"]) == sorted(str(out_dir / link) for link in links)
    for link in links:
        assert (out_dir / link).read_bytes().startswith(PNG_SIGNATURE)
    for loss in both.winners.values():
        assert f"$$ {loss.latex()} $$" in text and f"`{loss.infix()}`" in text and f"`{loss.prefix()}`" in text
        assert f"{100 * loss.proxy_ap:.2f}" in text and f"{100 * loss.mos_score:.2f}" in text and loss.cpv in text
    assert "| row | " + " | ".join(PAPER_COLUMNS) + " |" in text
    assert "| Δ found-both vs baseline |" in text and "Not evaluated yet" not in text
    assert f"| {both.funnel['generated']:,} | 100.00 | generated |" in text
    for branch, front in both.pareto.items():
        best = front.best_entry
        assert written["pareto"][branch]["best"] == best.point.key and "candidates" not in written["pareto"][branch]
        assert f"| {best.point.complexity:g} | {100 * best.point.ap:.2f} | {best.score:.4f} | **best** |" in text
    assert text.count("Pareto front (") == 2 and "Score as in PySR, −Δlog(loss)/Δcomplexity with loss = 1/AP" in text


def test_the_report_goes_into_the_run_directory_by_default(both, capsys):
    code, out, err = run_cli(capsys, "report", both.run_dir)
    assert code == 0 and err == ""
    assert (both.run_dir / "report" / "report.md").is_file() and "wrote" in out and "unfinished" not in out


def test_a_run_stopped_before_its_final_evaluation_gets_a_report_that_says_so(stopped, capsys):
    assert RunStore.open(stopped).read_report(RESULT) is None
    code, out, err = run_cli(capsys, "report", stopped)
    assert code == 0, err
    assert "unfinished" in out
    text = (stopped / "report" / "report.md").read_text()
    assert "**Not evaluated yet.** The run stopped before its final evaluation" in text
    assert f"autoloss search --resume {stopped}" in text and "stopped before the end" in text
    assert "| row | AP |" not in text and "## Best losses" in text and "loss-cls.png" in text


def test_a_run_killed_before_its_first_stage_gets_a_report_of_nothing_yet(tmp_path, capsys):
    RunStore.create(tmp_path / "run", SearchConfig())
    code, _, err = run_cli(capsys, "report", tmp_path / "run", "--out", tmp_path / "report")
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    for note in ("No candidate has been generated yet.", "No generation has finished yet.", "Not evaluated yet"):
        assert note in text
    assert image_links(text) == [] and sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.md"]


@pytest.mark.parametrize("make, message", [
    (lambda path: path.mkdir(), "is not a search run directory (no run.json or config.json)"),
    (lambda path: None, "is not a directory; give the run directory of a search"),
])
def test_a_directory_that_is_not_a_run_exits_2_naming_it(tmp_path, capsys, make, message):
    make(tmp_path / "somewhere")
    code, out, err = run_cli(capsys, "report", tmp_path / "somewhere")
    assert code == 2 and out == ""
    assert f"{tmp_path / 'somewhere'} {message}" in err and "Traceback" not in err
    assert not (tmp_path / "somewhere" / "report").exists()

