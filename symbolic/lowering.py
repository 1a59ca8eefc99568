"""Lowering SymPy expressions to NumPy and JAX, through the operator table.

SymPy's own code printers are not used: they print ``erf`` as ``math.erf`` (breaks under
tracing), turn ``Piecewise`` into a ``select`` that leaks NaN gradients, and print
``log(1 + exp(x))`` as written. Instead an expression is compiled into a *program*: its
distinct subexpressions in evaluation order, each an operator of the table applied to
earlier entries. Running the program is a plain loop, so it traces once under ``jax.jit``,
shares common subexpressions, and never ``exec``s generated code.

SymPy's Add, Mul and Pow are written with the table's add, mul, div and sqrt (a quotient
is formed once, with the guarded division); ``log(σ(a))`` and ``log(softmax(a))`` use the
table's stable forms. ``sign`` and ``Heaviside`` appear only in derivatives (of ``abs`` and
``relu``) and are lowered here for verification.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from symbolic.forms import Form
from symbolic.operators import BY_HEAD, JAX, NUMPY, OPERATORS
from symbolic.straight_line import StraightLineCode

_ADD, _MUL, _DIV, _SQRT = (OPERATORS[name] for name in ("add", "mul", "div", "sqrt"))


class LoweringError(ValueError):
    """An expression holds something that has no numerical lowering."""


def _heaviside(B, a, at_zero):
    return B.xp.where(a > 0, 1.0, B.xp.where(a < 0, 0.0, at_zero))


_DERIVATIVE_HEADS: dict[type, Callable[..., object]] = {
    sympy.sign: lambda B, a: B.xp.sign(a),
    sympy.Heaviside: lambda B, a, at_zero=0.5: _heaviside(B, a, at_zero),
}


class Program(StraightLineCode):
    """An expression compiled to straight-line code over one array backend."""

    def __init__(self, expr: sympy.Expr, input_names: tuple[str, ...], backend: SimpleNamespace):
        self.backend = backend
        self.input_names = input_names
        super().__init__(expr)

    def __call__(self, inputs: Mapping[str, object]):
        values: list[object] = []
        for function, args in self.instructions:
            values.append(function(*(values[k] for k in args)) if args else function(inputs))
        return values[self.output]

    def _apply(self, op_compute, *slots: int) -> int:
        return self._emit(functools.partial(op_compute, self.backend), slots)

    def _compile_node(self, expr: sympy.Expr) -> int:
        if expr.is_Symbol:
            if expr.name not in self.input_names:
                raise LoweringError(f"symbol {expr.name!r} is not one of the inputs {self.input_names}")
            name = expr.name
            return self._emit(lambda inputs: inputs[name])
        if expr.is_number:
            try:
                value = complex(expr.evalf())
            except (TypeError, ValueError) as error:
                raise LoweringError(f"constant {expr} has no numeric value: {error}") from None
            if value.imag != 0 or not np.isfinite(value.real):
                raise LoweringError(f"constant {expr} is not a finite real number")
            constant = value.real
            return self._emit(lambda inputs: constant)
        if expr.is_Add:
            slots = [self._compile(arg) for arg in expr.args]
            return functools.reduce(lambda a, b: self._apply(_ADD.compute, a, b), slots)
        if expr.is_Mul or expr.is_Pow:
            return self._compile_product(expr)
        if isinstance(expr, sympy.log):
            inner_op = BY_HEAD.get(type(expr.args[0]))
            if inner_op is not None and inner_op.stable_log is not None:
                return self._apply(inner_op.stable_log, *(self._compile(a) for a in expr.args[0].args))
        op = BY_HEAD.get(type(expr))
        if op is not None:
            return self._apply(op.compute, *(self._compile(arg) for arg in expr.args))
        derivative = _DERIVATIVE_HEADS.get(type(expr))
        if derivative is not None:
            args = [self._compile(arg) for arg in expr.args]
            return self._apply(derivative, *args)
        raise LoweringError(f"no lowering for {type(expr).__name__}: {expr}")

    def _compile_product(self, expr: sympy.Expr) -> int:
        numerator, denominator = [], []
        for factor in sympy.Mul.make_args(expr):
            base, exponent = factor.as_base_exp() if factor.is_Pow else (factor, sympy.S.One)
            if exponent.is_Rational and exponent < 0:
                denominator.append(self._power(base, -exponent))
            elif factor.is_Rational and factor.q != 1:
                numerator.append(self._compile(sympy.Integer(factor.p)))
                denominator.append(self._compile(sympy.Integer(factor.q)))
            else:
                numerator.append(self._power(base, exponent))
        num = functools.reduce(lambda a, b: self._apply(_MUL.compute, a, b), numerator) if numerator else None
        if not denominator:
            return num
        den = functools.reduce(lambda a, b: self._apply(_MUL.compute, a, b), denominator)
        return self._apply(_DIV.compute, self._compile(sympy.S.One) if num is None else num, den)

    def _power(self, base: sympy.Expr, exponent: sympy.Expr) -> int:
        if exponent == 1:
            return self._compile(base)
        if not exponent.is_Rational or exponent.q & (exponent.q - 1):
            raise LoweringError(f"power {base}**{exponent}: only integer and 2^-k powers are lowered")
        slot = self._compile(base)
        for _ in range(exponent.q.bit_length() - 1):
            slot = self._apply(_SQRT.compute, slot)
        return self._integer_power(slot, int(exponent.p))

    def _integer_power(self, slot: int, n: int) -> int:
        result, square = None, slot
        while n:
            if n & 1:
                result = square if result is None else self._apply(_MUL.compute, result, square)
            n >>= 1
            if n:
                square = self._apply(_MUL.compute, square, square)
        return result


def evaluate_numpy(expr: sympy.Expr, form: Form, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate ``expr`` in float64 NumPy with the table's guarded numerics."""
    with np.errstate(all="ignore"):
        value = Program(expr, form.input_names, NUMPY)(inputs)
        return _finish(np, form, value, inputs)


def _finish(xp, form: Form, value, inputs: Mapping[str, object]):
    shape = xp.broadcast_shapes(*(xp.shape(inputs[name]) for name in form.input_names))
    if form.vector:
        return xp.broadcast_to(value, (*shape[:-1], 1))[..., 0]
    return xp.broadcast_to(value, shape)


def lower_to_jax(expr: sympy.Expr, form: Form) -> Callable[..., jax.Array]:
    """A jitted JAX function with the form's signature: (x, y, w) or (i, u, e), unreduced."""
    program = Program(expr, form.input_names, JAX)
    names = form.input_names

    def loss(*args):
        if len(args) != len(names):
            raise TypeError(f"a {form.name} loss takes ({', '.join(names)}), got {len(args)} arguments")
        dtype = jnp.result_type(float)
        inputs = {name: jnp.asarray(arg, dtype) for name, arg in zip(names, args, strict=True)}
        return _finish(jnp, form, program(inputs), inputs)

    loss.__name__ = f"{form.name}_loss"
    loss.__doc__ = f"{form.name}-form loss {expr}: {form.description}"
    return jax.jit(loss)
