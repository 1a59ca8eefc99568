"""The probe inputs of sampled convergence property verification (CPV), one layout per form.

All probes are fixed (seeded), float64, and shared by the per-candidate verifier
(``symbolic.cpv.verify``) and the batched screen (``symbolic.cpv.batch``), so both judge a
loss on the same points.

Classification (``sigmoid``, ``softmax``): logits x ∈ [−100, 100], the range a detector
produces, on a sinh-spaced grid (spacing 0.01 near 0, about 1 at ±100), plus the authors'
own grid linspace(−10, 10, 200) for the coarse check they used (kept verbatim so that our
screen is never looser than theirs), plus one point a step h inside the far end for a
finite-difference slope. A *curve* is one setting of everything but the varied logit,
ordered so that the loss should fall along it and the label is reached at its last point:

* ``sigmoid``: the positive (y = 1, w = 1) in x, the negative (y = 0, w = 0) in −x, and the
  IoU-aware positives (y = 1, w ∈ {0.1, 0.25, 0.5, 0.75}), which are not required to fall.
* ``softmax`` with C = 3 classes (two foreground classes and background, last): the
  smallest size where the target competes with more than one class and both a foreground
  and a background target have a foreground competitor; C = 2 would collapse softmax to
  σ(a0 − a1). The target's logit is varied with the other two held at 8 seeded draws from
  N(0, 3²) and at the four corners {−100, 100}²; foreground target (class 0) with
  w = IoU ∈ {0.5, 0.75, 1} (a Faster R-CNN RoI is foreground at IoU ≥ 0.5) and background
  target (class 2) with w = 1. Convergence is checked where the prediction can approach the
  label, i.e. with the other logits at most 60 (the target reaches 100). Non-target
  ("negative") entries: a foreground logit varied with the target foreground (w = 1) or
  background, the other two logits at the same settings; the loss must not decrease as it
  rises (the negative's rule of the ``sigmoid`` form). The dense grid has 401 points here.

Regression (``reg``): ground-truth boxes of sides (a, r·a), a ∈ {1, 3, 10, 30, 100, 316},
r ∈ {1, 2, 1/3} (areas 1/3 to 2·10⁵ px²); paths from the perfect match: translation in 8
directions to offset 1 box size (IoU 0; 48 linear steps) and on to a gap of 3 box sizes
(48 geometric gap steps from 0.01), scaling up ×1→×10 and down ×1→×0.01, and aspect change
(width ×k, height ÷k and the reverse, k 1→10), 96 points per path; (i, u, e) from
``forms.box_areas``; then the form's seeded probe inputs (random box pairs).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from symbolic.forms import box_areas, get_form

LOGIT_LIMIT = 100.0
DENSE_POINTS = 1001
SINH_STRETCH = 5.3  # spacing 100·k/sinh(k)·Δs ≈ 0.01 at 0 for 1001 points
COARSE_GRID = np.linspace(-10, 10, 200)  # the authors' grid (deap_screen.passes)
FD_STEP = 1e-3
IOU_VALUES = (0.1, 0.25, 0.5, 0.75)
SOFTMAX_CLASSES = 3
SOFTMAX_POINTS = 401  # 72 curves: a coarser dense grid keeps the probe at 29k rows
SOFTMAX_IOUS = (0.5, 0.75, 1.0)
SOFTMAX_DRAWS, SOFTMAX_SEED, CONVERGENCE_OTHER_MAX = 8, 20210209, 60.0
BOX_SIDES = (1.0, 3.0, 10.0, 30.0, 100.0, 316.0)
BOX_ASPECTS = (1.0, 2.0, 1.0 / 3.0)
PATH_POINTS, OVERLAP_POINTS = 96, 48  # translation: 48 overlapping steps, then 48 gap steps
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


def logit_grid(points: int = DENSE_POINTS) -> np.ndarray:
    """The dense sinh-spaced logit grid on [−100, 100], symmetric, including 0 and ±100."""
    s = np.linspace(-1.0, 1.0, points)
    grid = LOGIT_LIMIT * np.sinh(SINH_STRETCH * s) / np.sinh(SINH_STRETCH)
    grid[0], grid[-1] = -LOGIT_LIMIT, LOGIT_LIMIT
    return grid


@dataclasses.dataclass(frozen=True)
class Curve:
    """Rows of the probe along which a loss must fall, ending where the prediction is the label."""

    name: str
    rows: np.ndarray  # indices into the probe, ordered so the loss should not increase
    logits: np.ndarray  # the varied logit at those rows
    fd_row: int  # the row a step FD_STEP before the end, for the end slope
    required: bool  # monotonicity demanded (False for IoU-aware positives)
    converges: bool  # convergence checked on this curve


@dataclasses.dataclass(frozen=True)
class ClassificationProbe:
    """Inputs of every classification curve stacked along the sample axis."""

    form: str
    inputs: dict[str, np.ndarray]
    curves: tuple[Curve, ...]
    coarse_positive: np.ndarray | None  # rows of the authors' check (sigmoid only)
    coarse_negative: np.ndarray | None
    iou_curves: tuple[tuple[float, Curve], ...]  # (w, curve) for the IoU-aware property, w ascending


class _Stack:
    """Collects input segments and hands out their row indices."""

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []
        self.size = 0

    def add(self, **columns) -> np.ndarray:
        n = len(next(iter(columns.values())))
        self.parts.append(columns)
        self.size += n
        return np.arange(self.size - n, self.size)

    def inputs(self) -> dict[str, np.ndarray]:
        out = {name: np.concatenate([part[name] for part in self.parts]) for name in self.parts[0]}
        for array in out.values():
            array.setflags(write=False)
        return out


def _sigmoid_probe() -> ClassificationProbe:
    grid, stack = logit_grid(), _Stack()

    def column(x, y, w):
        ones = np.ones_like(x)
        return stack.add(x=x, y=y * ones, w=w * ones)

    positive = column(grid, 1.0, 1.0)
    negative = column(grid, 0.0, 0.0)
    ious = [column(grid, 1.0, w) for w in IOU_VALUES]
    coarse_positive, coarse_negative = column(COARSE_GRID, 1.0, 1.0), column(COARSE_GRID, 0.0, 0.0)
    fd_positive = column(np.array([LOGIT_LIMIT - FD_STEP]), 1.0, 1.0)[0]
    fd_negative = column(np.array([-LOGIT_LIMIT + FD_STEP]), 0.0, 0.0)[0]
    curves = (
        Curve("positive (y=1, w=1)", positive, grid, fd_positive, True, True),
        Curve("negative (y=0, w=0)", negative[::-1], grid[::-1], fd_negative, True, True),
    )
    iou_curves = tuple((w, Curve(f"positive (y=1, w={w})", rows, grid, -1, False, False))
                       for w, rows in zip(IOU_VALUES, ious, strict=True)) + ((1.0, curves[0]),)
    return ClassificationProbe("sigmoid", stack.inputs(), curves, coarse_positive, coarse_negative, iou_curves)


def softmax_settings() -> np.ndarray:
    """The other two logits' settings [S, 2]: 8 seeded N(0, 3²) draws, then the corners of [−100, 100]²."""
    draws = np.random.default_rng(SOFTMAX_SEED).normal(0.0, 3.0, (SOFTMAX_DRAWS, 2))
    corners = np.array([[-100.0, -100.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]])
    return np.concatenate([draws, corners])


def _softmax_probe() -> ClassificationProbe:
    grid, stack, curves = logit_grid(SOFTMAX_POINTS), _Stack(), []
    c = SOFTMAX_CLASSES
    targets = [(0, 0, w, f"foreground target (w={w})") for w in SOFTMAX_IOUS] + [(c - 1, c - 1, 1.0,
                                                                                   "background target")]
    # a non-target ("negative") entry's logit: the loss must not decrease as it rises
    targets += [(0, 1, 1.0, "foreground target (w=1), other foreground logit varied"),
                (c - 1, 0, 1.0, "background target, foreground logit varied")]

    def rows(target, varied, w, logits, others):
        x = np.empty((len(logits), c))
        x[:, varied] = logits
        x[:, [k for k in range(c) if k != varied]] = others
        y = np.zeros((len(logits), c))
        y[:, target] = 1.0
        return stack.add(x=x, y=y, w=np.full((len(logits), c), w))

    for target, varied, w, label in targets:
        for others in softmax_settings():
            setting = ", ".join(f"{v:.3g}" for v in others)
            curve_rows = rows(target, varied, w, grid, others)
            if varied != target:
                curves.append(Curve(f"{label}, other logits ({setting})", curve_rows[::-1], grid[::-1], -1, True,
                                    False))
                continue
            fd_row = rows(target, varied, w, np.array([LOGIT_LIMIT - FD_STEP]), others)[0]
            converges = bool(others.max() <= CONVERGENCE_OTHER_MAX)
            curves.append(Curve(f"{label}, other logits ({setting})", curve_rows, grid, fd_row, True, converges))
    return ClassificationProbe("softmax", stack.inputs(), tuple(curves), None, None, ())


@dataclasses.dataclass(frozen=True)
class RegressionProbe:
    """All box paths, each PATH_POINTS rows long, then the form's random box pairs."""

    inputs: dict[str, np.ndarray]  # i, u, e
    paths: np.ndarray  # int [P, PATH_POINTS]: rows of each path, moving away from the ground truth
    descriptions: tuple[str, ...]  # per path
    parameters: np.ndarray  # [P, PATH_POINTS]: the path parameter (offset, scale or aspect factor)
    translation: np.ndarray  # bool [P]: a translation path (has a non-overlap part)
    sample_rows: np.ndarray  # rows of the form's seeded probe inputs (forms.Form.probe_inputs)


def _box(cx, cy, width, height):
    return np.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], axis=-1)


def _regression_probe() -> RegressionProbe:
    stack, paths, descriptions, parameters, translation = _Stack(), [], [], [], []
    overlap = np.linspace(0.0, 1.0, OVERLAP_POINTS)
    offsets = np.concatenate([overlap, 1.0 + np.geomspace(0.01, 3.0, PATH_POINTS - OVERLAP_POINTS)])
    factors = {"scale up": np.geomspace(1.0, 10.0, PATH_POINTS), "scale down": np.geomspace(1.0, 0.01, PATH_POINTS),
               "wider": np.geomspace(1.0, 10.0, PATH_POINTS), "taller": np.geomspace(1.0, 10.0, PATH_POINTS)}

    def add_path(pred, gt, description, parameter, is_translation):
        i, u, e = box_areas(pred, gt)
        paths.append(stack.add(i=i, u=u, e=e))
        descriptions.append(description)
        parameters.append(parameter)
        translation.append(is_translation)

    for a in BOX_SIDES:
        for r in BOX_ASPECTS:
            width, height = a, r * a
            gt = np.tile(_box(0.0, 0.0, width, height), (PATH_POINTS, 1))
            box = f"box {width:g}x{height:.4g}"
            for dx, dy in DIRECTIONS:
                pred = _box(dx * offsets * width, dy * offsets * height, width, height)
                add_path(pred, gt, f"{box}, translated ({dx:+d}, {dy:+d})·t box sizes", offsets, True)
            for kind, k in factors.items():
                sx, sy = {"scale up": (k, k), "scale down": (k, k), "wider": (k, 1 / k), "taller": (1 / k, k)}[kind]
                add_path(_box(0.0, 0.0, width * sx, height * sy), gt, f"{box}, {kind} by factor t", k, False)
    sample_rows = stack.add(**get_form("reg").probe_inputs())
    return RegressionProbe(stack.inputs(), np.array(paths), tuple(descriptions), np.array(parameters),
                           np.array(translation), sample_rows)


@functools.cache
def probe_for(form: str) -> ClassificationProbe | RegressionProbe:
    """The (cached, read-only) sampled-CPV probe of a form."""
    return {"sigmoid": _sigmoid_probe, "softmax": _softmax_probe, "reg": _regression_probe}[form]()


def row_inputs(probe, row: int) -> dict[str, object]:
    """The inputs at one row of a probe, as plain numbers (lists for softmax vectors)."""
    out = {}
    for name, array in probe.inputs.items():
        value = array[row]
        out[name] = [float(v) for v in value] if np.ndim(value) else float(value)
    return out
