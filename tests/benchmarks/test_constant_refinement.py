"""``python -m benchmarks.constant_refinement``: one row per loss and seed, argument errors."""

import pytest
from search_fakes import FakeResult

from benchmarks import constant_refinement
from symbolic.constants import lift_constants
from symbolic.zoo import KNOWN_LOSSES


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


def test_proxy_aps_come_before_and_after_for_zoo_losses_and_formulas(monkeypatch):
    monkeypatch.setattr(constant_refinement, "make_simulator", lambda config, branch, progress: ConstantsSimulator())
    trained = []

    def fake_proxy(config, branch, candidates):
        trained.extend(candidates)
        return [0.01 * len(trained)]

    monkeypatch.setattr(constant_refinement, "confirm_on_proxy", fake_proxy)
    section = constant_refinement.main(["--seeds", "2", "--generations", "2", "--quiet", "--losses", "focal",
                                        "--formula", "mine=softplus(-x)*y*3 + (1 - y)*softplus(x)", "--proxy"])
    rows = {name: [line.split("|") for line in section.splitlines() if line.startswith(f"| {name} ")]
            for name in ("focal", "mine")}
    assert len(rows["focal"]) == 2 and len(rows["mine"]) == 2 and "proxy AP before | proxy AP after" in section
    originals = [c.infix() for c in trained if c.infix() in (KNOWN_LOSSES["focal"].candidate.infix(),
                                                              "3*y*softplus(-x) + (1 - y)*softplus(x)")]
    assert len(originals) == 2  # each original trained once, for all its seeds
    refined = [row for row in rows["focal"] + rows["mine"] if "none better" not in row[8]]
    assert refined and len(trained) == 2 + len(refined)
    for row in rows["focal"] + rows["mine"]:
        before, after = row[5].strip(), row[6].strip()
        assert (after == before) == ("none better" in row[8])


@pytest.mark.parametrize("argv, message", [(["--seeds", "0"], "must be at least"),
                                           (["--population", "1"], "must be at least"),
                                           (["--losses", "nosuch"], "not a zoo loss"),
                                           (["--formula", "x*"], "NAME=FORMULA"),
                                           (["--formula", "bad=x*"], "--formula bad"),
                                           (["--losses", ""], "no loss to refine")])
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        constant_refinement.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
