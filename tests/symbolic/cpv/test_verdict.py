"""The verdict types: one combination rule, one summary and a JSON round trip."""

from symbolic.cpv.verdict import Proof, PropertyResult, Sampled, Verdict, VerdictSummary, combine

HOLDS = Sampled("monotonicity", True, True, "sampled on 2 curves")
FAILS = Sampled("monotonicity", True, False, "sampled on 2 curves", "the loss rises", {"x": 1.0})
PROVED = Proof("proved", "SymPy assumptions", "all real x")


def test_proved_needs_a_proof_and_the_samples():
    result = combine(HOLDS, PROVED, 0.1, 1.0)
    assert result.status == "proved" and result.argument == "SymPy assumptions" and result.domain == "all real x"
    failed = combine(FAILS, PROVED, 0.1, 1.0)
    assert failed.status == "failed" and "guarded float64 numerics violate it" in failed.detail
    assert combine(HOLDS, None, 0.1, 1.0).status == "sampled"


def test_a_refutation_fails_and_a_timeout_says_so_with_the_budget():
    refuted = combine(HOLDS, Proof("refuted", "interval branch and bound", "", "wrong sign", {"x": 3.0}), 0, 1)
    assert refuted.status == "failed" and refuted.counterexample == {"x": 3.0}
    late = combine(HOLDS, Proof.undecided("", timed_out=True), 0.1, 0.25)
    assert late.status == "sampled" and "ran out of its time budget (0.25 s)" in late.detail


def test_one_summary_for_every_report():
    results = (PropertyResult("monotonicity", "proved", True, ""), PropertyResult("convergence", "sampled", True, ""),
               PropertyResult("finiteness", "sampled", True, ""), PropertyResult("extra", "failed", False, ""))
    verdict = Verdict(True, "sigmoid", "k", results, 0.5)
    summary = verdict.summary()
    assert summary.text() == "passed (1/3 proved)"
    assert VerdictSummary.from_dict(summary.to_dict()) == summary
    failing = Verdict(False, "reg", "k", (PropertyResult("distance_consistency", "failed", True, ""),), 0.1)
    assert failing.summary().text() == "failed: distance_consistency"
    assert Verdict.from_json(verdict.to_json()) == verdict
