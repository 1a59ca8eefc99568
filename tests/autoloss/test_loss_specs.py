"""Loss specs: baseline names, zoo names, formulas, and clear errors for the rest."""

import jax.numpy as jnp
import numpy as np
import pytest

from autoloss.loss_specs import AUTHORS_ALPHA, accepted_names, resolve_cls_loss, resolve_reg_loss
from detection.losses import CLS_LOSSES, REG_LOSSES
from symbolic.parser import ParseError


@pytest.mark.parametrize("name", list(CLS_LOSSES))
def test_cls_baselines_resolve_to_detection_names_without_alpha(name):
    spec = resolve_cls_loss(name)
    assert spec.fn == name and spec.alpha_balance is None
    assert spec.description == {"name": name, "source": "detection baseline"}


@pytest.mark.parametrize("name", list(REG_LOSSES))
def test_reg_baselines_resolve_to_detection_names(name):
    assert resolve_reg_loss(name).fn == name


def test_zoo_losses_of_the_right_form_are_lowered_and_cls_ones_alpha_balanced():
    cls, reg = resolve_cls_loss("cse_b_cls"), resolve_reg_loss("cse_b_reg")
    assert cls.alpha_balance == AUTHORS_ALPHA and reg.alpha_balance is None
    assert cls.description["name"] == "cse_b_cls" and "Liu" in cls.description["source"]
    x = jnp.linspace(-3.0, 3.0, 6)
    assert cls.fn(x, jnp.ones_like(x), jnp.full_like(x, 0.5)).shape == (6,)
    areas = jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]), jnp.array([5.0, 6.0])
    assert np.isfinite(np.asarray(reg.fn(*areas))).all()


def test_formulas_are_parsed_in_the_form_and_evaluate_like_the_math():
    cls = resolve_cls_loss("-log(sigmoid(x))")
    assert cls.description["source"] == "formula" and cls.alpha_balance == AUTHORS_ALPHA
    x = jnp.array([-2.0, 0.0, 2.0])
    np.testing.assert_allclose(cls.fn(x, x, x), -np.log(1 / (1 + np.exp(-np.asarray(x)))), rtol=1e-6)
    reg = resolve_reg_loss("1 - i/u")
    np.testing.assert_allclose(reg.fn(jnp.array([1.0]), jnp.array([4.0]), jnp.array([5.0])), [0.75])


def test_accepted_names_list_baselines_then_zoo_of_the_form():
    assert accepted_names("sigmoid")[:2] == ["focal", "bce"] and "cse_b_cls" in accepted_names("sigmoid")
    assert "cse_b_reg" in accepted_names("reg") and "cse_b_cls" not in accepted_names("reg")


@pytest.mark.parametrize(
    "resolve, text, error, message",
    [
        (resolve_cls_loss, "focall", ValueError, "unknown classification loss 'focall'; give one of focal, bce"),
        (resolve_cls_loss, "cse_b_reg", ValueError, "'cse_b_reg' is a reg-form loss"),
        (resolve_cls_loss, "ce", ValueError, "'ce' is a softmax-form loss"),
        (resolve_reg_loss, "gio", ValueError, "unknown regression loss 'gio'; give one of iou, giou"),
        (resolve_reg_loss, "focal", ValueError, "'focal' is a sigmoid-form loss"),
        (resolve_reg_loss, "cse_b_cls", ValueError, "'cse_b_cls' is a sigmoid-form loss"),
        (resolve_cls_loss, "1 - i/u", ParseError, "input of the reg form"),
        (resolve_reg_loss, "log(sigmoid(x))", ParseError, "the reg form's inputs are i, u, e"),
    ],
)
def test_unknown_names_and_formulas_of_another_form_are_rejected(resolve, text, error, message):
    with pytest.raises(error) as raised:
        resolve(text)
    assert message in str(raised.value)
