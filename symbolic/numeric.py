"""Numeric evaluation of light trees, many at once, with the operator table's numerics.

A random population repeats itself: ramped half-and-half trees share subtrees such as
``("sigmoid", "x")`` and whole trees (a third of depth-1..5 ``sigmoid``-form trees are exact
repeats). ``evaluate_trees`` therefore memoizes the value of every distinct subtree across
the batch, so each is computed once, with the same guards and stable ``log σ`` /
``log softmax`` as the JAX lowering. This is the evaluator of the numeric screen, of the
functional fingerprint and of the batched convergence checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from symbolic.forms import Form, get_form
from symbolic.operators import NUMPY, OPERATORS
from symbolic.tree import Tree

_COMPUTE = {name: op.compute for name, op in OPERATORS.items()}
_STABLE_LOG = {name: op.stable_log for name, op in OPERATORS.items() if op.stable_log is not None}


class _NoMemo(dict):
    """A memo that never remembers, to evaluate every subtree afresh."""

    def __setitem__(self, key, value):
        pass


def tree_values(tree: Tree, inputs: Mapping[str, np.ndarray], memo: dict | None = None):
    """The raw value of any (sub)tree: vectors keep their class axis, constants stay scalars."""
    with np.errstate(all="ignore"):
        return _value(tree, {} if memo is None else memo, inputs)


def _value(tree: Tree, memo: dict, inputs: Mapping[str, np.ndarray]):
    if type(tree) is str:
        return inputs[tree]
    if type(tree) is not tuple:
        return float(tree)
    value = memo.get(tree)
    if value is None:
        name, inner = tree[0], tree[1]
        if name == "log" and type(inner) is tuple and inner[0] in _STABLE_LOG:
            value = _STABLE_LOG[inner[0]](NUMPY, *[_value(c, memo, inputs) for c in inner[1:]])
        else:
            value = _COMPUTE[name](NUMPY, *[_value(c, memo, inputs) for c in tree[1:]])
        memo[tree] = value
    return value


def evaluate_trees(trees: Sequence[Tree], inputs: Mapping[str, np.ndarray], form: Form | str, *,
                   memoize: bool = True) -> np.ndarray:
    """Values of valid trees of ``form`` on ``inputs``, float64 of shape [T, *per-sample shape].

    For the ``softmax`` form the inputs carry the class axis last and every tree gives one
    value per sample, as ``lowering.evaluate_numpy`` does.
    """
    form = get_form(form)
    inputs = {name: np.asarray(inputs[name], dtype=np.float64) for name in form.input_names}
    shape = np.broadcast_shapes(*(value.shape for value in inputs.values()))
    sample_shape = shape[:-1] if form.vector else shape
    out = np.empty((len(trees), *sample_shape))
    memo = {} if memoize else _NoMemo()
    with np.errstate(all="ignore"):
        for row, tree in enumerate(trees):
            value = _value(tree, memo, inputs)
            if form.vector:
                if np.shape(value)[-1:] not in ((), (1,)):
                    raise ValueError(f"tree {row} is a vector over classes; reduce it with dot: {tree!r}")
                value = np.reshape(value, np.shape(value)[:-1]) if np.ndim(value) else value
            out[row] = value
    return out
