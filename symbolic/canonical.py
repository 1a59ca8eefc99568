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
hard time budget (``symbolic.time_budget``). The key hashes the canonical expression written as primitives (its light
tree), which identifies it exactly and costs far less than ``srepr``.

What SymPy cannot show equal, the *functional fingerprint* catches: values on a fixed
seeded probe set of the form's inputs, rounded to 24 mantissa bits, then hashed. It is
computed by the light-tree evaluator, so a raw tree in the numeric screen and the candidate
built from it get the same fingerprint. The third layer, gradient equivalence (L, L + c and k·L
with k > 0 train alike), is ``symbolic.gradient_equivalence``; ``symbolic.funnel`` applies the
three, with CPV, in one pipeline and keeps what they admitted.
"""

from __future__ import annotations

import hashlib

import numpy as np
import sympy

from symbolic.forms import Form, probe_inputs
from symbolic.functions import S_CURVES, Sigmoid, Softplus
from symbolic.numeric import evaluate_trees
from symbolic.time_budget import BudgetExceeded, time_budget
from symbolic.tree import Tree

MAX_PASSES = 4  # rewriting reaches its fixed point in one or two passes
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
    for _ in range(MAX_PASSES):
        rewritten = _rewrite(expr)
        if rewritten == expr:
            return rewritten
        expr = rewritten
    return expr


def _rewrite(expr: sympy.Expr) -> sympy.Expr:
    if not expr.args:
        return expr
    # Every node is rebuilt: SymPy leaves some nodes unevaluated (e.g. inside Abs), and a
    # rebuilt tree must not change again, or the key would depend on how a tree was written.
    node = expr.func(*(_rewrite(arg) for arg in expr.args))
    if node.is_number:
        _check_constant(node)
    if isinstance(node, sympy.log) and isinstance(node.args[0], Sigmoid):
        return -Softplus(-node.args[0].args[0])
    if node.is_Add:
        return _absorb_complements(node)
    if node.is_Mul:
        return _extract_sum_content(node)
    return node


def _extract_sum_content(node: sympy.Mul) -> sympy.Expr:
    """y·(2x + 2) → 2·y·(x + 1): numbers move out of sum factors, whatever the build order.

    SymPy distributes a number over a sum only in a two-factor product, so 2·(x+1)·y and
    2·((x+1)·y) would otherwise evaluate differently. A sum whose terms are all negative
    gives up its sign too: y·(−x − 1) → −y·(x + 1).
    """
    factors = node.args
    if sum(not f.is_number for f in factors) < 2 or not any(f.is_Add for f in factors):
        return node
    coefficient, rest = sympy.S.One, []
    for factor in factors:
        if factor.is_Add:
            content, primitive = factor.primitive()
            if all(term.could_extract_minus_sign() for term in primitive.args):
                content, primitive = -content, -primitive
            coefficient *= content
            rest.append(primitive)
        else:
            rest.append(factor)
    return node if coefficient == 1 else sympy.Mul(coefficient, *rest)


def _check_constant(node: sympy.Expr) -> None:
    """Reject a constant subexpression that is not a finite real number, e.g. sqrt(cos(3) − 1).

    SymPy keeps such constants symbolic; their guarded numerics would silently disagree
    with the mathematics (the lowering floors sqrt and log arguments), so they are invalid.
    """
    try:
        value = complex(node.evalf(20))
    except (TypeError, ValueError, ArithmeticError):
        raise InvalidCandidate(f"the constant {node} has no real value") from None
    if value.imag != 0 or not np.isfinite(value.real):
        raise InvalidCandidate(f"the constant {node} is not a finite real number")


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


def canonical_key(tree: Tree, form: Form) -> str:
    """A short stable identity: a hash of the form and the canonical expression's primitive tree."""
    return hashlib.sha1(f"{form.name}|{tree!r}".encode()).hexdigest()[:20]


def fingerprint_rows(values: np.ndarray, *, bits: int = FINGERPRINT_BITS) -> list[str]:
    """The fingerprint of each row of ``values`` [T, ...]: rounded to ``bits`` mantissa bits, hashed.

    Non-finite values hash by kind (NaN, +inf, −inf). A value that rounds up to a power of two hashes as
    that power, so 1 − 1e-12 and 1 + 1e-12 agree.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    finite = np.isfinite(values)
    mantissa, exponent = np.frexp(np.where(finite, values, 0.0))
    mantissa = np.round(mantissa * (1 << bits)).astype(np.int64)
    carried = np.abs(mantissa) == 1 << bits  # rounded up to the next power of two: write it as that power
    mantissa, exponent = np.where(carried, mantissa // 2, mantissa), np.where(carried, exponent + 1, exponent)
    kind = np.where(finite, 0, np.where(np.isnan(values), 1, np.where(values > 0, 2, 3)))
    payload = np.ascontiguousarray(np.stack([mantissa, exponent.astype(np.int64), kind], axis=1))
    return [hashlib.sha1(row.tobytes()).hexdigest()[:20] for row in payload]


def fingerprint(tree: Tree, form: Form) -> str:
    """The functional fingerprint of a tree: its values on the form's fixed probe inputs, hashed."""
    return fingerprint_rows(evaluate_trees([tree], probe_inputs(form.name), form))[0]


def bounded_simplify(expr: sympy.Expr, seconds: float = 1.0) -> tuple[sympy.Expr, bool]:
    """``sympy.simplify`` within a budget of ``seconds`` of CPU time: (result, finished in time).

    On timeout the input comes back unchanged with ``False``; any thread may call it.
    """
    try:
        with time_budget(seconds):
            simplified = sympy.simplify(expr)
    except BudgetExceeded:
        return expr, False
    if sympy.count_ops(simplified) > sympy.count_ops(expr):
        return expr, True
    return simplified, True
