"""Convergence property verification (CPV): verdicts, finiteness, the batched sampled check,
classification and regression properties and their proofs, sign proofs, interval arithmetic,
probes and rules, and the worker process the proofs run in.
"""

from symbolic.cpv.batch import check_trees
from symbolic.cpv.verdict import PropertyResult, Verdict, VerdictSummary, format_verdict
from symbolic.cpv.verify import DEFAULT_TIME_BUDGET, verify

__all__ = [
    "DEFAULT_TIME_BUDGET",
    "PropertyResult",
    "Verdict",
    "VerdictSummary",
    "check_trees",
    "format_verdict",
    "verify",
]
