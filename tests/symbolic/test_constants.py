"""Constant lifting: which numbers are constants and in which order, the lifted JAX function, and candidates
rebuilt with other values."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.constants import lift_constants
from symbolic.forms import FORMS
from symbolic.variation import random_candidate
from symbolic.zoo import KNOWN_LOSSES


@pytest.mark.parametrize("text, form, constants", [
    ("-dot(y, log(softmax(x)))", "softmax", ()),  # no numbers at all
    ("-log(sigmoid(x))", "sigmoid", ()),  # the -1 of a negation is structure
    ("x**2 + sqrt(x) - 1/x", "sigmoid", ()),  # exponents and the sign of -1/x are structure
    ("0.25*y*(1 - sigmoid(x))**2*log(sigmoid(x))", "sigmoid", (sympy.Rational(-1, 4),)),  # 1 - σ(x) is σ(-x)
    ("1 - i/u + (e - u)/e", "reg", (1,)),  # the number terms of a sum are one constant
    ("x*log(2)/3 + 2", "sigmoid", (sympy.log(2) / 3, 2)),  # a product's number factors are one; evaluation order
])
def test_which_numbers_are_constants(text, form, constants):
    assert lift_constants(Candidate.parse(text, form)).exact == constants


def test_constants_come_in_a_fixed_order_whatever_the_formula_was_written_like():
    one = lift_constants(Candidate.parse("3*x/4 + 2*y - 1", "sigmoid"))
    other = lift_constants(Candidate.parse("-1 + y*2 + x*(3/4)", "sigmoid"))
    assert one.exact == other.exact and len(one) == 3
    assert lift_constants(KNOWN_LOSSES["focal"].candidate).values == (0.25, 1.0, 0.75)


def _candidates():
    rng = random.Random(5)
    return [loss.candidate for loss in KNOWN_LOSSES.values()] + [random_candidate(rng, form) for form in FORMS
                                                               for _ in range(40)]


def test_rebuilding_with_the_original_values_gives_the_same_candidate():
    for candidate in _candidates():
        lifted = lift_constants(candidate)
        assert lifted.with_constants(lifted.values) == candidate, candidate


def test_lifted_function_equals_to_jax_and_is_differentiable_in_the_constants():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for candidate in _candidates()[::10]:
            lifted = lift_constants(candidate)
            inputs = [jnp.asarray(v) for v in candidate.form.probe_inputs(16).values()]
            loss = lifted.to_jax()
            f = jax.jit(lambda c, *a, loss=loss: jnp.sum(loss(c, *a)))
            constants = jnp.asarray(lifted.values)
            np.testing.assert_allclose(lifted.to_jax()(constants, *inputs), candidate.to_jax()(*inputs), rtol=1e-12,
                                       atol=1e-12)
            if not len(lifted):
                continue
            direction = jnp.asarray(rng.normal(size=len(lifted)))
            slope = jax.jvp(lambda c, f=f, inputs=inputs: f(c, *inputs), (constants,), (direction,))[1]
            step = 1e-6
            up, down = f(constants + step * direction, *inputs), f(constants - step * direction, *inputs)
            difference = (up - down) / 2 / step
            np.testing.assert_allclose(slope, difference, rtol=1e-5, atol=1e-6, err_msg=str(candidate))


def test_the_rebuilt_candidate_computes_the_lifted_function_at_its_values():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        for name in ("focal", "cse_b_reg", "cse_a_cls"):
            lifted = lift_constants(KNOWN_LOSSES[name].candidate)
            values = np.round(np.asarray(lifted.values) * rng.uniform(0.5, 1.5, len(lifted)), 3)
            inputs = [jnp.asarray(v) for v in lifted.candidate.form.probe_inputs(16).values()]
            np.testing.assert_allclose(lifted.with_constants(values).to_jax()(*inputs),
                                       lifted.to_jax()(jnp.asarray(values), *inputs), rtol=1e-9, atol=1e-12)


def test_a_refined_candidate_has_the_new_constants_and_its_own_identity():
    focal = KNOWN_LOSSES["focal"].candidate
    refined = lift_constants(focal).with_constants([0.3, 1, 0.7])
    assert refined != focal and lift_constants(refined).exact == (sympy.Rational(3, 10), 1, sympy.Rational(7, 10))
    rounded = lift_constants(focal).with_constants([0.251234, 1, 0.7487], digits=2)
    assert lift_constants(rounded).exact == (sympy.Rational(1, 4), 1, sympy.Rational(3, 4)) and rounded == focal


def test_bad_values_are_refused():
    lifted = lift_constants(KNOWN_LOSSES["focal"].candidate)
    with pytest.raises(ValueError, match="has 3 constants"):
        lifted.with_constants([1.0])
    with pytest.raises(ValueError, match="constant 1 must be a finite number"):
        lifted.with_constants([0.25, float("nan"), 0.75])
    with pytest.raises(InvalidCandidate, match="must depend on x"):
        lift_constants(Candidate.parse("2*x + y", "sigmoid")).with_constants([0.0])
