"""Candidate losses as data for one compiled step: each loss enters as its value and input derivatives.

A step's gradient needs a candidate loss ``f`` only through its value and its derivatives with
respect to its inputs at the current point (the chain rule does the rest). So the simulation's
``batching="linearized"`` splits a step in three:

1. one shared compiled function computes, for every candidate's parameters, the inputs its loss
   receives inside the detector loss (``x, y, w`` or ``i, u, e``) — :func:`loss_inputs`;
2. one small compiled function per batch evaluates each candidate's lowered loss and its
   derivatives there, by the inputs the parameters move (:data:`MOVING_INPUTS`) —
   :func:`derivatives_fn` (a few elementwise operations per candidate: a small compile);
3. the shared compiled step trains every candidate on its :func:`first_order_loss`, which has the
   loss's value and exactly its gradient at the current point.

The detector part — forward pass, targets, weighting and normalization, backward pass, optimizer —
compiles once per simulator, not once per batch as when the lowered losses are written into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Derivatives = tuple[jax.Array, ...]  # the value, then the derivative by each input that the parameters move
# Inputs with a gradient path to the parameters, in order: the logits of the classification forms (labels
# and the detached IoU are constants there); all three areas of a regression loss.
MOVING_INPUTS = {"sigmoid": 1, "softmax": 1, "reg": 3}


def _output_shape(form: str, first: jax.Array) -> tuple[int, ...]:
    return first.shape[:-1] if form == "softmax" else first.shape


def loss_inputs(compute_loss: Callable[[Callable], object], form: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The inputs the searched branch's loss gets when ``compute_loss(loss_fn)`` runs (traced, inside jit)."""
    seen = []

    def probe(*inputs):
        seen.append(inputs)
        return jnp.zeros(_output_shape(form, inputs[0]), inputs[0].dtype)

    compute_loss(probe)
    if len(seen) != 1:
        raise RuntimeError(f"the detector loss called the searched loss {len(seen)} times; linearized batching "
                           "needs exactly one call")
    return seen[0]


def first_order_loss(derivatives: Derivatives, form: str) -> Callable:
    """A loss with the given value and input derivatives at the current inputs (and the same gradient there)."""
    value, *slopes = derivatives

    def loss(*inputs):
        moving = inputs[: MOVING_INPUTS[form]]
        moved = sum(slope * (a - jax.lax.stop_gradient(a)) for slope, a in zip(slopes, moving, strict=True))
        return value + (moved.sum(-1) if form == "softmax" else moved)

    return loss


def derivatives_fn(losses: Sequence[Callable], form: str) -> Callable:
    """Jitted ``(inputs stacked over candidates) -> stacked Derivatives`` of each candidate's loss at its inputs."""
    moving = MOVING_INPUTS[form]

    def one(loss, *inputs):
        value, pullback = jax.vjp(lambda *head: loss(*head, *inputs[moving:]), *inputs[:moving])
        return (value, *pullback(jnp.ones_like(value)))

    def all_of(a, b, c):
        rows = [one(loss, a[k], b[k], c[k]) for k, loss in enumerate(losses)]
        return tuple(jnp.stack(parts) for parts in zip(*rows, strict=True))

    return jax.jit(all_of)
