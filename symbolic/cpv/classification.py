"""Sampled classification CPV of one candidate (``sigmoid`` and ``softmax`` forms).

Properties (the probes and tolerances are those of ``grids`` and ``rules``):

* ``monotonicity`` (required): a positive's loss does not increase with its logit over
  [−100, 100]; a negative's does not decrease; and each falls by a margin over the range.
* ``convergence`` (required): |dL/dx| vanishes at the far end (x = 100 for a positive,
  −100 for a negative) and the minimum over the range lies there.
* ``iou_aware`` (required, ``sigmoid``): for positives with w < 1 monotonicity is not
  demanded (CSE-Autoloss-B is minimal below probability 1 there, by design); instead the
  optimum must not move away from 1 as w grows through 0.1, 0.25, 0.5, 0.75, 1.

Slopes are finite differences of the guarded float64 values, as in the batched screen: the
sampled checks judge what training evaluates. The proofs (``classification_proofs``) use
the formula's own derivative, over all real logits and any number of classes.
"""

from __future__ import annotations

import numpy as np

from symbolic.cpv.grids import probe_for, row_inputs
from symbolic.cpv.rules import REASONS, classification_rules
from symbolic.cpv.verdict import Sampled
from symbolic.lowering import evaluate_numpy


def sampled_rules(candidate) -> tuple[dict, np.ndarray]:
    """Sampled rule outcomes of one candidate and its values on the form's probe."""
    probe = probe_for(candidate.form.name)
    values = evaluate_numpy(candidate.expr, candidate.form, probe.inputs)
    return classification_rules(values[None], probe), values


def counterexample(candidate, rules, name: str, values: np.ndarray) -> tuple[str, dict]:
    """The reason and the offending inputs/value of a failed sampled property."""
    probe = probe_for(candidate.form.name)
    row = int(rules[name].row[0])
    point = row_inputs(probe, row)
    point["loss"] = float(values[row])
    return REASONS[int(rules[name].code[0])], point


def sampled_classification(candidate) -> list[Sampled]:
    """Monotonicity, convergence and (sigmoid) IoU-awareness checked on the form's probe."""
    rules, values = sampled_rules(candidate)
    probe = probe_for(candidate.form.name)
    curves = f"{len(probe.curves)} curve(s) of {len(probe.curves[0].rows)} logits in [-100, 100]"
    if probe.coarse_positive is not None:
        curves += " plus the authors' linspace(-10, 10, 200) check"
    evidence = {"monotonicity": f"sampled on {curves}",
                "convergence": f"sampled on {curves}; end slope from finite differences of the guarded values"}
    if "iou_aware" in rules:
        points = len(probe.iou_curves) * len(probe.iou_curves[0][1].rows)
        evidence["iou_aware"] = f"optimum non-decreasing in w over w in {{0.1, 0.25, 0.5, 0.75, 1}} ({points} points)"
    out = []
    for name, where in evidence.items():
        if rules[name].ok[0]:
            out.append(Sampled(name, True, True, where))
        else:
            reason, point = counterexample(candidate, rules, name, values)
            out.append(Sampled(name, True, False, where, reason, point))
    return out
