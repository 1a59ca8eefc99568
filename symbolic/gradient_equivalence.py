"""Gradient equivalence: the third dedup layer, on a loss's derivative by the inputs a detector moves.

Why equal up to a positive factor is the right equivalence. A detector trained on a loss L sees L
only through its gradient, ∇θ L = Σ (∂L/∂v)·(∂v/∂θ) over the loss inputs v that the parameters
move. L + c has the same gradient as L; k·L with a constant k > 0 has k times that gradient. Under
Adam/AdamW, the optimizer of the simulation (MOS), the proxy task and the detectors, the update
m/(√v + ε) does not change when every gradient is multiplied by k (up to ε and the clipping
threshold); under SGD the factor is absorbed by the learning rate, which is tuned per loss. So such
candidates train the same detector, and simulating or proxy-training more than one of them spends
budget on nothing (AutoLoss-Zero and EvoMAL deduplicate the same way). The factor must be
positive (−L ascends) and a constant: a factor that depends on the label or the IoU reweights the
samples and makes another loss.

The inputs a detector moves: the logits ``x`` of the classification forms (the label and the
detached IoU are constants there), and all three areas ``i, u, e`` of a regression loss, since
each moves with the predicted box. The gradient is the vector of those partial derivatives.

Two identities, as for values (``symbolic.canonical``):

* the **gradient key** (symbolic): each partial derivative of the canonical expression (the
  ``softmax`` form first reduced to ``PROBE_CLASSES`` explicit classes, ``symbolic.vector_ops``),
  written as one positive number times a remainder (the rational content of its terms, times the
  factor free of the inputs); the key hashes the remainders
  and each partial's number relative to the first nonzero one. Bounded: skipped (None) when the
  derivative grows past ``MAX_DERIVATIVE_OPS`` operations (or, as a safety net, takes longer than
  ``KEY_SECONDS``);
* the **gradient fingerprint** (numeric backstop): central-difference slopes on the form's probe
  inputs (``probe_gradient``), divided by their root mean square, rounded and hashed like the value
  fingerprint (``fingerprint_rows``). It catches what SymPy does not show equal, exists for every
  candidate and costs about a millisecond (no JAX: an eager float64 gradient compiles each primitive
  on first use, seconds per new operator, measured).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import sympy

from symbolic.canonical import InvalidCandidate, canonicalize, fingerprint_rows
from symbolic.forms import Form, probe_inputs
from symbolic.numeric import evaluate_trees
from symbolic.time_budget import BudgetExceeded, time_budget
from symbolic.vector_ops import reduce_classes

MAX_DERIVATIVE_OPS = 400  # a longer derivative is not worth canonicalizing: the fingerprint decides
# A safety net only: the operation bound above decides deterministically, so a search gives the same keys
# on a loaded machine; a key that does run over (or is asked for outside the main thread) is None.
KEY_SECONDS = 2.0
PROBE_CLASSES = 4  # classes of the softmax form's reduction, as many as its probe inputs have
STEP = 1e-4  # central-difference step, relative to max(1, |input|)
GRADIENT_BITS = 16  # mantissa bits of the normalized slopes kept: 1.5e-5, far above their round-off (~1e-11)
ZERO_FLOOR = 1e-7  # normalized slopes below this are round-off of a vanishing slope


def gradient_inputs(form: Form) -> tuple[str, ...]:
    """The inputs a detector's parameters move: the logits, or all three areas of a regression loss."""
    return form.input_names if form.name == "reg" else (form.required.name,)


def gradient_key(candidate) -> str | None:
    """The symbolic gradient identity: equal for L, L + c and k·L (k > 0); None when not cheap to compute."""
    try:
        with time_budget(KEY_SECONDS):
            partials = _partials(candidate)
            if partials is None:
                return None
            normalized = _normalize(partials)
    except (BudgetExceeded, InvalidCandidate, RecursionError):
        return None
    return None if normalized is None else hashlib.sha1(
        f"{candidate.form.name}|{normalized}".encode()).hexdigest()[:20]


def _partials(candidate) -> list[sympy.Expr] | None:
    form, expr = candidate.form, candidate.expr
    if form.vector:
        expr = reduce_classes(expr, PROBE_CLASSES, form.symbols)
        moving = [sympy.Symbol(f"{form.required.name}_{k}", **form.required.assumptions0)
                  for k in range(PROBE_CLASSES)]
    else:
        moving = [form.symbol(name) for name in gradient_inputs(form)]
    partials = []
    for symbol in moving:
        derivative = sympy.diff(expr, symbol)
        if sympy.count_ops(derivative) > MAX_DERIVATIVE_OPS:
            return None
        partials.append(canonicalize(sympy.factor_terms(derivative)))
    return partials


def _normalize(partials: list[sympy.Expr]) -> str | None:
    """The partials as (number relative to the first nonzero partial's, remainder) text; None if all vanish."""
    split = []
    for derivative in partials:
        if derivative == 0:
            split.append((sympy.S.Zero, sympy.S.Zero))
            continue
        content, rest = derivative.as_content_primitive()  # the rational content of a sum's terms
        number, rest = rest.as_independent(*rest.free_symbols, as_Add=False) if rest.free_symbols else (rest, 1)
        number = content * number
        if not number.is_number or number.is_zero:
            return None
        if number.is_negative:
            number, rest = -number, -rest
        elif not number.is_positive:
            return None  # a number whose sign SymPy cannot decide: leave it to the fingerprint
        split.append((number, rest))
    scale = next((number for number, _ in split if number != 0), None)
    if scale is None:
        return None
    return "|".join(f"{sympy.srepr(number / scale)}*{sympy.srepr(rest)}"
                    for number, rest in split)


def probe_gradient(candidate, inputs: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Central-difference slopes of the loss by each moving input on the form's probe inputs (or ``inputs``).

    Evaluated on the candidate's light tree (``numeric.evaluate_trees``, float64) with the step
    ``STEP · max(1, |v|)``: the slopes are only ~1e-8 accurate, but equivalent candidates get the same
    slopes to round-off (the difference quotient of k·L is k times that of L, and c cancels from the
    one of L + c), which is what the fingerprint needs.
    """
    form = candidate.form
    probe = probe_inputs(form.name) if inputs is None else inputs
    slopes = []
    for name in gradient_inputs(form):
        value = probe[name]
        columns = range(value.shape[-1]) if form.vector else (None,)
        for column in columns:
            step = np.zeros_like(value)
            if column is None:
                step[...] = STEP * np.maximum(1.0, np.abs(value))
            else:
                step[..., column] = STEP * np.maximum(1.0, np.abs(value[..., column]))
            sides = [evaluate_trees([candidate.tree], {**probe, name: value + sign * step}, form)[0]
                     for sign in (1.0, -1.0)]
            slopes.append(np.ravel((sides[0] - sides[1]) / (2 * np.max(step, axis=-1) if form.vector else 2 * step)))
    return np.concatenate(slopes)


def gradient_fingerprint(candidate) -> str:
    """Hash of the probe gradient divided by its root mean square: equal for L, L + c and k·L (k > 0).

    Rounded to ``GRADIENT_BITS`` mantissa bits, far above the slopes' round-off; slopes below
    ``ZERO_FLOOR`` of the root mean square count as zero (round-off of a vanishing slope).
    """
    gradient = probe_gradient(candidate)
    with np.errstate(all="ignore"):
        scale = np.sqrt(np.mean(np.square(gradient)))
        if np.isfinite(scale) and scale > 0:
            gradient = gradient / scale
            gradient = np.where(np.abs(gradient) < ZERO_FLOOR, 0.0, gradient)
    return fingerprint_rows(gradient[None], bits=GRADIENT_BITS)[0]


class GradientIndex:
    """Remembers gradient keys and fingerprints; says whether a candidate trains like one admitted before.

    ``entries`` are admitted (candidate key, gradient key, gradient fingerprint) triples, e.g. a search
    checkpoint's; ``admitted`` lists every triple in order, JSON-ready.
    """

    def __init__(self, entries=()):
        self.keys: dict[str, str] = {}
        self.fingerprints: dict[str, str] = {}
        self.admitted: list[list] = []
        for candidate_key, key, fingerprint in entries:
            self._admit(candidate_key, key, fingerprint)

    def __len__(self) -> int:
        return len(self.admitted)

    def _admit(self, candidate_key: str, key: str | None, fingerprint: str) -> None:
        if key is not None:
            self.keys.setdefault(key, candidate_key)
        self.fingerprints.setdefault(fingerprint, candidate_key)
        self.admitted.append([candidate_key, key, fingerprint])

    def duplicate_of(self, candidate) -> str | None:
        """Why ``candidate`` trains like an admitted one (None if it does not); admits it if it does not."""
        key, fingerprint = candidate.gradient_key, candidate.gradient_fingerprint
        prior = self.keys.get(key) if key is not None else None
        if prior is not None:
            return f"same gradient as candidate {prior} up to a positive factor (symbolic)"
        prior = self.fingerprints.get(fingerprint)
        if prior is not None:
            return f"same gradient as candidate {prior} up to a positive factor on every probe input"
        self._admit(candidate.key, key, fingerprint)
        return None
