"""The mathematics of loss candidates: operators, forms, candidates, canonical form and dedup,
the filter funnel, the safe parser and printers, variation, numeric screening, convergence
verification and the lowering to JAX. No detector code lives here.
"""

from symbolic.candidate import Candidate, to_jax
from symbolic.canonical import InvalidCandidate, bounded_simplify
from symbolic.cpv import Verdict, check_trees, format_verdict, verify
from symbolic.forms import FORMS, Form, get_form
from symbolic.funnel import DedupState, Funnel
from symbolic.operators import OPERATORS, operators_for
from symbolic.parser import ParseError, parse_tree
from symbolic.screening import screen, screen_trees
from symbolic.variation import crossover, mutate, random_candidate, random_tree
from symbolic.zoo import KNOWN_LOSSES, known_loss

__all__ = [
    "FORMS",
    "KNOWN_LOSSES",
    "OPERATORS",
    "Candidate",
    "DedupState",
    "Form",
    "Funnel",
    "InvalidCandidate",
    "ParseError",
    "Verdict",
    "bounded_simplify",
    "check_trees",
    "crossover",
    "format_verdict",
    "get_form",
    "known_loss",
    "mutate",
    "operators_for",
    "parse_tree",
    "random_candidate",
    "random_tree",
    "screen",
    "screen_trees",
    "to_jax",
    "verify",
]
