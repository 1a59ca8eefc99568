"""``python -m benchmarks.parser_fuzz``: seeded inputs of every kind, only clean outcomes, and what it counts."""

import gc

import pytest

from benchmarks import parser_fuzz
from symbolic.candidate import Candidate


def test_the_same_seed_gives_the_same_inputs_of_every_kind():
    first = list(parser_fuzz.hostile_inputs(300, seed=3))
    assert first == list(parser_fuzz.hostile_inputs(300, seed=3))
    assert first != list(parser_fuzz.hostile_inputs(300, seed=4))
    assert {kind for kind, _, _ in first} == set(parser_fuzz.generators(3))


def test_a_few_hundred_hostile_inputs_are_rejected_cleanly_or_round_trip(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    section = parser_fuzz.main(["--count", "300", "--seed", "5", "--quiet", "--write", "--results", str(results)])
    assert "| **all** | **300** |" in section and "Failures" not in section
    assert "measured **0** and **0**" in section and "do not parse back to the same key: **0**" in section
    assert "## Other\n\nkept" in results.read_text() and parser_fuzz.SECTION in results.read_text()


@pytest.mark.parametrize("text", parser_fuzz._ISSUE)
def test_the_issue_reproducers_are_refused_or_round_trip(text):
    outcome, _, _, detail = parser_fuzz.judge(text, "sigmoid")
    assert outcome in ("InvalidCandidate", "accepted"), detail


def test_an_escaping_exception_and_a_failed_round_trip_are_counted(monkeypatch):
    def crash(text, form):
        raise TypeError("Invalid comparison of non-real")

    with monkeypatch.context() as patch:
        patch.setattr(Candidate, "parse", staticmethod(crash))
        outcome, _, _, detail = parser_fuzz.judge("x", "sigmoid")
        assert (outcome, detail) == ("other exception", "TypeError: Invalid comparison of non-real")
        result = parser_fuzz.run(5, seed=0, progress=False)
    section = parser_fuzz.render(result, 5, 0, "python -m benchmarks.parser_fuzz --count 5", 0.1)
    assert "measured **5** and **0**" in section and "Failures (first 20):" in section
    monkeypatch.setattr(Candidate, "infix", lambda self: "x + 1")
    outcome, _, _, detail = parser_fuzz.judge("x", "sigmoid")
    assert (outcome, detail) == ("round trip failed", "x + 1")


def test_the_objects_of_the_host_process_are_not_collected_on_an_inputs_time(monkeypatch):
    # A full collection of a large process (this suite's) once charged 1.4 s to one input.
    frozen = []
    judge = parser_fuzz.judge
    monkeypatch.setattr(parser_fuzz, "judge", lambda text, form: frozen.append(gc.get_freeze_count()) or
                        judge(text, form))
    parser_fuzz.run(3, seed=0, progress=False)
    assert len(frozen) == 3 and min(frozen) > 0 and gc.get_freeze_count() == 0
