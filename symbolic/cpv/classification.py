"""Classification CPV for one candidate (``sigmoid`` and ``softmax`` forms): sampling and proofs.

Properties (the probes and tolerances are those of ``grids`` and ``rules``):

* ``monotonicity`` (required): a positive's loss does not increase with its logit over
  [−100, 100]; a negative's does not decrease; and each falls by a margin over the range.
* ``convergence`` (required): |dL/dx| vanishes at the far end (x = 100 for a positive,
  −100 for a negative) and the minimum over the range lies there.
* ``iou_aware`` (required, ``sigmoid``): for positives with w < 1 monotonicity is not
  demanded (CSE-Autoloss-B is minimal below probability 1 there, by design); instead the
  optimum must not move away from 1 as w grows through 0.1, 0.25, 0.5, 0.75, 1.

Proofs: the derivative in the logit is formed with SymPy and its sign decided first by
SymPy's assumptions (then it holds for all real x), else by interval branch and bound on
x ∈ [−100, 100] (``sign_proofs``). For ``softmax`` the loss is expanded over C = 3 classes
with softmax_k = 1/(1 + Σ_{j≠k} exp(a_j − a_k)) and log softmax_k = −log(1 + Σ ...), the
label one-hot, and the other two logits (and, for a foreground target, w ∈ [0.5, 1]) are
interval variables: the proof covers the whole box, not only the sampled settings.
Convergence is proved by a rigorous bound |dL/dx| ≤ 1e-3 at the end point(s) together
with proved monotonicity (which puts the minimum at the end). A property is ``proved``
only if its proof succeeds *and* the sampled check agrees (numeric backing, on the
guarded float64 numerics that training uses); a refuted proof gives ``failed`` with its
counterexample; an undecided one leaves the sampled verdict.
"""

from __future__ import annotations

import time

import numpy as np
import sympy

from symbolic.cpv.grids import (
    CONVERGENCE_OTHER_MAX,
    LOGIT_LIMIT,
    SOFTMAX_CLASSES,
    SOFTMAX_IOUS,
    probe_for,
    row_inputs,
    softmax_settings,
)
from symbolic.cpv.intervals import IntervalProgram, IntervalUnsupported
from symbolic.cpv.rules import FLAT_RTOL, REASONS, SLOPE_RTOL, classification_rules
from symbolic.cpv.sign_proofs import SignProof, assumption_sign, prove_sign
from symbolic.cpv.verify import PropertyResult
from symbolic.forms import w as w_symbol
from symbolic.forms import x as x_symbol
from symbolic.forms import y as y_symbol
from symbolic.lowering import evaluate_numpy
from symbolic.vector_ops import Dot, Softmax

PROPERTIES = ("monotonicity", "convergence", "iou_aware")
LOGITS = (-LOGIT_LIMIT, LOGIT_LIMIT)


def sampled_classification(candidate) -> tuple[dict, np.ndarray, str]:
    """Sampled rule outcomes of one candidate, its probe values, and how slopes were obtained.

    Slopes are finite differences of the guarded float64 values, as in the batched screen:
    the sampled checks judge what training evaluates, and where a guard acts (a log of a
    negative number, a division by 0) the formula's own derivative says nothing about that.
    The formula's derivative is what the proofs use.
    """
    form = candidate.form
    probe = probe_for(form.name)
    values = evaluate_numpy(candidate.expr, form, probe.inputs)
    return classification_rules(values[None], probe), values, "finite differences of the guarded values"


def counterexample(candidate, rules, name: str, values: np.ndarray) -> tuple[str, dict]:
    """The reason and the offending inputs/value of a failed sampled property."""
    probe = probe_for(candidate.form.name)
    row = int(rules[name].row[0])
    point = row_inputs(probe, row)
    point["loss"] = float(values[row])
    return REASONS[int(rules[name].code[0])], point


# --- symbolic set-ups -------------------------------------------------------------------------


def _stable_softmax_reduction(expr, target: int, w_value):
    """The loss over C classes, label one-hot at ``target``, w_k = ``w_value``; (expr, logit symbols)."""
    c = SOFTMAX_CLASSES
    logits = [sympy.Symbol(f"x_{k}", real=True) for k in range(c)]
    components = {x_symbol: logits, y_symbol: [sympy.Integer(int(k == target)) for k in range(c)],
                  w_symbol: [w_value] * c}

    def softmax_parts(a):
        return [1 + sympy.Add(*[sympy.exp(a[j] - a[k]) for j in range(c) if j != k]) for k in range(c)]

    def expand(node):
        if node in components:
            return components[node]
        if not node.args:
            return node
        if isinstance(node, sympy.log) and isinstance(node.args[0], Softmax):
            return [-sympy.log(part) for part in softmax_parts(_vector(expand(node.args[0].args[0])))]
        args = [expand(arg) for arg in node.args]
        if isinstance(node, Softmax):
            return [1 / part for part in softmax_parts(_vector(args[0]))]
        if isinstance(node, Dot):
            return sympy.Add(*[p * q for p, q in zip(_vector(args[0]), _vector(args[1]), strict=True)])
        if any(isinstance(arg, list) for arg in args):
            return [node.func(*row) for row in zip(*(_vector(arg) for arg in args), strict=True)]
        return node.func(*args)

    def _vector(value):
        return value if isinstance(value, list) else [value] * c

    return expand(expr), logits


def curve_setups(candidate):
    """(label, loss, varied logit, other variables {symbol: range}, sign of dL/dlogit, far end, converges)."""
    expr = candidate.expr
    if not candidate.form.vector:
        return [
            ("positive (y=1, w=1)", expr.subs({y_symbol: 1, w_symbol: 1}), x_symbol, {}, "nonpositive",
             LOGIT_LIMIT, True),
            ("negative (y=0, w=0)", expr.subs({y_symbol: 0, w_symbol: 0}), x_symbol, {}, "nonnegative",
             -LOGIT_LIMIT, True),
        ]
    setups = []
    w_interval = sympy.Symbol("w", positive=True)
    for target, w_value, label, w_range in [
        (0, w_interval, f"foreground target (w in [{min(SOFTMAX_IOUS)}, 1])", (min(SOFTMAX_IOUS), 1.0)),
        (SOFTMAX_CLASSES - 1, sympy.Integer(1), "background target (w=1)", None),
    ]:
        loss, logits = _stable_softmax_reduction(expr, target, w_value)
        varied_negative = 1 if target == 0 else 0
        for varied, sign, end, kind in [(target, "nonpositive", LOGIT_LIMIT, ""),
                                        (varied_negative, "nonnegative", -LOGIT_LIMIT, ", non-target logit")]:
            others = {s: LOGITS for k, s in enumerate(logits) if k != varied}
            if w_range is not None and loss.has(w_interval):
                others[w_interval] = w_range
            setups.append((label + kind, loss, logits[varied], others, sign, end, varied == target))
    return setups


def _sign_proof(derivative, variable, others, sign, deadline) -> tuple[SignProof, str]:
    if assumption_sign(derivative, sign):
        return SignProof("proved", "SymPy assumptions"), "for all real inputs"
    box = {variable: LOGITS, **others}
    ranges = ", ".join(f"{s.name} in [{lo:g}, {hi:g}]" for s, (lo, hi) in box.items())
    return prove_sign(derivative, box, sign, deadline=deadline), f"on {ranges}"


def _falls_by_margin(loss, variable, others, end) -> SignProof:
    """Rigorous bounds show the fall from −end to end exceeds the flatness margin at every sampled setting."""
    names = list(others)
    settings = _sampled_settings(names) if names else np.zeros((1, 0))
    try:
        program = IntervalProgram(loss, (variable, *names))
    except IntervalUnsupported as error:
        return SignProof("undecided", f"no interval enclosure of the loss: {error}")
    start_lo, start_hi = program(*(np.c_[np.full(len(settings), -end), settings],) * 2)
    end_lo, end_hi = program(*(np.c_[np.full(len(settings), end), settings],) * 2)
    scale = 1 + np.maximum.reduce([np.abs(start_lo), np.abs(start_hi), np.abs(end_lo), np.abs(end_hi)])
    if (start_lo - end_hi > FLAT_RTOL * scale).all():
        return SignProof("proved", f"fall bounded at {len(settings)} setting(s)")
    return SignProof("undecided", "the fall over the range is not bounded away from 0 at every sampled setting")


def _sampled_settings(names) -> np.ndarray:
    """The sampled values of the non-varied variables (softmax: other logits, and w where free)."""
    logits = [s for s in names if s.name.startswith("x_")]
    rows = []
    for others in softmax_settings():
        for w_value in (SOFTMAX_IOUS if len(names) > len(logits) else (None,)):
            rows.append(list(others[: len(logits)]) + ([] if w_value is None else [w_value]))
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def prove_classification(candidate, deadline: float) -> dict[str, tuple[SignProof, str]]:
    """Proof attempts per property: (SignProof, detail) for monotonicity and convergence."""
    mono_parts, conv_parts = [], []
    for label, loss, variable, others, sign, end, converges in curve_setups(candidate):
        if time.perf_counter() > deadline:
            undecided = SignProof("undecided", "time budget spent before all curves were attempted")
            return {"monotonicity": (undecided, undecided.detail), "convergence": (undecided, undecided.detail)}
        derivative = sympy.diff(loss, variable)
        proof, scope = _sign_proof(derivative, variable, others, sign, deadline)
        if proof.status == "refuted":
            example = dict(proof.counterexample or {})
            return {"monotonicity": (proof, f"{label}: dL/d{variable.name} has the wrong sign at {example}")}
        margin = _falls_by_margin(loss, variable, others, end) if proof.status == "proved" else proof
        mono_parts.append((label, proof, scope, margin))
        if not converges:
            continue
        conv_box = {variable: (end, end), **{s: (lo, min(hi, CONVERGENCE_OTHER_MAX)) if s.name.startswith("x_")
                                             else (lo, hi) for s, (lo, hi) in others.items()}}
        bound = prove_sign(SLOPE_RTOL - sympy.Abs(derivative), conv_box, "nonnegative", deadline=deadline)
        conv_parts.append((label, bound, end))
    mono_ok = all(p.status == "proved" and m.status == "proved" for _, p, _, m in mono_parts)
    details = "; ".join(f"{label}: {p.detail} {scope}" for label, p, scope, _ in mono_parts)
    mono = SignProof("proved" if mono_ok else "undecided",
                     f"derivative sign proved ({details}); fall over the range bounded by intervals at the "
                     "sampled settings" if mono_ok
                     else _first_undecided(mono_parts))
    conv_ok = mono_ok and all(b.status == "proved" for _, b, _ in conv_parts)
    ends = ", ".join(f"{label} at {end:+g}" for label, _, end in conv_parts)
    conv = SignProof("proved" if conv_ok else "undecided",
                     f"|dL/dx| <= {SLOPE_RTOL:g} by interval bounds ({ends}); minimum at the end by the proved "
                     "monotonicity" if conv_ok else "monotonicity or the end-slope bound is undecided")
    return {"monotonicity": (mono, mono.detail), "convergence": (conv, conv.detail)}


def _first_undecided(parts) -> str:
    for label, proof, _, margin in parts:
        if proof.status != "proved":
            return f"{label}: derivative sign undecided ({proof.detail})"
        if margin.status != "proved":
            return f"{label}: fall over the range undecided ({margin.detail})"
    return "undecided"


def iou_aware_proof(candidate) -> SignProof:
    """Proved when the positive loss does not depend on w (its optimum cannot move)."""
    if candidate.form.vector:
        return SignProof("undecided", "not applicable")
    positive = candidate.expr.subs(y_symbol, 1)
    if not positive.has(w_symbol):
        return SignProof("proved", "the positive loss does not depend on w, so its optimum cannot move")
    return SignProof("undecided", "the positive loss depends on w")


def _combine(name: str, required: bool, rules, values, candidate, proof: SignProof | None, sampled_detail: str,
             seconds: float) -> PropertyResult:
    """A property's result: a sampled failure wins; then a refuted proof; then proved; else sampled."""
    if not rules[name].ok[0]:
        reason, point = counterexample(candidate, rules, name, values)
        if proof is not None and proof.status == "proved":
            reason += " (the formula is proved, but the guarded float64 numerics violate it)"
        return PropertyResult(name, "failed", required, reason, point, seconds)
    if proof is not None and proof.status == "refuted":
        return PropertyResult(name, "failed", required, proof.detail, proof.counterexample, seconds)
    if proof is not None and proof.status == "proved":
        return PropertyResult(name, "proved", required, proof.detail, None, seconds)
    why = f"; proof undecided: {proof.detail}" if proof is not None and proof.detail else ""
    return PropertyResult(name, "sampled", required, sampled_detail + why, None, seconds)


def classification_properties(candidate, deadline: float) -> list[PropertyResult]:
    """Monotonicity, convergence and (sigmoid) IoU-awareness of one classification candidate."""
    start = time.perf_counter()
    rules, values, slopes_from = sampled_classification(candidate)
    probe = probe_for(candidate.form.name)
    sampled_at = time.perf_counter()
    proofs: dict[str, tuple[SignProof, str]] = {}
    try:
        if rules["monotonicity"].ok[0]:  # a sampled counterexample already decides; no proof needed
            proofs = prove_classification(candidate, deadline)
    except Exception as error:  # noqa: BLE001 - e.g. a derivative SymPy cannot form: keep the sampled verdict
        failure = SignProof("undecided", f"no proof ({type(error).__name__}: {error})")
        proofs = {"monotonicity": (failure, failure.detail), "convergence": (failure, failure.detail)}
    proof_seconds = time.perf_counter() - sampled_at
    curves = f"{len(probe.curves)} curve(s) of {len(probe.curves[0].rows)} logits in [-100, 100]"
    if probe.coarse_positive is not None:
        curves += " plus the authors' linspace(-10, 10, 200) check"
    sampled_share = (sampled_at - start) / (3 if "iou_aware" in rules else 2)
    seconds = sampled_share + proof_seconds / 2

    out = [
        _combine("monotonicity", True, rules, values, candidate, proofs.get("monotonicity", (None,))[0],
                 f"sampled on {curves}", seconds),
        _combine("convergence", True, rules, values, candidate, proofs.get("convergence", (None,))[0],
                 f"sampled on {curves}; end slope from {slopes_from}", seconds),
    ]
    if "iou_aware" in rules:
        points = len(probe.iou_curves) * len(probe.iou_curves[0][1].rows)
        out.append(_combine("iou_aware", True, rules, values, candidate, iou_aware_proof(candidate),
                            f"optimum non-decreasing in w over w in {{0.1, 0.25, 0.5, 0.75, 1}} ({points} points)",
                            sampled_share))
    return out
