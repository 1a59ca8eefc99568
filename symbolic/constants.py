"""Constant lifting: a candidate's numeric constants as parameters, and the candidate rebuilt with others.

``lift_constants(candidate)`` gives the constants in a fixed order, a JAX function
``f(constants, *inputs)`` differentiable in them (equal to ``Candidate.to_jax()`` at the
original values: it runs the same program, reading the constants from the array), and
``with_constants(values)``, the candidate with other values (which then needs its own CPV
verdict). Constant refinement and the exports with trainable constants use it.

Which numbers are constants. They are the numbers the lowered program reads (see
``symbolic.lowering``), in the canonical expression:

* per product, the product of its number factors over the line (the 3 of 3x/(4u), the
  −2·log 2 of −2·log(2)·x), unless it is 1 or −1 (a −1 is the sign of a negation), and the
  product of those under it (the 4 of 3x/(4u)); a product with only numbers under the line has
  one coefficient (the 1/4 of y/4);
* per sum, the sum of its number terms (the 1 of 1 − y);
* any other number standing alone as an operand (the 2 of dot(y, 2)).

Exponents are structure, not constants: the 2 of x², the 1/2 of √x and the −1 of 1/x decide
which operators run (a multiplication, a square root, a division); a new value would be
another formula. A constant is never alone under a guard, so lifting it changes nothing in the
guarded numerics.

Order: the program's evaluation order, i.e. depth first over the canonical expression's
arguments, which SymPy keeps in a fixed order; so one candidate always lists its constants the
same way. Each occurrence of a number is a constant of its own, except inside a subexpression
that occurs twice: that one is computed once, and so are its constants.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import sympy

from symbolic.candidate import Candidate
from symbolic.lowering import Program, jax_loss


@dataclasses.dataclass(frozen=True, eq=False)
class LiftedConstants:
    """A candidate's compiled program with its numeric constants lifted out, in order."""

    candidate: Candidate
    program: Program

    @property
    def exact(self) -> tuple[sympy.Expr, ...]:
        """The constants as exact SymPy numbers (1/4, log(2), ...)."""
        return tuple(constant.exact for constant in self.program.constants)

    @property
    def values(self) -> tuple[float, ...]:
        """The constants as floats, the values the lowering runs with."""
        return tuple(constant.value for constant in self.program.constants)

    def __len__(self) -> int:
        return len(self.program.constants)

    def to_jax(self) -> Callable:
        """A jitted ``f(constants, *inputs)``: the candidate's loss with ``constants[k]`` for the k-th constant."""
        return _lifted_jax(self)

    def with_constants(self, values: Sequence[float], *, digits: int | None = None) -> Candidate:
        """The candidate with the constants set to ``values`` (rounded to ``digits`` significant digits if given).

        Each new value becomes the exact decimal fraction of its shortest float text (0.3 is 3/10);
        a value equal to an original constant's float keeps the original exact number (log 2 stays
        log 2). Raises ValueError for a wrong count or a non-finite value, and InvalidCandidate when
        the values make no valid loss of the form (e.g. a coefficient 0 that removes x).
        """
        if len(values) != len(self):
            raise ValueError(f"{self.candidate.infix()} has {len(self)} constants "
                             f"{self.values}; got {len(values)} values")
        exact = []
        for k, (value, original) in enumerate(zip(values, self.program.constants, strict=True)):
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"constant {k} must be a finite number, got {value}")
            text = repr(value) if digits is None else f"{value:.{digits}g}"
            exact.append(original.exact if float(text) == original.value else sympy.Rational(text))
        rebuilt = _rebuild(self.candidate.expr, self.program.sites, exact, self.exact, {})
        return Candidate(rebuilt, self.candidate.form)


def _rebuild(node: sympy.Expr, sites, values: Sequence[sympy.Expr], originals: Sequence[sympy.Expr],
             memo: dict) -> sympy.Expr:
    """``node`` with the constants it holds (``sites``, recorded by the lowering) set to ``values``.

    A sum or product keeps its other arguments, and its number part becomes the new value;
    SymPy's evaluation then applies as to any expression built from those arguments.
    """
    if not node.args or node.is_number:
        return node
    rebuilt = memo.get(node)
    if rebuilt is not None:
        return rebuilt
    held = [values[k] ** exponent for k, exponent in sites.get(node, ())]
    if (node.is_Add or node.is_Mul) and node in sites:
        rest = [_rebuild(arg, sites, values, originals, memo) for arg in node.args if not arg.is_number]
        if node.is_Mul:  # a -1 over the line was a negation, not a constant: keep it
            numbers = sympy.Mul(*(arg for arg in node.args if arg.is_number))
            held.append(numbers / sympy.Mul(*(originals[k] ** exponent for k, exponent in sites[node])))
        rebuilt = node.func(*held, *rest)
    else:
        numbers = iter(held)
        rebuilt = node.func(*(next(numbers) if arg.is_number and node in sites else
                              _rebuild(arg, sites, values, originals, memo) for arg in node.args))
    memo[node] = rebuilt
    return rebuilt


@functools.lru_cache(maxsize=1024)
def lift_constants(candidate: Candidate) -> LiftedConstants:
    """The candidate's constants, lifted out of its lowered program (see the module docstring for the rule)."""
    return LiftedConstants(candidate, Program(candidate.expr, candidate.form.input_names))


@functools.lru_cache(maxsize=1024)
def _lifted_jax(lifted: LiftedConstants) -> Callable:
    return jax_loss(lifted.program, lifted.candidate.form, lifted=True)
