"""Label values substituted as training evaluates them: exact where defined, the guarded value where not."""

import random

import numpy as np
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv.substitution import substitute
from symbolic.forms import FORMS, i, u, w, x, y
from symbolic.lowering import evaluate_numpy
from symbolic.variation import random_tree


def test_undefined_constants_take_the_numerics_value():
    assert substitute(Candidate.parse("erf_s(-x)/log(y)", "sigmoid").expr, {y: 0, w: 0}).has(sympy.Float)
    assert substitute(Candidate.parse("u/i", "reg").expr, {i: 0}) == sympy.Float(1e12) * u
    assert substitute(sympy.log(y) + x, {y: 1}) == x  # defined: exact


def test_substituted_formulas_agree_with_the_numerics_at_the_labels():
    rng, checked = random.Random(8), 0
    logits = np.linspace(-6, 6, 13)
    while checked < 60:
        try:
            candidate = Candidate.from_tree(random_tree(rng, "sigmoid", max_depth=4), "sigmoid")
        except InvalidCandidate:
            continue
        for label in (0, 1):
            loss = substitute(candidate.expr, {y: label, w: label})
            if loss.has(sympy.zoo, sympy.nan, sympy.I) or loss.free_symbols - {x}:
                continue
            expected = evaluate_numpy(candidate.expr, FORMS["sigmoid"], {"x": logits, "y": 0 * logits + label,
                                                                         "w": 0 * logits + label})
            got = evaluate_numpy(loss, FORMS["sigmoid"], {"x": logits, "y": 0 * logits, "w": 0 * logits})
            ok = np.isclose(got, expected, rtol=1e-9, atol=1e-9) | ~np.isfinite(expected)
            assert ok.all(), (candidate.infix(), label, loss)
            checked += 1
