"""Convergence property verification (CPV) of one candidate: ``verify(candidate) -> Verdict``.

Each property is checked on the form's probe (``classification``, ``regression``: the
guarded float64 numerics training uses) and, in the proof worker, proved from the formula
(``proofs``). Its status is honest about the evidence (``verdict.combine``):

* ``proved``: a symbolic argument decided it — SymPy's assumptions, interval branch and
  bound, a limit, a rational sign analysis — and the sampled check agrees; the verdict
  names the argument and the domain it covers;
* ``sampled``: it holds at every probe point (the detail gives the points and ranges), but
  no proof was found: undecided, or out of its time budget, which the detail says;
* ``failed``: a counterexample, the input values with the offending value or slope.

``finiteness`` (``finiteness``) is sampled by nature.

Time: the proofs of a candidate run as one call in the proof worker (``proof_worker``),
stopped at ``time_budget`` seconds; a step no signal can stop is ended by killing the
worker at the budget plus ``proof_worker.KILL_MARGIN``. So ``verify`` returns within the
budget plus that margin plus the sampled and float32 checks. The verifier never raises on
a valid candidate: an unexpected error in a proof leaves the sampled verdict, one in a
sampled check fails the property with the error as its reason.
"""

from __future__ import annotations

import math
import time

from symbolic.cpv.classification import sampled_classification
from symbolic.cpv.finiteness import finiteness
from symbolic.cpv.proof_worker import ProofTimeout, WorkerUnavailable, proof_worker
from symbolic.cpv.proofs import prove
from symbolic.cpv.regression import sampled_regression
from symbolic.cpv.verdict import Proof, PropertyResult, Sampled, Verdict, combine

DEFAULT_TIME_BUDGET = 5.0  # seconds: a ceiling for one candidate's proofs; most take milliseconds


def run_proofs(candidate, budget: float) -> dict[str, Proof]:
    """The proofs of every property of ``candidate``'s form, from the proof worker within ``budget`` seconds."""
    if budget <= 0:
        return {}
    try:
        return proof_worker().call(prove, (candidate.expr, candidate.form.name, budget), budget)
    except ProofTimeout:
        why = Proof.undecided("a SymPy step that no signal stops ran past it; the proof worker was stopped",
                              timed_out=True)
    except WorkerUnavailable as error:
        why = Proof.undecided(f"the proof worker is unavailable ({error})")
    except RuntimeError as error:
        why = Proof.undecided(f"no proof ({error})")
    return {"monotonicity": why, "convergence": why, "iou_aware": why, "distance_consistency": why}


def _sampled(candidate) -> list[Sampled] | PropertyResult:
    check = sampled_regression if candidate.form.name == "reg" else sampled_classification
    try:
        return check(candidate)
    except Exception as error:  # noqa: BLE001 - a verifier bug must not stop a search
        name = "distance_consistency" if candidate.form.name == "reg" else "monotonicity"
        return PropertyResult(name, "failed", True, f"could not be checked: {type(error).__name__}: {error}")


def _finiteness(candidate) -> PropertyResult:
    try:
        return finiteness(candidate)
    except Exception as error:  # noqa: BLE001
        return PropertyResult("finiteness", "failed", True, f"could not be checked: {type(error).__name__}: {error}")


def verify(candidate, *, time_budget: float = DEFAULT_TIME_BUDGET) -> Verdict:
    """The CPV verdict of ``candidate``, with proofs attempted for at most ``time_budget`` seconds."""
    if not (isinstance(time_budget, int | float) and math.isfinite(time_budget) and time_budget >= 0):
        raise ValueError(f"time_budget must be a finite number of seconds >= 0 (0 skips the proofs), "
                         f"got {time_budget!r}")
    start = time.perf_counter()
    sampled = _sampled(candidate)
    if isinstance(sampled, PropertyResult):
        results = [sampled]
    else:
        wanted = any(s.holds for s in sampled if s.required)  # a sampled counterexample decides without proofs
        proofs = run_proofs(candidate, time_budget) if wanted else {}
        share = (time.perf_counter() - start) / len(sampled)
        results = [combine(s, proofs.get(s.name), share, time_budget) for s in sampled]
    results.append(_finiteness(candidate))
    try:
        formula = candidate.infix()
    except Exception:  # noqa: BLE001 - printing is cosmetic
        formula = str(candidate.expr)
    passed = not any(p.required and p.status == "failed" for p in results)
    return Verdict(passed, candidate.form.name, candidate.key, tuple(results), time.perf_counter() - start, formula)
