"""Sampled distance-loss consistency of one regression candidate, on every path of the probe.

The principle (``regression_proofs``) is one for every regression loss: the loss never
falls as the predicted box moves away from the ground truth (translated in any of 8
directions, scaled up or down, aspect changed), at every box scale, and it rises from IoU
1 to the end of each path (to IoU 0 for translations). Loss ≥ 0 is *not* demanded: both
published CSE-Autoloss regression losses are negative near a perfect match. Whether the
loss keeps growing once the boxes are disjoint is reported with the verdict, for every
loss alike, and required of none.
"""

from __future__ import annotations

import numpy as np

from symbolic.cpv.grids import probe_for, row_inputs
from symbolic.cpv.regression_proofs import AREA_RANGE
from symbolic.cpv.rules import REASONS, grows_once_disjoint, regression_rules
from symbolic.cpv.verdict import Sampled
from symbolic.lowering import evaluate_numpy


def _counterexample(rules, values, probe) -> tuple[str, dict]:
    outcome = rules["distance_consistency"]
    row = int(outcome.row[0])
    point = row_inputs(probe, row)
    point["loss"] = float(values[row])
    where = np.argwhere(probe.paths == row)
    if len(where):
        path, step = where[0]
        point["path"] = probe.descriptions[path]
        point["t"] = float(probe.parameters[path, step])
        if step > 0:
            point["loss at the previous step"] = float(values[probe.paths[path, step - 1]])
    return REASONS[int(outcome.code[0])], point


def sampled_regression(candidate) -> list[Sampled]:
    """Distance-loss consistency of one ``reg`` candidate on all paths of the probe."""
    probe = probe_for("reg")
    values = evaluate_numpy(candidate.expr, candidate.form, probe.inputs)
    rules = regression_rules(values[None], probe)
    grows = "grows" if grows_once_disjoint(values[None], probe)[0] else "is flat (as IoU is)"
    evidence = (f"sampled on {len(probe.paths)} paths x {probe.paths.shape[1]} points, box areas "
                f"{AREA_RANGE[0]:.3g} to {AREA_RANGE[1]:.3g} px^2; once the boxes are disjoint the loss {grows} "
                "(reported, not required)")
    if rules["distance_consistency"].ok[0]:
        return [Sampled("distance_consistency", True, True, evidence)]
    reason, point = _counterexample(rules, values, probe)
    return [Sampled("distance_consistency", True, False, evidence, reason, point)]
