"""Softmax and dot: the two operators that act along the class axis of the ``softmax`` form.

In a ``softmax``-form loss the inputs x, y, w are vectors over the C+1 classes of one sample.
Every other operator acts elementwise (a scalar broadcasts over the classes); ``softmax``
maps a vector to a vector and ``dot`` reduces two vectors to one value per sample. A
subexpression therefore has a *rank*: 1 (a vector over classes) or 0 (one value per sample).

SymPy cannot differentiate along an axis it does not know about, so these classes are
differentiated by *class reduction*: ``reduce_classes(expr, C)`` substitutes explicit
components x_0..x_{C-1} (and y_k, w_k) and expands ``softmax(a)_k = e^{a_k} / Σ_j e^{a_j}``
and ``dot(a, b) = Σ_k a_k b_k``, giving an ordinary scalar expression that SymPy
differentiates as usual. With C = 2 (the target class and one other) softmax reduces to
σ(a_0 − a_1), which is how verification proves properties of ``softmax``-form losses.
"""

from __future__ import annotations

import sympy
from sympy.core.sorting import default_sort_key


class VectorOperatorError(ValueError):
    """A class-axis operator used where it has no meaning (e.g. differentiated directly)."""


class Softmax(sympy.Function):
    """softmax(a) over the class axis; shift-invariant, so additive constants are dropped."""

    nargs = 1

    @classmethod
    def eval(cls, a):
        if a.is_Add:
            constant, rest = a.as_coeff_Add()
            if constant != 0:
                return cls(rest)
        return None

    def _eval_is_positive(self):
        return True if self.args[0].is_extended_real else None

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def fdiff(self, argindex=1):
        raise VectorOperatorError("softmax acts along the class axis; differentiate reduce_classes(expr, C)")


class Dot(sympy.Function):
    """dot(a, b) = Σ_k a_k·b_k over the class axis; symmetric, with numeric factors pulled out."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        ca, ra = a.as_coeff_Mul()
        cb, rb = b.as_coeff_Mul()
        if ca != 1 or cb != 1:
            return ca * cb * cls(ra, rb)
        if default_sort_key(b) < default_sort_key(a):
            return cls(b, a)
        return None

    def _eval_is_extended_real(self):
        if all(arg.is_extended_real for arg in self.args):
            return True
        return None

    def fdiff(self, argindex=1):
        raise VectorOperatorError("dot acts along the class axis; differentiate reduce_classes(expr, C)")


def expression_rank(expr: sympy.Expr, vector_symbols: frozenset[sympy.Symbol]) -> int:
    """Return 1 if ``expr`` is a vector over classes, 0 if it is one value per sample.

    Raises ``VectorOperatorError`` if softmax is applied to a per-sample value or dot has no
    vector argument (both would depend on how many classes there are, not on the sample).
    """
    if expr.is_Symbol:
        return 1 if expr in vector_symbols else 0
    if not expr.args:
        return 0
    ranks = [expression_rank(arg, vector_symbols) for arg in expr.args]
    if isinstance(expr, Softmax):
        if ranks[0] == 0:
            raise VectorOperatorError(f"softmax of a per-sample value: {expr}")
        return 1
    if isinstance(expr, Dot):
        if max(ranks) == 0:
            raise VectorOperatorError(f"dot of two per-sample values: {expr}")
        return 0
    return max(ranks)


def reduce_classes(
    expr: sympy.Expr, num_classes: int, vector_symbols: tuple[sympy.Symbol, ...]
) -> sympy.Expr:
    """Expand ``expr`` over ``num_classes`` explicit components into a scalar SymPy expression.

    Component k of a vector symbol ``v`` is the symbol ``v_k`` (same assumptions as ``v``).
    The result must be one value per sample (rank 0); a vector result raises.
    """
    components = {
        v: [sympy.Symbol(f"{v.name}_{k}", **v.assumptions0) for k in range(num_classes)]
        for v in vector_symbols
    }
    cache: dict[sympy.Expr, object] = {}

    def expand(node):
        if node in cache:
            return cache[node]
        if node in components:
            result = components[node]
        elif not node.args:
            result = node
        else:
            args = [expand(arg) for arg in node.args]
            if isinstance(node, Softmax):
                (a,) = args
                exps = [sympy.exp(ak) for ak in a]
                total = sympy.Add(*exps)
                result = [ek / total for ek in exps]
            elif isinstance(node, Dot):
                a, b = (arg if isinstance(arg, list) else [arg] * num_classes for arg in args)
                result = sympy.Add(*[ak * bk for ak, bk in zip(a, b, strict=True)])
            elif any(isinstance(arg, list) for arg in args):
                columns = [arg if isinstance(arg, list) else [arg] * num_classes for arg in args]
                result = [node.func(*row) for row in zip(*columns, strict=True)]
            else:
                result = node.func(*args)
        cache[node] = result
        return result

    reduced = expand(expr)
    if isinstance(reduced, list):
        raise VectorOperatorError(f"{expr} is a vector over classes; a loss needs one value per sample")
    return reduced
