"""Loss specifications typed by a user: a detection baseline name, a zoo name, or a formula.

``resolve_cls_loss`` / ``resolve_reg_loss`` turn the text of ``--loss-cls`` / ``--loss-reg`` into a
JAX callable for :func:`detection.training.train` plus a JSON-ready description. Names are tried
first (the detection baselines, then the zoo's losses of the right form); anything else is parsed
as a formula of the form (``sigmoid`` for FCOS classification, ``reg`` for regression).

Searched and zoo classification losses are wrapped with the authors' alpha balancing (0.25 on
positives, 0.75 on negatives, as their FCOS release does); the built-in focal loss balances itself
and BCE is the plain baseline, so neither is wrapped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from detection.experiment_spec import Losses
from detection.faster_rcnn_loss import SOFTMAX_CLS_LOSSES
from detection.losses import CLS_LOSSES, REG_LOSSES
from simulate.simulation import AUTHORS_ALPHA
from symbolic.candidate import Candidate
from symbolic.forms import get_form
from symbolic.zoo import KNOWN_LOSSES

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """A resolved loss: the callable, its description and the alpha balance to train it with."""

    fn: Callable | str  # a detection registry name or a JAX callable of the form's signature
    description: dict[str, Any]
    alpha_balance: float | None = None


BASELINES = {"sigmoid": CLS_LOSSES, "softmax": SOFTMAX_CLS_LOSSES, "reg": REG_LOSSES}


def accepted_names(form: str) -> list[str]:
    """Return the loss names accepted for ``form`` (sigmoid, softmax or reg): baselines, then the zoo's."""
    baselines = list(BASELINES[form])
    zoo = [name for name, loss in KNOWN_LOSSES.items() if loss.form == form and name not in baselines]
    return baselines + zoo


def resolve_cls_loss(text: str, form: str = "sigmoid") -> LossSpec:
    """Return the classification loss named or written in ``text``: sigmoid form (FCOS) or softmax (Faster R-CNN)."""
    return _resolve(text, form, BASELINES[form], "classification")


def resolve_reg_loss(text: str) -> LossSpec:
    """Return the regression loss named or written in ``text`` (reg form)."""
    return _resolve(text, "reg", REG_LOSSES, "regression")


def _resolve(text: str, form: str, baselines: dict, role: str) -> LossSpec:
    text = text.strip()
    if text in baselines:
        return LossSpec(text, {"name": text, "source": "detection baseline"})
    known = KNOWN_LOSSES.get(text)
    if known is not None and known.form == form:
        return loss_spec_of(known.candidate, {"name": text, "source": known.source})
    inputs = get_form(form).input_names
    if known is not None or (_NAME.fullmatch(text) and text not in inputs):
        what = f"{text!r} is a {known.form}-form loss" if known else f"unknown {role} loss {text!r}"
        raise ValueError(
            f"{what}; give one of {', '.join(accepted_names(form))} or a {form}-form formula over {', '.join(inputs)}"
        )
    return loss_spec_of(Candidate.parse(text, form), {"name": None, "source": "formula"})


def losses_of(cls_spec: LossSpec, reg_spec: LossSpec) -> Losses:
    """The losses of an experiment (``detection.experiment_spec.Losses``) from resolved cls and reg specs."""
    return Losses(cls=cls_spec.fn, reg=reg_spec.fn, alpha_balance=cls_spec.alpha_balance,
                  descriptions={"cls": cls_spec.description, "reg": reg_spec.description})


def loss_spec_of(candidate: Candidate, description: dict[str, Any]) -> LossSpec:
    """The loss of a candidate: its JAX function, alpha-balanced (0.25) when it is of the sigmoid form."""
    sigmoid = candidate.form.name == "sigmoid"
    return LossSpec(
        candidate.to_jax(),
        {**description, "formula": candidate.infix(), "prefix": candidate.prefix()},
        AUTHORS_ALPHA if sigmoid else None,
    )
