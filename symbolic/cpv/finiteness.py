"""Finiteness, checked the way training runs the loss, and the formula's own domain.

``finiteness`` runs the JAX lowering in float32, value and gradient (in the logits, or in i,
u, e), on the probe points, at logits exactly ±100 and at zero areas; and no log or square
root may get a negative argument on the probe (``domain_violation``: the formula is
undefined there even though the guarded numerics stay finite). Finiteness is sampled by
nature: it is a property of the float32 numerics, not of the formula.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from symbolic.cpv.grids import DENSE_POINTS, probe_for, row_inputs
from symbolic.cpv.verdict import PropertyResult, json_safe
from symbolic.lowering import Program
from symbolic.operators import JAX, NUMPY

FINITENESS_POINTS = 2048


def domain_violation(candidate) -> dict | None:
    """The first probe point where a log or square root of the formula gets a negative argument."""
    probe = probe_for(candidate.form.name)
    names = candidate.form.input_names
    for node in sympy.preorder_traversal(candidate.expr):
        if isinstance(node, sympy.log):
            argument = node.args[0]
        elif node.is_Pow and node.exp.is_Rational and node.exp.q % 2 == 0:
            argument = node.base
        else:
            continue
        with np.errstate(all="ignore"):
            values = np.broadcast_to(Program(argument, names, NUMPY)(probe.inputs), probe.inputs[names[0]].shape)
        bad = np.flatnonzero((values < 0).reshape(len(values), -1).any(axis=1))
        if len(bad):
            example = row_inputs(probe, int(bad[0]))
            example["argument"] = str(argument)
            return example
    return None


def finiteness(candidate) -> PropertyResult:
    """Value and gradient finite in float32 JAX on the probe points, logits ±100 and zero areas."""
    start = time.perf_counter()
    outside = domain_violation(candidate)
    if outside is not None:
        return PropertyResult("finiteness", "failed", True, "a log or square root gets a negative argument "
                              "(the formula is undefined there; only the numerics' floor keeps it finite)",
                              json_safe(outside), time.perf_counter() - start, "counterexample on the probe",
                              "the form's probe")
    inputs, wrt = _finiteness_points(candidate.form.name)
    program = Program(candidate.expr, candidate.form.input_names, JAX)
    names = candidate.form.input_names

    def total(*args):
        return jnp.sum(program(dict(zip(names, args, strict=True))))

    # one fixed length for every form, so JAX compiles each primitive for one shape only
    arrays = [jnp.asarray(np.resize(np.asarray(inputs[name]), (FINITENESS_POINTS, *np.shape(inputs[name])[1:])),
                          jnp.float32) for name in names]
    value = np.broadcast_to(np.asarray(program(dict(zip(names, arrays, strict=True)))), arrays[0].shape)
    grads = jax.grad(total, argnums=wrt)(*arrays)
    seconds = time.perf_counter() - start
    points = len(arrays[0])
    for label, array in [("loss", value)] + [(f"dL/d{names[k]}", np.asarray(g)) for k, g in zip(wrt, grads,
                                                                                               strict=True)]:
        array = np.broadcast_to(array, arrays[0].shape)
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))
            example = {name: np.asarray(arrays[k][row]).tolist() for k, name in enumerate(names)}
            example[label] = str(array[row].tolist())
            return PropertyResult("finiteness", "failed", True, f"{label} is not finite in float32 (JAX)",
                                  json_safe(example), seconds, "counterexample on the probe", f"{points} points")
    where = f"{points} points: the probe, logits exactly +-100 and zero areas"
    return PropertyResult("finiteness", "sampled", True, f"value and gradient finite in float32 (JAX) at {where}",
                          None, seconds, "sampled check", where)


def _finiteness_points(form: str):
    """Points for the float32 finiteness check and the argnums differentiated."""
    if form == "reg":
        probe = probe_for("reg")
        rows = np.concatenate([probe.paths[:, ::12].reshape(-1), probe.sample_rows])
        i, u, e = (np.asarray(probe.inputs[name][rows]) for name in "iue")
        # zero areas: degenerate boxes (all zero), no overlap (i = 0), a point box inside a box
        extra = {"i": [0.0, 0.0, 0.0, 1.0], "u": [0.0, 1.0, 2.0, 1.0], "e": [0.0, 1.0, 4.0, 1.0]}
        return {"i": np.r_[extra["i"], i], "u": np.r_[extra["u"], u], "e": np.r_[extra["e"], e]}, (0, 1, 2)
    probe = probe_for(form)
    curves = list(probe.curves) + [curve for _, curve in probe.iou_curves[:-1]]
    stride = -(-DENSE_POINTS * len(curves) // (FINITENESS_POINTS - 2 * len(curves)))
    ends = [curve.rows[[0, -1]] for curve in curves]  # logits exactly at -100 and +100 first
    rows = np.concatenate(ends + [curve.rows[::stride] for curve in curves])
    return {name: np.asarray(array[rows]) for name, array in probe.inputs.items()}, (0,)
