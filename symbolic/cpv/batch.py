"""Batched sampled CPV of light trees: a whole generation judged in one vectorized pass per stage.

``check_trees(trees, form)`` evaluates every tree on the form's CPV probe with
``numeric.evaluate_trees`` (shared subtrees computed once across the batch) and applies
the same rules as the per-candidate verifier (``rules``), with finite-difference
slopes. It runs in two stages so that most trees cost only a few dozen points:

1. a screen on a subsample of the probe (every 50th logit of each curve with both ends, or
   every 8th point of each box path): finite values, no move against the required
   direction beyond a loose 1e-5 (relative) between the subsampled points, and (for
   classification) the fall over [−100, 100] by the flatness margin. Each condition is
   implied by the full rules (up to the accumulated step tolerance), so it only removes
   trees the full check would remove;
2. the full probe and all rules on the survivors of stage 1; then, for trees that pass,
   the domain check: no log or sqrt receives a negative argument on the probe (counted
   under finiteness; ``verify`` checks the same on the SymPy expression).

The search's filter funnel (``symbolic.funnel``): generate → value dedup → ``check_trees`` →
survivors → ``Candidate.from_tree``, canonical and gradient dedup → ``verify`` (proof attempts and
the float32 finiteness check).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from symbolic.cpv.grids import probe_for
from symbolic.cpv.rules import FLAT_RTOL, FLOAT32_MAX, classification_rules, finiteness_rule, regression_rules
from symbolic.forms import get_form
from symbolic.numeric import evaluate_trees, tree_values
from symbolic.tree import Tree, iter_paths

SCREEN_RTOL = 1e-5
CURVE_STRIDE, PATH_STRIDE = 50, 8


@dataclasses.dataclass(frozen=True)
class BatchChecks:
    """Per-tree outcome of the batched sampled CPV; rows follow ``trees``."""

    trees: list[Tree]
    form: str
    passed: np.ndarray  # bool [T]
    first_failure: list[str | None]  # the first failed property ("finiteness", "monotonicity", ...) or None
    screened_out: np.ndarray  # bool [T]: rejected by the stage-1 subsample screen
    properties: dict[str, np.ndarray]  # property -> bool [T] passed; False also where not reached

    def survivors(self) -> list[Tree]:
        """The trees that passed every sampled property."""
        return [tree for tree, ok in zip(self.trees, self.passed, strict=True) if ok]

    def failure_counts(self) -> dict[str, int]:
        """How many trees failed first at each property (passing trees under "passed")."""
        counts: dict[str, int] = {}
        for name in self.first_failure:
            key = name or "passed"
            counts[key] = counts.get(key, 0) + 1
        return counts


def _screen_rows(form: str):
    """Stage-1 subsample: (rows of the probe, list of row groups that must fall / not decrease)."""
    probe = probe_for(form)
    if form == "reg":
        groups = [np.r_[path[::PATH_STRIDE], path[-1]] for path in probe.paths]
    else:
        groups = [np.r_[curve.rows[::CURVE_STRIDE], curve.rows[-1]] for curve in probe.curves if curve.required]
    rows = np.unique(np.concatenate(groups))
    position = {row: k for k, row in enumerate(rows)}
    return rows, [np.array([position[r] for r in group]) for group in groups]


_SCREENS: dict[str, tuple] = {}


def _screen(form: str):
    if form not in _SCREENS:
        rows, groups = _screen_rows(form)
        inputs = {name: np.ascontiguousarray(array[rows]) for name, array in probe_for(form).inputs.items()}
        _SCREENS[form] = (inputs, groups)
    return _SCREENS[form]


def screen_stage(values: np.ndarray, groups, regression: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 verdicts on subsampled values [T, n]: (finite, monotone) bool [T] each."""
    finite = np.isfinite(values).all(axis=1) & (np.abs(values) <= FLOAT32_MAX).all(axis=1)
    monotone = np.ones(len(values), dtype=bool)
    with np.errstate(all="ignore"):
        for group in groups:
            curve = values[:, group]
            step = np.diff(curve, axis=1)
            scale = np.maximum(1.0, np.maximum(np.abs(curve[:, :-1]), np.abs(curve[:, 1:])))
            if regression:
                monotone &= (step >= -SCREEN_RTOL * scale).all(axis=1)
            else:
                monotone &= (step <= SCREEN_RTOL * scale).all(axis=1)
                ends = np.maximum(1.0, np.maximum(np.abs(curve[:, 0]), np.abs(curve[:, -1])))
                monotone &= curve[:, 0] - curve[:, -1] > FLAT_RTOL * ends
    return finite, monotone


def full_rules(values: np.ndarray, form: str) -> dict:
    """All sampled rule outcomes on the full probe (finite-difference slopes), finiteness first."""
    probe = probe_for(form)
    rules = {"finiteness": finiteness_rule(values)}
    rules.update(regression_rules(values, probe) if form == "reg" else classification_rules(values, probe))
    return rules


def check_trees(trees: Sequence[Tree], form: str) -> BatchChecks:
    """Sampled CPV of valid light trees of ``form``, vectorized over the batch (two stages)."""
    form = get_form(form).name
    trees = list(trees)
    count = len(trees)
    regression = form == "reg"
    names = ["finiteness", "monotonicity" if not regression else "distance_consistency"]
    inputs, groups = _screen(form)
    finite, monotone = screen_stage(evaluate_trees(trees, inputs, form), groups, regression) if count else (
        np.zeros(0, bool), np.zeros(0, bool))
    first: list[str | None] = [None] * count
    for row in np.flatnonzero(~finite):
        first[row] = names[0]
    for row in np.flatnonzero(finite & ~monotone):
        first[row] = names[1]
    survivors = np.flatnonzero(finite & monotone)
    passed = np.zeros(count, dtype=bool)
    property_names = ["finiteness"] + (["distance_consistency"] if regression else
                                       ["monotonicity", "convergence"] + (["iou_aware"] if form == "sigmoid" else []))
    properties = {name: np.zeros(count, dtype=bool) for name in property_names}
    properties["finiteness"][finite] = True
    if len(survivors):
        values = evaluate_trees([trees[k] for k in survivors], probe_for(form).inputs, form)
        rules = full_rules(values, form)
        ok_all = np.ones(len(survivors), dtype=bool)
        for name in property_names:
            ok = rules[name].ok
            properties[name][survivors] = ok if name != "finiteness" else ok
            for k in np.flatnonzero(ok_all & ~ok):
                first[survivors[k]] = name
            ok_all &= ok
        passed[survivors] = ok_all
        properties["finiteness"][survivors] = rules["finiteness"].ok
        for k in np.flatnonzero(ok_all):
            if outside_domain(trees[survivors[k]], probe_for(form).inputs):
                first[survivors[k]] = "finiteness"
                passed[survivors[k]] = properties["finiteness"][survivors[k]] = False
    return BatchChecks(trees, form, passed, first, ~(finite & monotone), properties)


def outside_domain(tree: Tree, inputs) -> bool:
    """True when a log or sqrt in ``tree`` gets a negative argument somewhere on ``inputs``.

    The guards make such a loss finite (log and sqrt floor their argument), but the formula
    is undefined there; the authors' numerics give NaN and reject it, and so do we.
    """
    for _, node in iter_paths(tree):
        if isinstance(node, tuple) and node[0] in ("log", "sqrt"):
            with np.errstate(all="ignore"):
                argument = np.asarray(tree_values(node[1], inputs))
            if (argument < 0).any():
                return True
    return False
