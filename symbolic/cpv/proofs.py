"""The symbolic half of a verdict, as one call for the proof worker: every property of a form."""

from __future__ import annotations

import sympy

from symbolic.cpv.classification_proofs import prove_classification
from symbolic.cpv.proof_worker import clock
from symbolic.cpv.regression_proofs import prove_consistency
from symbolic.cpv.verdict import Proof


def prove(expr: sympy.Expr, form: str, budget: float) -> dict[str, Proof]:
    """Proofs of the properties of ``form`` for ``expr``, attempted for at most ``budget`` seconds."""
    deadline = clock() + budget
    if form == "reg":
        return {"distance_consistency": prove_consistency(expr, deadline)}
    return prove_classification(expr, form, deadline)
