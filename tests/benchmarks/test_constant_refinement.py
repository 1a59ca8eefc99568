"""``python -m benchmarks.constant_refinement``: one row per loss and seed, argument errors."""

import pytest
from search_fakes import FakeResult

from benchmarks import constant_refinement
from symbolic.constants import lift_constants


class ConstantsSimulator:
    """Scores a loss by the sum of its constants (a smooth stand-in for MOS)."""

    def simulate_many(self, candidates):
        return [FakeResult(c.key, c.infix(), True, 0.1 + 0.01 * sum(lift_constants(c).values), None, None, [1.0], 0.0)
                for c in candidates]


def test_the_section_has_a_row_per_loss_and_seed(monkeypatch):
    monkeypatch.setattr(constant_refinement, "make_simulator", lambda config, branch, progress: ConstantsSimulator())
    section = constant_refinement.main(["--seeds", "1", "--generations", "1", "--quiet"])
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| loss")]
    assert [row.split("|")[1].strip() for row in rows] == list(constant_refinement.LOSSES)


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--population", "1"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        constant_refinement.main(argv)
    assert exit_info.value.code == 2 and "must be at least" in capsys.readouterr().err
