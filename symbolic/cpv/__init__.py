"""Convergence property verification (CPV): verdicts, finiteness, the batched sampled check,
classification and regression properties, sign proofs, interval arithmetic, probes and rules.
"""

from symbolic.cpv.batch import check_trees
from symbolic.cpv.verify import Verdict, format_verdict, verify

__all__ = ["Verdict", "check_trees", "format_verdict", "verify"]
