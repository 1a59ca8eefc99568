"""Canonical form, identity and deduplication of candidate losses.

The canonical form is SymPy's automatic evaluation (sorted Add/Mul arguments, collected
powers and coefficients, assumption-driven rules such as |σ(x)| = σ(x)) plus a bounded set
of local rewrites, each exact and applied in one bottom-up pass:

* ``log(s(a))`` for s = σ becomes ``−softplus(−a)`` (exact, and stable in float32);
* an Add holding a constant c and a term −k·s(a), for an S-curve s and 0 < k ≤ c, becomes
  ``(c − k) + k·s(−a)`` (all our S-curves satisfy s(−a) = 1 − s(a)), so 1 − σ(x) and
  σ(−x) are one formula.

The pass is linear in the size of the expression; ``simplify`` is never part of the key
(it can run for minutes on a 12-operator expression) and is offered separately under a
hard time budget. What SymPy cannot show equal, the *functional fingerprint* catches:
values on a fixed seeded probe set of the form's inputs, rounded, then hashed.
"""

from __future__ import annotations

import hashlib
import signal
import threading
from contextlib import contextmanager

import numpy as np
import sympy

from symbolic.forms import Form
from symbolic.functions import S_CURVES, Sigmoid, Softplus
from symbolic.lowering import evaluate_numpy

FINGERPRINT_BITS = 24  # mantissa bits kept: relative precision 6e-8, far above float64 round-off


class InvalidCandidate(ValueError):
    """A formula that cannot be a loss candidate; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_FORBIDDEN = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


def canonicalize(expr: sympy.Expr) -> sympy.Expr:
    """The canonical form of ``expr``; raises InvalidCandidate for non-finite or complex atoms."""
    for atom in _FORBIDDEN:
        if expr.has(atom):
            raise InvalidCandidate(f"the formula evaluates to {atom} (e.g. a division by zero or a complex root)")
    if expr.has(sympy.Float):
        raise InvalidCandidate("floating-point constants are not exact; write them as fractions")
    return _rewrite(expr)


def _rewrite(expr: sympy.Expr) -> sympy.Expr:
    if not expr.args:
        return expr
    args = tuple(_rewrite(arg) for arg in expr.args)
    node = expr if args == expr.args else expr.func(*args)
    if isinstance(node, sympy.log) and isinstance(node.args[0], Sigmoid):
        return -Softplus(-node.args[0].args[0])
    if node.is_Add:
        return _absorb_complements(node)
    return node


def _absorb_complements(node: sympy.Add) -> sympy.Expr:
    constant, terms = node.as_coeff_add()
    if constant <= 0:
        return node
    new_terms = []
    changed = False
    for term in terms:
        coeff, rest = term.as_coeff_Mul()
        if coeff < 0 and isinstance(rest, S_CURVES) and -coeff <= constant:
            constant += coeff
            new_terms.append(-coeff * rest.func(-rest.args[0]))
            changed = True
        else:
            new_terms.append(term)
    return sympy.Add(constant, *new_terms) if changed else node


def canonical_key(expr: sympy.Expr, form: Form) -> str:
    """A short stable identity: a hash of the form and the canonical expression's srepr."""
    return hashlib.sha1(f"{form.name}|{sympy.srepr(expr)}".encode()).hexdigest()[:20]


def fingerprint_values(values: np.ndarray) -> str:
    """Hash of values rounded to 24 mantissa bits; non-finite values hash by kind."""
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(values)
    mantissa, exponent = np.frexp(np.where(finite, values, 0.0))
    mantissa = np.round(mantissa * (1 << FINGERPRINT_BITS)).astype(np.int64)
    kind = np.where(finite, 0, np.where(np.isnan(values), 1, np.sign(values).astype(np.int64) + 2))
    payload = np.stack([mantissa, exponent.astype(np.int64), kind]).tobytes()
    return hashlib.sha1(payload).hexdigest()[:20]


def fingerprint(expr: sympy.Expr, form: Form) -> str:
    """The functional fingerprint: values on the form's fixed probe inputs, rounded, hashed."""
    return fingerprint_values(evaluate_numpy(expr, form, form.probe_inputs()))


class _Timeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        raise _Timeout("a time limit needs the main thread")

    def interrupt(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bounded_simplify(expr: sympy.Expr, seconds: float = 1.0) -> tuple[sympy.Expr, bool]:
    """``sympy.simplify`` under a hard time budget: (result, finished in time).

    On timeout, or outside the main thread (where no alarm can interrupt SymPy), the input
    comes back unchanged with ``False``.
    """
    try:
        with _time_limit(seconds):
            simplified = sympy.simplify(expr)
    except _Timeout:
        return expr, False
    if sympy.count_ops(simplified) > sympy.count_ops(expr):
        return expr, True
    return simplified, True


class Deduplicator:
    """Remembers canonical keys and fingerprints; says whether a candidate is new."""

    def __init__(self):
        self.keys: set[str] = set()
        self.fingerprints: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def duplicate_of(self, candidate) -> str | None:
        """Why ``candidate`` repeats one already admitted (None if it is new); admits it if new."""
        if candidate.key in self.keys:
            return "same canonical form as an earlier candidate"
        prior = self.fingerprints.get(candidate.fingerprint)
        if prior is not None:
            return f"same values as candidate {prior} on every probe input"
        self.keys.add(candidate.key)
        self.fingerprints[candidate.fingerprint] = candidate.key
        return None
