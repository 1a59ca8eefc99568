"""The loss interpreter: same values as the lowered candidates, finite gradients, no recompiles."""

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulate.interpreter import LENGTH_CLASSES, ProgramTooLong, encode, run_program
from symbolic import KNOWN_LOSSES, InvalidCandidate, random_candidate


def _candidates(form: str, count: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    found = [loss.candidate for loss in KNOWN_LOSSES.values() if loss.form == form]
    while len(found) < count:
        try:
            found.append(random_candidate(rng, form))
        except InvalidCandidate:
            continue
    return found


def _inputs(form: str, rows: int = 48):
    rng = np.random.default_rng(0)
    if form == "reg":
        inter = rng.uniform(0, 5, rows)
        union = inter + rng.uniform(0.1, 5, rows)
        return [inter, union, union + rng.uniform(0, 5, rows)]
    if form == "sigmoid":
        y = (rng.uniform(size=(rows, 4)) < 0.3) * 1.0
        return [rng.normal(0, 5, (rows, 4)), y, y * rng.uniform(size=(rows, 4))]
    y = np.eye(5)[rng.integers(0, 5, rows)]
    return [rng.normal(0, 5, (rows, 5)), y, np.broadcast_to(rng.uniform(size=(rows, 1)), (rows, 5))]


@pytest.mark.parametrize("form", ["sigmoid", "softmax", "reg"])
def test_interpreted_losses_match_the_lowered_candidates_mapped_and_vectorized(form):
    candidates = _candidates(form, 40)
    programs, registers = encode(candidates, form)
    args = [jnp.asarray(a, jnp.float32) for a in _inputs(form)]
    run = lambda program: run_program(program, args, form, registers)
    vectorized = np.asarray(jax.jit(jax.vmap(run))(programs.as_tuple()))
    mapped = np.asarray(jax.jit(lambda p: jax.lax.map(run, p))(programs.as_tuple()))
    for row, candidate in enumerate(candidates):
        expected = np.asarray(candidate.to_jax()(*args))
        np.testing.assert_allclose(vectorized[row], expected, rtol=1e-4, atol=1e-4, err_msg=candidate.infix())
        np.testing.assert_allclose(mapped[row], expected, rtol=1e-4, atol=1e-4, err_msg=candidate.infix())


def test_gradients_stay_finite_at_extreme_logits_even_when_other_operators_are_not_chosen():
    candidates = [KNOWN_LOSSES[name].candidate for name in ("focal", "bce", "cse_b_cls")]
    programs, registers = encode(candidates, "sigmoid")
    x = jnp.asarray([-100.0, -30.0, 0.0, 30.0, 100.0])
    y = jnp.asarray([1.0, 0.0, 1.0, 0.0, 1.0])
    w = y * 0.5

    def total(x, program):
        return jnp.sum(run_program(program, (x, y, w), "sigmoid", registers))

    grads = jax.jit(jax.vmap(jax.grad(total), in_axes=(None, 0)))(x, programs.as_tuple())
    assert np.isfinite(np.asarray(grads)).all()


def test_zero_areas_give_finite_regression_values_and_gradients():
    candidates = [KNOWN_LOSSES[name].candidate for name in ("iou", "giou", "cse_a_reg", "cse_b_reg")]
    programs, registers = encode(candidates, "reg")
    zeros = jnp.zeros(3)

    def total(i, program):
        return jnp.sum(run_program(program, (i, zeros + 1e-7, zeros + 1e-7), "reg", registers))

    values = jax.vmap(lambda p: run_program(p, (zeros, zeros + 1e-7, zeros + 1e-7), "reg", registers))(
        programs.as_tuple())
    grads = jax.vmap(jax.grad(total), in_axes=(None, 0))(zeros, programs.as_tuple())
    assert np.isfinite(np.asarray(values)).all() and np.isfinite(np.asarray(grads)).all()


def test_new_candidates_of_a_length_class_reuse_the_compiled_program():
    traces = []
    args = [jnp.asarray(a, jnp.float32) for a in _inputs("sigmoid")]

    @jax.jit
    def evaluate(programs):
        traces.append(1)
        return jax.vmap(lambda p: run_program(p, args, "sigmoid", 12))(programs)

    for seed in (1, 2, 3):
        programs, _ = encode(_candidates("sigmoid", 8, seed)[:8], "sigmoid", length=64, registers=12)
        evaluate(programs.as_tuple())
    assert len(traces) == 1


def test_programs_that_do_not_fit_are_refused():
    candidate = KNOWN_LOSSES["cse_b_cls"].candidate
    with pytest.raises(ProgramTooLong, match="does not fit length 4"):
        encode([candidate], "sigmoid", length=4)
    assert LENGTH_CLASSES[0] >= 16
