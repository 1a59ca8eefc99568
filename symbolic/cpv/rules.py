"""The sampled CPV rules: vectorized pass/fail of every property for T losses at once.

Input: the values of T losses on a form's probe (``grids.probe_for``), float64 [T, N],
and for classification optionally exact slopes dL/dx at the same rows (otherwise slopes
are finite differences). Output: one ``RuleOutcome`` per property, with, per loss, the
verdict, an offending probe row and a reason code (``REASONS``) for counterexamples.

Tolerances (relative to max(1, |value|), so they scale with the loss and absorb round-off):
a step *against* the required direction may be at most 1e-9; the whole curve/path must
move by more than 1e-6 in the required direction (else the loss is "flat"); the slope at
the far end must be at most 1e-3 of the largest slope on the range (at least 1), as in the
authors' check; growth once the boxes are disjoint (reported, not required) means a rise of
more than 1e-12 per step. For the
``sigmoid`` form the authors' own check (``deap_screen.passes``: linspace(−10, 10, 200),
absolute tolerances) is applied verbatim on top, so a loss we pass also passes theirs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from symbolic.cpv.grids import FD_STEP, OVERLAP_POINTS, ClassificationProbe, RegressionProbe

STEP_RTOL, FLAT_RTOL, SLOPE_RTOL, STRICT_RTOL = 1e-9, 1e-6, 1e-3, 1e-12
FLOAT32_MAX = float(np.finfo(np.float32).max)
REASONS = {
    1: "the loss moves against the required direction",
    2: "the loss is flat over the range (it does not fall by a margin)",
    3: "the authors' coarse check (linspace(-10, 10, 200)) finds a rise or no fall",
    4: "the slope at the far end does not vanish",
    5: "the minimum is not at the far end",
    6: "the authors' coarse check finds a non-vanishing last step",
    7: "the optimum moves away from 1 as w grows",
    8: "a value is not finite (or overflows float32)",
    11: "the loss decreases as the box moves away",
    12: "the loss does not grow from IoU 1 to the end of the path (flat)",
}


@dataclasses.dataclass(frozen=True)
class RuleOutcome:
    """One property's sampled verdict for T losses."""

    ok: np.ndarray  # bool [T]
    row: np.ndarray  # int [T]: an offending probe row, -1 when none
    code: np.ndarray  # int [T]: key of REASONS, 0 when ok

    @classmethod
    def passing(cls, count: int) -> RuleOutcome:
        """All T losses pass."""
        return cls(np.ones(count, bool), np.full(count, -1), np.zeros(count, int))

    def fail(self, failing: np.ndarray, rows: np.ndarray, code: int) -> RuleOutcome:
        """Mark ``failing`` losses (that still pass) as failed at ``rows`` with ``code``."""
        new = failing & self.ok
        return RuleOutcome(self.ok & ~failing, np.where(new, rows, self.row), np.where(new, code, self.code))


def _scale(*arrays):
    return np.maximum.reduce([np.ones_like(arrays[0]), *[np.abs(a) for a in arrays]])


def _first(flags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per loss, the row of the first flagged column (flags [T, n], rows [n])."""
    return rows[np.argmax(flags, axis=1)]


def finiteness_rule(values: np.ndarray) -> RuleOutcome:
    """Every value finite and within float32 range."""
    bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
    return RuleOutcome.passing(len(values)).fail(bad.any(axis=1), np.argmax(bad, axis=1), 8)


def _falls(outcome, values, rows):
    curve = values[:, rows]
    step = np.diff(curve, axis=1)
    rises = step > STEP_RTOL * _scale(curve[:, :-1], curve[:, 1:])
    outcome = outcome.fail(rises.any(axis=1), _first(rises, rows[1:]), 1)
    fall = curve[:, 0] - curve[:, -1]
    flat = ~(fall > FLAT_RTOL * _scale(curve[:, 0], curve[:, -1]))
    return outcome.fail(flat, np.full(len(values), rows[-1]), 2)


def _coarse(values, probe):
    pos, neg = values[:, probe.coarse_positive], values[:, probe.coarse_negative]
    dp, dn = np.diff(pos, axis=1), np.diff(neg, axis=1)
    mono = (dp <= 1e-9).all(1) & (dn >= -1e-9).all(1) & (dp.min(1) < -1e-6) & (dn.max(1) > 1e-6)
    conv = (np.abs(dp[:, -1]) < 1e-3 * np.maximum(1.0, np.abs(dp).max(1))) & (
        np.abs(dn[:, 0]) < 1e-3 * np.maximum(1.0, np.abs(dn).max(1)))
    return mono, conv


def classification_rules(values: np.ndarray, probe: ClassificationProbe,
                         slopes: np.ndarray | None = None) -> dict[str, RuleOutcome]:
    """Monotonicity, convergence and (sigmoid) IoU-awareness of T losses; slopes exact or FD."""
    count = len(values)
    mono, conv = RuleOutcome.passing(count), RuleOutcome.passing(count)
    with np.errstate(all="ignore"):
        for curve in probe.curves:
            mono = _falls(mono, values, curve.rows)
            if curve.converges:
                conv = _converges(conv, values, slopes, curve)
        if probe.coarse_positive is not None:
            coarse_mono, coarse_conv = _coarse(values, probe)
            mono = mono.fail(~coarse_mono, np.full(count, probe.coarse_positive[-1]), 3)
            conv = conv.fail(~coarse_conv, np.full(count, probe.coarse_positive[-1]), 6)
        out = {"monotonicity": mono, "convergence": conv}
        if probe.iou_curves:
            out["iou_aware"] = _iou_aware(values, probe)
    return out


def _converges(outcome, values, slopes, curve):
    curve_values = values[:, curve.rows]
    end_row = curve.rows[-1]
    if slopes is not None:
        curve_slopes = slopes[:, curve.rows]
        end_slope = slopes[:, end_row]
    else:
        curve_slopes = np.diff(curve_values, axis=1) / np.diff(curve.logits)
        end = curve.logits[-1]
        end_slope = (values[:, end_row] - values[:, curve.fd_row]) / (np.sign(end) * FD_STEP)
    finite_max = np.where(np.isfinite(curve_slopes), np.abs(curve_slopes), 0.0).max(axis=1)
    steep = ~(np.abs(end_slope) <= SLOPE_RTOL * np.maximum(1.0, finite_max))
    outcome = outcome.fail(steep, np.full(len(values), end_row), 4)
    low = curve_values.min(axis=1)
    not_at_end = ~(curve_values[:, -1] <= low + STEP_RTOL * _scale(low))
    return outcome.fail(not_at_end, np.full(len(values), end_row), 5)


def _iou_aware(values, probe):
    optimum = []
    for _, curve in probe.iou_curves:
        curve_values = values[:, curve.rows]
        low = curve_values.min(axis=1, keepdims=True)
        near = curve_values <= low + STEP_RTOL * _scale(low)
        last = curve_values.shape[1] - 1 - np.argmax(near[:, ::-1], axis=1)
        optimum.append(curve.logits[last])
    optimum = np.stack(optimum, axis=1)
    backwards = np.diff(optimum, axis=1) < 0
    rows = np.array([curve.rows[-1] for _, curve in probe.iou_curves[1:]])
    return RuleOutcome.passing(len(values)).fail(backwards.any(axis=1), _first(backwards, rows), 7)


def grows_once_disjoint(values: np.ndarray, probe: RegressionProbe) -> np.ndarray:
    """bool [T]: the loss grows strictly at every step of every translation path after the boxes part.

    Not required of any loss (see ``regression_proofs``: the IoU loss is flat there); reported.
    """
    paths = values[:, probe.paths[probe.translation, OVERLAP_POINTS - 1:]]  # [T, P, n]: contact, then gaps
    with np.errstate(all="ignore"):
        step = np.diff(paths, axis=2)
        scale = _scale(paths[:, :, :-1], paths[:, :, 1:])
        return (step > STRICT_RTOL * scale).reshape(len(values), -1).all(axis=1)


def regression_rules(values: np.ndarray, probe: RegressionProbe) -> dict[str, RuleOutcome]:
    """Distance-loss consistency of T losses along every box path: never falls, and rises over each path."""
    count = len(values)
    outcome = RuleOutcome.passing(count)
    paths = values[:, probe.paths]  # [T, P, n]
    with np.errstate(all="ignore"):
        step = np.diff(paths, axis=2)
        scale = _scale(paths[:, :, :-1], paths[:, :, 1:])
        falls = (step < -STEP_RTOL * scale).reshape(count, -1)
        step_rows = probe.paths[:, 1:].reshape(-1)
        outcome = outcome.fail(falls.any(axis=1), _first(falls, step_rows), 11)
        end = np.where(probe.translation, OVERLAP_POINTS - 1, paths.shape[2] - 1)
        reached = np.take_along_axis(paths, np.broadcast_to(end[None, :, None], (count, len(end), 1)), 2)[..., 0]
        flat = ~(reached - paths[:, :, 0] > FLAT_RTOL * _scale(reached, paths[:, :, 0]))
        end_rows = probe.paths[np.arange(len(end)), end]
        outcome = outcome.fail(flat.any(axis=1), _first(flat, end_rows), 12)
    return {"distance_consistency": outcome}
