"""Convergence property verification (CPV) of one candidate: ``verify(candidate) -> Verdict``.

Each property is checked numerically on the form's probe (``grids``, rules in
``rules``) and, where possible, proved (``classification``,
``regression``). Its status is honest about the evidence:

* ``proved``: a symbolic argument decided it (SymPy's assumptions for all real inputs, or
  interval branch and bound over a stated box) and the sampled check agrees;
* ``sampled``: it holds at every probe point (the detail gives the points and ranges) but
  no proof was found within the time budget;
* ``failed``: a counterexample, the input values with the offending value or slope.

``finiteness`` is checked the way training runs the loss: the JAX lowering in float32,
value and gradient (in the logits, or in i, u, e) on the probe points, at logits exactly
±100 and at zero areas; and no log or square root may get a negative argument on the probe
(the formula is undefined there even though the guarded numerics stay finite).

The verifier never raises on a valid candidate: an unexpected
error in a proof leaves the sampled verdict, one in a sampled check fails the property
with the error as its reason. The time budget is checked between proof steps; proofs that
would run past it stop undecided, so ``verify`` returns within the budget plus the time of
one symbolic step.
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from symbolic.cpv.grids import DENSE_POINTS, probe_for, row_inputs
from symbolic.lowering import Program
from symbolic.operators import JAX, NUMPY

STATUSES = ("proved", "sampled", "failed")
FINITENESS_POINTS = 2048


@dataclasses.dataclass(frozen=True)
class PropertyResult:
    """One property's verdict: status, whether it is required, evidence and counterexample."""

    name: str
    status: str  # "proved" | "sampled" | "failed"
    required: bool
    detail: str
    counterexample: dict | None = None
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The CPV verdict of one candidate: passed when no required property failed."""

    passed: bool
    form: str
    key: str
    properties: tuple[PropertyResult, ...]
    seconds: float
    formula: str = ""

    def result(self, name: str) -> PropertyResult:
        """The result of the property called ``name``."""
        for result in self.properties:
            if result.name == name:
                return result
        raise KeyError(f"no property {name!r}; have {[p.name for p in self.properties]}")

    @property
    def failed_properties(self) -> tuple[str, ...]:
        """Names of the required properties that failed."""
        return tuple(p.name for p in self.properties if p.required and p.status == "failed")

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """One JSON object."""
        return json.dumps(self.to_dict(), allow_nan=False, default=float)

    @classmethod
    def from_json(cls, text: str | dict) -> Verdict:
        """The verdict written by ``to_json``."""
        data = json.loads(text) if isinstance(text, str) else dict(text)
        properties = tuple(PropertyResult(**p) for p in data.pop("properties"))
        return cls(properties=properties, **data)


def format_verdict(verdict: Verdict) -> str:
    """Human-readable text: overall result, then one line per property with its evidence."""
    head = f"{'PASSED' if verdict.passed else 'FAILED'}  {verdict.form} loss"
    if verdict.formula:
        head += f"  {verdict.formula}"
    lines = [head + f"  ({verdict.seconds:.2f}s)"]
    for p in verdict.properties:
        flag = "" if p.required else " (informative)"
        lines.append(f"  {p.name:<22} {p.status:<8}{flag} {p.detail}")
        if p.counterexample:
            example = ", ".join(f"{k}={_short(v)}" for k, v in p.counterexample.items())
            lines.append(f"  {'':<22} counterexample: {example}")
    return "\n".join(lines)


def _short(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _clean(value):
    """Counterexamples as JSON-safe numbers (non-finite floats as strings)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else str(float(value))
    return value


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
                              _clean(outside), time.perf_counter() - start)
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
                                  _clean(example), seconds)
    return PropertyResult("finiteness", "sampled", True,
                          f"value and gradient finite in float32 (JAX) at {points} points", None, seconds)


def _finiteness_points(form: str):
    """Points for the float32 finiteness check and the argnums differentiated."""
    if form == "reg":
        probe = probe_for("reg")
        rows = np.concatenate([probe.paths[:, ::12].reshape(-1), probe.dependence_rows[0]])
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


def _guarded(name: str, required: bool, function, *args) -> list[PropertyResult]:
    start = time.perf_counter()
    try:
        out = function(*args)
        return out if isinstance(out, list) else [out]
    except Exception as error:  # noqa: BLE001 - a verifier bug must not stop a search
        return [PropertyResult(name, "failed", required, f"could not be checked: {type(error).__name__}: {error}",
                               None, time.perf_counter() - start)]


def verify(candidate, *, time_budget: float = 1.0) -> Verdict:
    """The CPV verdict of ``candidate``, with proofs attempted for at most ``time_budget`` seconds."""
    from symbolic.cpv.classification import classification_properties
    from symbolic.cpv.regression import regression_properties

    start = time.perf_counter()
    deadline = start + time_budget
    form = candidate.form.name
    if form == "reg":
        results = _guarded("distance_consistency", True, regression_properties, candidate, deadline)
    else:
        results = _guarded("monotonicity", True, classification_properties, candidate, deadline)
    results += _guarded("finiteness", True, finiteness, candidate)
    try:
        formula = candidate.infix()
    except Exception:  # noqa: BLE001 - printing is cosmetic
        formula = str(candidate.expr)
    passed = not any(p.required and p.status == "failed" for p in results)
    return Verdict(passed, form, candidate.key, tuple(results), time.perf_counter() - start, formula)
