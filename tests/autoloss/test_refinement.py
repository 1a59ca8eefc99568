"""Constant refinement: CMA-ES moves the constants toward a better simulation score, seeded; the refined loss passes
CPV; a formula without constants is refused; the command answers in text and JSON."""

import json
import math

import pytest
from search_fakes import FakeResult, fake_proxy, without_timings

from autoloss import refinement
from autoloss.cli import main
from autoloss.cli_contract import UsageError
from autoloss.refine_command import format_refine
from autoloss.refinement import RefineSettings, refine
from symbolic.candidate import Candidate
from symbolic.constants import lift_constants

BALANCED = "-(y*log(sigmoid(x)) + (1/5)*(1 - y)*log(1 - sigmoid(x)))"  # constants: the 1 of 1 − y, the weight 1/5
TUNE_WEIGHT = {"fixed": (0,)}


class PeakedSimulator:
    """A smooth stand-in for MOS: the score peaks when the last constant is ``peak``; counts what it simulates."""

    def __init__(self, peak: float = 0.7):
        self.peak, self.simulated = peak, []

    def simulate_many(self, candidates):
        self.simulated += [c.key for c in candidates]
        out = []
        for candidate in candidates:
            value = lift_constants(candidate).values[-1]
            score = 0.5 - (value - self.peak) ** 2
            out.append(FakeResult(candidate.key, candidate.infix(), score > 0, score if score > 0 else math.nan,
                                  None, None, [1.0], 0.0))
        return out


def test_refinement_moves_the_constant_toward_the_better_score_and_simulates_each_loss_once():
    simulator = PeakedSimulator()
    lines = []
    result = refine(Candidate.parse(BALANCED, "sigmoid"), simulator, RefineSettings(generations=3, **TUNE_WEIGHT),
                    progress=lines.append)
    assert [line["generation"] for line in lines] == list(range(1, 4))
    assert result.refined is not None and result.refined_score > result.original_score
    assert abs(lift_constants(result.refined).values[-1] - 0.7) < abs(0.2 - 0.7)
    assert lift_constants(result.refined).values[0] == 1.0  # fixed
    assert result.refined_verdict["passed"] and len(simulator.simulated) == len(set(simulator.simulated))
    report = json.loads(json.dumps(result.to_dict()))
    assert report["refined"]["infix"] == result.refined.infix() and len(report["history"]) == 3


def test_the_same_seed_gives_the_same_refinement_and_another_seed_another_path():
    runs = [refine(Candidate.parse(BALANCED, "sigmoid"), PeakedSimulator(), RefineSettings(generations=2, seed=seed,
                                                                                            **TUNE_WEIGHT))
            for seed in (3, 3, 4)]
    same = [without_timings(json.loads(json.dumps(run.to_dict()))) for run in runs]
    assert same[0] == same[1] and same[2]["history"] != same[0]["history"]


def test_members_failing_cpv_are_discarded_and_never_returned(monkeypatch):
    """Moving the 1 of 1 − y breaks convergence: such members are listed as discarded, never simulated."""
    simulator = PeakedSimulator(peak=-2.0)  # the score would favour the broken losses
    result = refine(Candidate.parse(BALANCED, "sigmoid"), simulator, RefineSettings(generations=2, spread=3.0))
    assert result.discarded and all(d["failed"] for d in result.discarded)
    simulated = {Candidate.parse(d["infix"], "sigmoid").key for d in result.discarded} & set(simulator.simulated)
    assert not simulated
    assert result.refined is None or result.refined_verdict["passed"]


def test_a_formula_without_constants_is_refused_before_any_simulation():
    with pytest.raises(UsageError, match="no numeric constants"):
        refine(Candidate.parse("-log(sigmoid(x))", "sigmoid"), None)


@pytest.fixture(autouse=True)
def no_real_simulator(monkeypatch):
    """The command never builds the demo preset's simulator here (minutes); a test that wants one says so."""
    monkeypatch.setattr("autoloss.refine_command.make_simulator", lambda config, branch, progress: PeakedSimulator())


@pytest.mark.parametrize(("argv", "message"), [
    (["refine", "-y*log(sigmoid(x))", "--form", "sigmoid"], "has no numeric constants to refine"),
    (["refine", BALANCED, "--form", "sigmoid", "--population", "1"], "population must be at least 2"),
    (["refine", BALANCED, "--form", "softmax"], "reduce it to one value per sample with dot"),
    (["refine", BALANCED], "give the loss form of the formula with --form"),
    (["refine", BALANCED, "--form", "sigmoid", "--fix", "0,1"], "leaves nothing to tune"),
    (["refine", BALANCED, "--form", "sigmoid", "--fix", "a"], "comma-separated constant indices"),
    (["refine", "1 - i/u + 1/e", "--form", "reg", "--detector", "faster-rcnn", "--preset", "nope"], "unknown preset"),
])
def test_bad_input_exits_2_with_a_json_error(argv, message, capsys):
    assert main([*argv, "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert message in error["message"] + (error["hint"] or "")


def test_the_command_refines_a_zoo_loss_and_prints_a_line_per_generation(capsys):
    assert main(["refine", "cse_b_cls", "--generations", "2", "--seed", "1", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["branch"] == "cls" and report["original"]["prefix"] and len(report["history"]) == 2
    assert [line.split()[2] for line in captured.err.splitlines() if line.startswith("refine:")] == ["1/2", "2/2"]
    text = format_refine(report)
    assert "original  MOS AP" in text and "candidates simulated" in text


def test_proxy_confirms_the_original_and_the_refined_loss_with_the_search_recipe(monkeypatch, capsys):
    specs = []
    monkeypatch.setattr("autoloss.proxy.train_and_evaluate", lambda spec: specs.append(spec) or fake_proxy(spec))
    assert main(["refine", BALANCED, "--form", "sigmoid", "--fix", "0", "--generations", "1", "--proxy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["proxy"]["original_ap"] is not None and len(specs) == 1 + (report["refined"] is not None)
    assert specs[0]["cls"]["prefix"] == report["original"]["prefix"] and specs[0]["init"]["fresh_branch"] == "cls"


def test_refinement_uses_evosax_cma_es():
    assert refinement.CMA_ES.__module__.startswith("evosax")


def test_a_run_directory_refines_its_found_loss_with_the_runs_settings(monkeypatch, capsys, tmp_path):
    from search_runs import finished_run

    from autoloss.run_store import RunStore

    result = finished_run(tmp_path / "run", generations=1, final_steps=0, seed=3)
    entries = RunStore.open(tmp_path / "run").read_report("hall_of_fame.json")["branches"]["cls"]
    rank, entry = next((k, e) for k, e in enumerate(entries, 1)
                       if lift_constants(Candidate.parse(e["prefix"], e["form"])).values)
    configs = []
    monkeypatch.setattr("autoloss.refine_command.make_simulator",
                        lambda config, branch, progress: configs.append(config) or PeakedSimulator())
    assert main(["refine", str(tmp_path / "run"), "--rank", str(rank), "--generations", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["original"]["prefix"] == Candidate.parse(entry["prefix"], entry["form"]).prefix()
    assert configs == [result.config] and report["branch"] == "cls"
