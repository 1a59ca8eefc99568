"""Plots of one loss beside its baselines: classification loss and slope against the logit, regression loss
against IoU and against the distance a box is moved.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global state, no display);
``save_figure`` writes one to a file. Losses are evaluated with ``Candidate.to_jax()`` and slopes with
``jax.grad`` of it, so a plot shows exactly what a detector would train with.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from autoloss.export import write_output
from symbolic.candidate import Candidate
from symbolic.forms import box_areas
from symbolic.zoo import known_loss

SOFTMAX_CLASSES = 3  # two foreground classes and the background (last)
LOGITS = np.linspace(-8.0, 8.0, 161)
DISTANCES = np.linspace(0.0, 3.0, 151)  # how far a box is moved, in box sides
CANDIDATE_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
BASELINE_STYLES = ({"color": "black", "linestyle": "--"}, {"color": "dimgray", "linestyle": ":"},
                   {"color": "gray", "linestyle": "-."})
X_LABELS = {"sigmoid": ("logit (label 1)", "logit (label 0)"),
            "softmax": ("logit of the target class (class 0)", "logit of the background class")}
DEFAULT_BASELINES = {"sigmoid": ("bce", "focal"), "softmax": ("ce",), "reg": ("iou", "giou")}


def save_figure(figure: Figure, path: str, *, dpi: int = 120) -> None:
    """Write ``figure`` to ``path`` in the format its extension names, through a temporary file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(path)[1][1:].lower() or "png", dpi=dpi)
    write_output(path, buffer.getvalue())


def _baselines(names: Sequence[str], form_name: str) -> list[tuple[str, Candidate]]:
    losses = [(name, known_loss(name)) for name in names]
    wrong = [name for name, loss in losses if loss.form != form_name]
    if wrong:
        raise ValueError(f"baseline(s) {', '.join(wrong)} are not {form_name}-form losses")
    return [(name, loss.candidate) for name, loss in losses]


def _loss_and_slope(candidate: Candidate, args: list[np.ndarray], wrt: int = 0):
    """The loss per sample and its derivative in input ``wrt``, as float64 NumPy arrays."""
    fn = candidate.to_jax()
    args = [jnp.asarray(a, jnp.float32) for a in args]

    def total(value):
        return jnp.sum(fn(*args[:wrt], value, *args[wrt + 1:]))

    slope = jax.grad(total)(args[wrt])
    return np.asarray(fn(*args), np.float64), np.asarray(slope, np.float64)


def _classification_inputs(form_name: str, ious: Sequence[float]):
    """Inputs for the positive curves (one per IoU) then the negative one, and the varied entry's column."""
    n, curves = len(LOGITS), len(ious) + 1
    if form_name == "sigmoid":
        x = np.tile(LOGITS, curves)
        y = np.repeat([1.0] * len(ious) + [0.0], n)
        w = np.repeat([*ious, 0.0], n)
        return [x, y, w], None
    background = SOFTMAX_CLASSES - 1
    target = np.repeat([0] * len(ious) + [background], n)
    x = np.zeros((curves * n, SOFTMAX_CLASSES))
    x[np.arange(curves * n), target] = np.tile(LOGITS, curves)
    w = np.repeat(np.repeat([*ious, 1.0], n)[:, None], SOFTMAX_CLASSES, axis=1)
    return [x, np.eye(SOFTMAX_CLASSES)[target], w], target


def _classification_curves(candidate: Candidate, ious: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Loss and slope, one row per curve: positives at each IoU, then the negative."""
    args, target = _classification_inputs(candidate.form.name, ious)
    loss, slope = _loss_and_slope(candidate, args)
    if target is not None:
        slope = slope[np.arange(len(target)), target]  # d loss / d (the varied target logit)
    return loss.reshape(len(ious) + 1, -1), slope.reshape(len(ious) + 1, -1)


def plot_classification_loss(candidate: Candidate, *, baselines: Sequence[str] | None = None,
                             ious: Sequence[float] = (0.25, 0.5, 0.75, 1.0), path: str | None = None) -> Figure:
    """Loss and dL/dx against the target logit, for positives at several IoUs and for negatives, beside baselines.

    Baselines (zoo names; default bce and focal for ``sigmoid``, ce for ``softmax``) are dashed and
    drawn at the last IoU. For ``softmax`` the rows have 3 classes (background last): positives vary
    the logit of class 0 and negatives (background rows) that of the background, the others at 0.
    """
    form = candidate.form.name
    if form not in ("sigmoid", "softmax"):
        raise ValueError(f"plot_classification_loss takes a classification loss, not a {form}-form one")
    baselines = DEFAULT_BASELINES[form] if baselines is None else baselines
    baseline_curves = [(name, _classification_curves(loss, ious)) for name, loss in _baselines(baselines, form)]
    loss, slope = _classification_curves(candidate, ious)

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True)
    negative = "negatives" if form == "sigmoid" else "background rows"
    for column, (rows, title) in enumerate([(range(len(ious)), "positives"), ([len(ious)], negative)]):
        for row, (values, label) in enumerate([(loss, "loss"), (slope, "dL/dx")]):
            ax = axes[row, column]
            for k in rows:
                curve_label = f"IoU {ious[k]:g}" if column == 0 else "candidate"
                ax.plot(LOGITS, values[k], color=CANDIDATE_COLORS[k % len(CANDIDATE_COLORS)], label=curve_label)
            for b, (name, (b_loss, b_slope)) in enumerate(baseline_curves):
                b_values = b_loss if row == 0 else b_slope
                ax.plot(LOGITS, b_values[rows[-1]], label=name, **BASELINE_STYLES[b % len(BASELINE_STYLES)])
            ax.set_title(f"{title}: {label}")
            ax.set_ylabel(label)
            ax.axhline(0.0, color="lightgray", linewidth=0.8, zorder=0)
            ax.legend(fontsize="small")
        axes[1, column].set_xlabel(X_LABELS[form][column])
    setting = "sigmoid form" if form == "sigmoid" else f"softmax form, {SOFTMAX_CLASSES} classes (background last)"
    figure.suptitle(f"{candidate.infix()}\n{setting}", fontsize="medium")
    if path is not None:
        save_figure(figure, path)
    return figure


def _moved_box_areas(side: float) -> list[np.ndarray]:
    """(i, u, e) of a side×side box and its copy moved along x by DISTANCES box sides."""
    n = len(DISTANCES)
    target = np.tile([0.0, 0.0, side, side], (n, 1))
    shift = DISTANCES * side
    pred = np.stack([shift, np.zeros(n), shift + side, np.full(n, side)], axis=1)
    return list(box_areas(pred, target))


def _regression_curves(candidate: Candidate, scales: Sequence[float]) -> np.ndarray:
    """Loss of a box moved by DISTANCES, one row per scale (all scales in one evaluation)."""
    columns = [np.concatenate(parts) for parts in zip(*(_moved_box_areas(s) for s in scales), strict=True)]
    loss = np.asarray(candidate.to_jax()(*columns), np.float64)
    return loss.reshape(len(scales), -1)


def plot_regression_loss(candidate: Candidate, *, baselines: Sequence[str] = DEFAULT_BASELINES["reg"],
                         scales: Sequence[float] = (4, 32, 256), path: str | None = None) -> Figure:
    """Loss against IoU and against the distance a box is moved, at several box sides, beside baselines.

    A square box of each side in ``scales`` (px) is translated along x by 0 to 3 sides; the IoU panel
    covers the overlapping part (IoU = (1 − d)/(1 + d) for d sides). Baselines are dashed, drawn at
    the first scale (IoU and GIoU do not depend on it).
    """
    if candidate.form.name != "reg":
        raise ValueError(f"plot_regression_loss takes a reg-form loss, not a {candidate.form.name}-form one")
    baseline_curves = [(name, _regression_curves(loss, scales[:1])[0]) for name, loss in _baselines(baselines, "reg")]
    loss = _regression_curves(candidate, scales)
    overlap = DISTANCES <= 1.0
    iou = (1.0 - DISTANCES[overlap]) / (1.0 + DISTANCES[overlap])

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    by_iou, by_distance = figure.subplots(1, 2)
    for k, side in enumerate(scales):
        color = CANDIDATE_COLORS[k % len(CANDIDATE_COLORS)]
        by_iou.plot(iou, loss[k][overlap], color=color, label=f"side {side:g} px")
        by_distance.plot(DISTANCES, loss[k], color=color, label=f"side {side:g} px")
    for b, (name, values) in enumerate(baseline_curves):
        style = {"label": name, **BASELINE_STYLES[b % len(BASELINE_STYLES)]}
        by_iou.plot(iou, values[overlap], **style)
        by_distance.plot(DISTANCES, values, **style)
    by_iou.set(xlabel="IoU with the ground truth", ylabel="loss", title="loss against IoU")
    by_iou.invert_xaxis()  # worse boxes to the right, as in the distance panel
    by_distance.set(xlabel="distance moved (box sides)", ylabel="loss", title="loss against distance moved")
    by_distance.axvline(1.0, color="lightgray", linewidth=0.8, zorder=0)
    for ax in (by_iou, by_distance):
        ax.legend(fontsize="small")
    figure.suptitle(f"{candidate.infix()}\nreg form: a square box translated along x", fontsize="medium")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_loss(candidate: Candidate, *, baselines: Sequence[str] | None = None, path: str | None = None) -> Figure:
    """The plot that fits the candidate's form: classification or regression, beside baselines."""
    if candidate.form.name == "reg":
        baselines = DEFAULT_BASELINES["reg"] if baselines is None else baselines
        return plot_regression_loss(candidate, baselines=baselines, path=path)
    return plot_classification_loss(candidate, baselines=baselines, path=path)
