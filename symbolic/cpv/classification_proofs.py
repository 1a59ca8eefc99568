"""Proofs of the classification properties over all real logits, for any number of classes.

* ``monotonicity``: the derivative in the varied logit has the required sign (≤ 0 for the
  target or positive, ≥ 0 for a non-target or negative) — by SymPy's assumptions, else by
  interval branch and bound over the whole real line (``sign_proofs``); the domain says
  how far it reached (all real x, or a range containing the detector's [−100, 100]).
* ``convergence``: the gradient tends to 0 as the logit tends to ±∞ toward the label
  (``limits``), with the minimum there by the proved monotonicity; where no limit can be
  taken in the time left, the fallback is the interval bound |dL/dx| ≤ 1e-3 at x = ±100,
  and the verdict says which argument decided it.
* ``iou_aware`` (sigmoid): the positive's optimum does not move away from 1 as w grows.
  Trivially when the positive loss does not read w, or when it falls in x for every w
  (its optimum is then the label itself); else by Topkis' monotone comparative statics:
  the minimizer in x of L(x, w) is non-decreasing in w when L has decreasing differences,
  ∂²L/∂x∂w ≤ 0. Each condition is shown for all real x at w = 0 and w = 1 when it is affine
  in w (it then holds for every w between), else for w in [0.1, 1] (bisected in ω = 1 − w).

The ``sigmoid`` form's curves fix y and w at the positive's (1, 1) and the negative's
(0, 0) values (``substitution``: where the formula is undefined there, the guarded value
training uses). The ``softmax`` form's are reduced for every number of classes
(``softmax_reduction``): the target's logit with the others summarised by their log-mass
ρ, their count n, one other class's share and argument and bounded sums, w over [0, 1]; and
a non-target's logit likewise, with two classes (exactly) and with three or more.
Each property is proved only if all its curves are; the caller adds the sampled check.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import sympy

from symbolic.cpv.intervals import Hull, Meet
from symbolic.cpv.limits import gradient_limit
from symbolic.cpv.proof_worker import ProofTimeout, clock, time_limit
from symbolic.cpv.rules import SLOPE_RTOL
from symbolic.cpv.sign_proofs import assumption_sign, prove_sign
from symbolic.cpv.softmax_reduction import RHO, X_J, X_O, X_T, N, OutsideReduction, Special, reduce_loss, relax
from symbolic.cpv.substitution import substitute
from symbolic.cpv.verdict import Proof, describe_range
from symbolic.forms import FORMS, w, x, y
from symbolic.lowering import evaluate_numpy

INF = math.inf
LOGITS = (-100.0, 100.0)
W_RANGE = (0.0, 1.0)
OMEGA = sympy.Symbol("omega", nonnegative=True)  # 1 − w
LIMIT_SHARE = 0.5  # of the time left, at most this much goes to SymPy's limit before the interval fallback
MAX_WITNESS_CLASSES = 1000  # a counterexample with more classes than this is not built
SEARCH_CLASSES = (2, 3, 5, 10, 30, 81)  # class counts an undecided softmax curve is searched at (COCO's 81 last)
SEARCH_ROWS = 64  # random logit vectors per class count
CONVERGENCE_RHO = (-100.0, 60.0)  # softmax fallback bound: the others' log-mass while the target can win


@dataclasses.dataclass(frozen=True)
class Curve:
    """One setting whose loss must move one way in one logit."""

    label: str
    derivative: sympy.Expr
    variable: sympy.Symbol
    box: dict[sympy.Symbol, tuple[float, float]]
    required: dict[sympy.Symbol, tuple[float, float]]
    sign: str  # of the derivative: "nonpositive" (falls as the logit rises) or "nonnegative"
    direction: int  # +1: the label is reached as the logit → +∞; −1: → −∞
    converges: bool  # convergence is demanded on this curve
    witness: Callable[[dict], dict | None]  # a refuted box's point → concrete inputs where the loss moves wrongly
    notes: tuple[str, ...] = ()
    search: Callable[[], dict | None] = lambda: None  # where undecided: concrete inputs found by a seeded search


def sigmoid_curves(expr: sympy.Expr) -> list[Curve]:
    """The positive (y = 1, w = 1) and the negative (y = 0, w = 0) in x over the real line."""
    curves = []
    for label, values, sign, direction in [("positive (y=1, w=1)", {y: 1, w: 1}, "nonpositive", 1),
                                           ("negative (y=0, w=0)", {y: 0, w: 0}, "nonnegative", -1)]:
        derivative = sympy.diff(substitute(expr, values), x)
        witness = functools.partial(_sigmoid_witness, values)
        curves.append(Curve(label, derivative, x, {x: (-INF, INF)}, {x: LOGITS}, sign, direction, True, witness))
    return curves


def _sigmoid_witness(values: dict, point: dict) -> dict:
    return {"x": point["x"], "y": float(values[y]), "w": float(values[w])}


SOFTMAX_CURVES = [  # label, specials, varied logit, sign, direction, whether other classes exist (n ≥ 1)
    ("target logit", (Special(X_T, 1),), X_T, "nonpositive", 1, True),
    ("non-target logit, two classes", (Special(X_T, 1), Special(X_J, 0)), X_J, "nonnegative", -1, False),
    ("non-target logit, three or more classes", (Special(X_T, 1), Special(X_J, 0)), X_J, "nonnegative", -1, True),
]


def softmax_curves(expr: sympy.Expr) -> list[Curve]:
    """The target's logit and a non-target's, reduced for every number of classes (``softmax_reduction``)."""
    curves = []
    for label, specials, varied, sign, direction, others in SOFTMAX_CURVES:
        reduced = reduce_loss(expr, specials, others)
        box = {varied: (-INF, INF), X_T: (-INF, INF), RHO: (-INF, INF), N: (1.0, INF), w: W_RANGE}
        relaxed = relax(sympy.diff(reduced.expr, varied), reduced.others_argument, box)
        box = {varied: box[varied], **relaxed.box}
        required = {s: LOGITS for s in (varied, X_T) if s in box}
        concrete = reduced.others_argument in (None, X_O)  # every ρ is then the others at one logit
        n_min = 1.0 if others else 0.0
        witness = functools.partial(_softmax_witness, expr, varied, sign, n_min) if concrete else _no_witness
        counts = tuple(c for c in SEARCH_CLASSES if (c == len(specials) if not others else c > len(specials)))
        search = functools.partial(_searched_witness, expr, varied, sign, counts)
        curves.append(Curve(label, relaxed.expr, varied, box, required, sign, direction, varied == X_T, witness,
                            relaxed.notes, search))
    return curves


def _searched_witness(expr, varied, sign, counts: tuple[int, ...]) -> dict | None:
    """Explicit logits where the numerics move the wrong way, from a seeded random search over ``counts`` classes.

    The sampled check probes three classes; a loss can turn around only with more (a sum over the
    classes grows with their number) or with two. Logits are drawn at three scales in [−24, 24] and w
    in (0, 1]; the slope is the finite difference of the guarded values, as in ``_wrong_slope``.
    """
    rng = np.random.default_rng(0)
    column = 0 if varied == X_T else 1
    for classes in counts:
        logits = rng.uniform(-8.0, 8.0, (SEARCH_ROWS, classes)) * rng.choice([0.3, 1.0, 3.0], (SEARCH_ROWS, 1))
        iou = rng.uniform(0.01, 1.0, SEARCH_ROWS)
        step = 1e-3 * np.maximum(1.0, np.abs(logits[:, column]))
        grid = np.concatenate([logits, logits])
        grid[:SEARCH_ROWS, column] -= step
        grid[SEARCH_ROWS:, column] += step
        inputs = {"x": grid, "y": np.tile(np.eye(classes)[0], (2 * SEARCH_ROWS, 1)),
                  "w": np.repeat(np.tile(iou, 2)[:, None], classes, axis=1)}
        values = evaluate_numpy(expr, FORMS["softmax"], inputs)
        low, high = values[:SEARCH_ROWS], values[SEARCH_ROWS:]
        slope = (high - low) / (2 * step)
        tolerance = 1e-9 * np.maximum(1.0, np.abs(low))
        wrong = slope > tolerance if sign == "nonpositive" else slope < -tolerance
        if wrong.any():
            row = int(np.argmax(wrong))
            return {"classes": classes, "x": logits[row].tolist(), "target": 0, "w": float(iou[row]),
                    f"dL/dx[{column}]": float(slope[row])}
    return None


def _no_witness(point: dict) -> None:
    return None


def _witness_configurations(point: dict, n_min: float):
    """(number of other classes, their common logit) to try for a refuted point, the point's own first."""
    rho = point.get("rho", point["a_o"] + point["d_o"] if "a_o" in point and "d_o" in point else None)
    count = point.get("n", math.exp(min(point["d_o"], 50.0)) if "d_o" in point else n_min)  # n equal shares e^(−d_o)
    least = max(int(n_min), 0 if rho is None else 1)
    for others in dict.fromkeys([max(int(round(min(count, MAX_WITNESS_CLASSES + 1))), least), least]):
        rests = ([(rho or 0.0) - math.log(others)] if others else []) + [0.0]
        for rest in dict.fromkeys(rests):
            yield others, rest


def _softmax_witness(expr, varied, sign, n_min, point: dict) -> dict | None:
    """Explicit logits for a refuted point (its other classes all at one logit), if the numerics move wrongly there."""
    column = 0 if varied == X_T else 1
    iou = point.get("w", 1.0)
    for others, rest in _witness_configurations(point, n_min):
        logits = [point.get("x_t", 0.0)] + ([point[X_J.name]] if varied == X_J else []) + [rest] * others
        if others > MAX_WITNESS_CLASSES or not all(LOGITS[0] <= v <= LOGITS[1] for v in logits):
            continue
        slope = _wrong_slope(expr, logits, column, iou, sign)
        if slope is not None:
            return {"classes": len(logits), "x": logits, "target": 0, "w": iou, f"dL/dx[{column}]": slope}
    return None


def _wrong_slope(expr, logits: list[float], column: int, iou: float, sign: str) -> float | None:
    """The numerics' slope in logit ``column`` at ``logits`` where it has the wrong sign, else None."""
    step = 1e-3 * max(1.0, abs(logits[column]))
    grid = np.tile(np.array(logits, dtype=np.float64), (2, 1))
    grid[:, column] += (-step, step)
    classes = len(logits)
    inputs = {"x": grid, "y": np.tile(np.eye(classes)[0], (2, 1)), "w": np.full((2, classes), iou)}
    low, high = evaluate_numpy(expr, FORMS["softmax"], inputs)
    slope = (high - low) / (2 * step)
    wrong = slope > 1e-9 * max(1.0, abs(low)) if sign == "nonpositive" else slope < -1e-9 * max(1.0, abs(low))
    return float(slope) if wrong else None


def _scope(curve: Curve, domain: str) -> str:
    return f"{curve.label}: {_summarised(curve, domain)}" + (f" ({'; '.join(curve.notes)})" if curve.notes else "")


def _summarised(curve: Curve, domain: str) -> str:
    """``domain`` with the other classes' variables (ρ, n, a_o, d_o, s_k ...) summarised where it is their whole box."""
    own = [v for v in curve.box if v in (curve.variable, X_T, X_J, w, x) or v == RHO and curve.box[v] == (-INF, INF)]
    others = [v for v in curve.box if v not in own]
    if not others or domain != ", ".join(describe_range(v.name, *curve.box[v]) for v in curve.box):
        return domain
    return ", ".join(describe_range(v.name, *curve.box[v]) for v in own) + ", every value of the other classes' " \
        f"variables ({', '.join(v.name for v in others)})"


def prove_monotonicity(curves: list[Curve], deadline: float) -> Proof:
    """The derivative's sign on every curve: SymPy's assumptions, else branch and bound over the real line."""
    arguments, domains, undecided = [], [], None
    for curve in curves:
        if assumption_sign(curve.derivative, curve.sign):
            proof = Proof("proved", "SymPy assumptions", "all real inputs")
        else:
            proof = prove_sign(curve.derivative, curve.box, curve.sign, deadline=deadline, required=curve.required)
        example = curve.witness(proof.counterexample) if proof.status == "refuted" else None
        if example is not None:
            return Proof("refuted", proof.argument, "", f"{curve.label}: dL/d{curve.variable.name} has the wrong "
                         f"sign ({proof.detail})", example)
        if proof.status != "proved":
            example = curve.search()
            if example is not None:
                return Proof("refuted", "a seeded search over explicit logits", "", f"{curve.label}: dL/d"
                             f"{curve.variable.name} has the wrong sign with {example['classes']} classes (the proof "
                             "was undecided)", example)
            # the later curves may still refute with explicit logits: an undecided curve is reported only after them
            why = "the relaxed bound has the wrong sign somewhere" if proof.status == "refuted" else proof.detail
            undecided = undecided or Proof.undecided(f"{curve.label}: derivative sign undecided ({why})",
                                                     timed_out=proof.timed_out)
            continue
        arguments.append(f"{curve.label}: {proof.argument}")
        domains.append(_scope(curve, proof.domain))
    if undecided is not None:
        return undecided
    return Proof("proved", "sign of the derivative (" + "; ".join(arguments) + ")", "; ".join(domains))


def _end_bound(curve: Curve, deadline: float) -> Proof:
    """The fallback: |dL/dx| ≤ SLOPE_RTOL at the end of the detector's range, by intervals."""
    end = LOGITS[1] if curve.direction > 0 else LOGITS[0]
    fixed = {curve.variable: (end, end), RHO: CONVERGENCE_RHO}
    box = {s: fixed.get(s, curve.required.get(s, bounds)) for s, bounds in curve.box.items()}
    proof = prove_sign(SLOPE_RTOL - sympy.Abs(curve.derivative), box, "nonnegative", deadline=deadline)
    if proof.status == "proved":
        return Proof("proved", f"interval bound |dL/d{curve.variable.name}| <= {SLOPE_RTOL:g}", proof.domain)
    return Proof.undecided(f"no limit, and the end-slope bound is undecided ({proof.detail})",
                           timed_out=proof.timed_out)


def _constant_hulls(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr | None:
    """``expr`` with each hull (``Hull``, ``Meet``) a symbol of its own: a constant as ``variable`` moves, or None."""
    hulls = sorted(expr.atoms(Meet, Hull), key=sympy.default_sort_key)
    if any(variable in hull.free_symbols for hull in hulls):
        return None
    return expr.xreplace({hull: sympy.Symbol(f"hull_{k}", real=True) for k, hull in enumerate(hulls)})


def prove_convergence(curves: list[Curve], monotone: Proof, deadline: float) -> Proof:
    """The gradient vanishes toward the label on every converging curve (limit, else the end bound)."""
    if monotone.status != "proved":
        return Proof.undecided("monotonicity is not proved, so the minimum need not be at the label")
    arguments, domains = [], []
    for curve in [c for c in curves if c.converges]:
        share = clock() + LIMIT_SHARE * max(0.0, deadline - clock())
        derivative = _constant_hulls(curve.derivative, curve.variable)
        proof = Proof.undecided("a bound over the other classes moves with the logit") if derivative is None else \
            gradient_limit(derivative, curve.variable, curve.direction, share)
        if proof.status == "refuted" and curve.witness(proof.counterexample or {}) is not None:
            return proof
        if proof.status != "proved":
            proof = _end_bound(curve, deadline)
            if proof.status != "proved":
                return Proof.undecided(f"{curve.label}: {proof.detail}", timed_out=proof.timed_out)
        arguments.append(f"{curve.label}: {proof.argument}")
        domains.append(_scope(curve, proof.domain))
    return Proof("proved", "; ".join(arguments) + "; the minimum is there by the proved monotonicity",
                 "; ".join(domains))


def _sign_over_w(expr: sympy.Expr, sign: str, deadline: float) -> Proof:
    """``expr`` (in x and w) has ``sign`` for all real x and every w: at w's two ends when affine in w, else on a box.

    An affine function of w lies between its values at w = 0 and w = 1, so then two
    one-variable proofs cover the whole range (0, 1]; otherwise x and ω = 1 − w are bounded
    together, ω in [0, 0.9] required.
    """
    box, required = {x: (-INF, INF)}, {x: LOGITS}
    if not sympy.diff(expr, w).has(w):
        arguments, domains = [], []
        for end in (0, 1):
            proof = prove_sign(expr.xreplace({w: end}), box, sign, deadline=deadline, required=required)
            if proof.status != "proved":
                return proof
            arguments.append(proof.argument)
            domains.append(f"w = {end}: {proof.domain}")
        return Proof("proved", f"affine in w, so decided at w = 0 and w = 1 ({'; '.join(arguments)})",
                     f"{'; '.join(domains)}, so every w in [0, 1]")
    # in ω = 1 − w, terms such as w − σ(x) become σ(−x) − ω: no cancellation near w = 1 at large x
    proof = prove_sign(expr.xreplace({w: 1 - OMEGA}), {**box, OMEGA: (0.0, 1.0)}, sign, deadline=deadline,
                       required={**required, OMEGA: (0.0, 0.9)})
    return dataclasses.replace(proof, domain=f"{proof.domain} (omega = 1 - w)") if proof.status == "proved" else proof


def prove_iou_aware(expr: sympy.Expr, deadline: float) -> Proof:
    """The positive's optimum never moves toward 0 as w grows: it falls in x for every w, or Topkis applies."""
    positive = substitute(expr, {y: 1})
    if not positive.has(w):
        return Proof("proved", "the positive loss does not depend on w", "all real x, every w")
    falls = _sign_over_w(sympy.diff(positive, x), "nonpositive", deadline)
    if falls.status == "proved":
        return Proof("proved", f"the positive loss falls in x for every w ({falls.argument}), so its optimum stays "
                     "at the label", falls.domain)
    cross = sympy.diff(positive, x, w)
    argument = "Topkis: d2L/dx dw <= 0 (decreasing differences), so the minimizer in x is non-decreasing in w"
    if assumption_sign(cross, "nonpositive"):
        return Proof("proved", f"{argument} (SymPy assumptions)", "all real x, every w")
    proof = _sign_over_w(cross, "nonpositive", deadline)
    if proof.status == "proved":
        return Proof("proved", f"{argument} ({proof.argument})", proof.domain)
    # both conditions are only sufficient: their failure refutes nothing
    return Proof.undecided(f"neither falls in x for every w nor d2L/dx dw <= 0 shown "
                           f"({proof.detail or 'wrong sign somewhere'})", timed_out=proof.timed_out)


def prove_classification(expr: sympy.Expr, form: str, deadline: float) -> dict[str, Proof]:
    """Proofs of monotonicity, convergence and (sigmoid) IoU-awareness, each stopped at ``deadline``."""
    out: dict[str, Proof] = {}
    try:
        with time_limit(deadline):
            curves = sigmoid_curves(expr) if form == "sigmoid" else softmax_curves(expr)
            out["monotonicity"] = prove_monotonicity(curves, deadline)
    except OutsideReduction as why:
        out["monotonicity"] = Proof.undecided(f"outside the any-number-of-classes reduction: {why}")
        curves = []
    except ProofTimeout:
        out["monotonicity"] = Proof.undecided("", timed_out=True)
        curves = []
    out["convergence"] = _guarded(lambda: prove_convergence(curves, out["monotonicity"], deadline), deadline)
    if form == "sigmoid":
        out["iou_aware"] = _guarded(lambda: prove_iou_aware(expr, deadline), deadline)
    return out


def _guarded(proof, deadline: float) -> Proof:
    """``proof()`` stopped at ``deadline``; an error in one property's proof leaves that property undecided only."""
    try:
        with time_limit(deadline):
            return proof()
    except ProofTimeout:
        return Proof.undecided("", timed_out=True)
    except (ArithmeticError, TypeError, ValueError) as error:  # a SymPy corner (nan comparison ...)
        return Proof.undecided(f"no proof ({type(error).__name__}: {error})")
