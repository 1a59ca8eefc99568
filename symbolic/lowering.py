"""Lowering SymPy expressions to straight-line code, run on NumPy or JAX or written out as source.

SymPy's own code printers are not used: they print ``erf`` as ``math.erf`` (breaks under
tracing), turn ``Piecewise`` into a ``select`` that leaks NaN gradients, and print
``log(1 + exp(x))`` as written. Instead an expression is compiled into a *program*: its
distinct subexpressions in evaluation order, each a guarded primitive of the operator table
(``symbolic.primitives``) applied to earlier entries, or a leaf (an input or a constant). The
program does not depend on a backend: it runs on NumPy or JAX (a plain loop, so it traces once
under ``jax.jit``, shares common subexpressions and never ``exec``s generated code), and
``symbolic.module_source`` writes the same instructions out as the source of an exported module.

SymPy's Add, Mul and Pow are written with the table's add, mul, div, sqrt and neg. A product
is formed once, as one guarded division of the numerator by the denominator (its factors with
negative exponents), as the candidate's light tree writes it (``symbolic.tree``), so the guard
acts where the light-tree evaluators' guard acts: the numbers over the line (the p of a
coefficient p/q, log 2, ...) are one constant multiplied first into the numerator, a −1 there
being a negation; the numbers under it (the q) one constant multiplied first into the
denominator; a product with only numbers under the line gets one coefficient. The number terms
of a sum are one constant too. So a constant is never alone under a guard (it meets ``+``,
``*``, a numerator, a denominator beside an input-dependent factor, or ``dot``), which lets it
be lifted into a parameter without changing the program. ``log(σ(a))`` and ``log(softmax(a))``
use the table's stable forms. ``sign`` and ``Heaviside`` appear only in derivatives (of ``abs``
and ``relu``) and are lowered here for verification.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from symbolic import primitives
from symbolic.forms import Form
from symbolic.operators import BY_HEAD, JAX, NUMPY, OPERATORS
from symbolic.straight_line import StraightLineCode


class LoweringError(ValueError):
    """An expression holds something that has no numerical lowering."""


@dataclasses.dataclass(frozen=True)
class Input:
    """A leaf: the loss input called ``name``."""

    name: str

    def read(self, inputs: Mapping[str, object], constants) -> object:
        return inputs[self.name]


@dataclasses.dataclass(frozen=True)
class Constant:
    """A leaf: a number of the expression; ``index`` is its place among the lifted constants, or None."""

    exact: sympy.Expr
    value: float
    index: int | None

    def read(self, inputs: Mapping[str, object], constants) -> object:
        return self.value if constants is None or self.index is None else constants[self.index]


def _heaviside(B, a, at_zero):
    return B.where(a > 0, 1.0, B.where(a < 0, 0.0, at_zero))


def _sign(B, a):
    return B.sign(a)


ADD, MULTIPLY, DIVIDE, SQRT, NEGATE = (OPERATORS[name].compute for name in ("add", "mul", "div", "sqrt", "neg"))
Primitive = Callable[..., object]  # primitive(B, *args), a function of symbolic.primitives
_STEPS: dict[type, Primitive] = {head: op.compute for head, op in BY_HEAD.items()}
_STEPS |= {sympy.sign: _sign, sympy.Heaviside: _heaviside}  # only in derivatives, for verification
_STABLE_LOG_STEPS: dict[type, Primitive] = {head: op.stable_log for head, op in BY_HEAD.items() if op.stable_log}


class Program(StraightLineCode):
    """An expression compiled to straight-line code of steps and leaves, independent of any backend.

    ``Program(expr, input_names, backend)(inputs)`` runs it on ``backend`` (NUMPY or JAX);
    ``run`` takes the backend per call and, optionally, other values for the lifted constants.
    """

    def __init__(self, expr: sympy.Expr, input_names: tuple[str, ...], backend=None):
        self.backend = backend
        self.input_names = input_names
        self.constants: list[Constant] = []  # the lifted constants, in evaluation order
        # node -> (index, exponent) of the lifted constants it holds directly: the number part of a
        # sum, of a product's numerator (1) or denominator (-1), or its number arguments (symbolic.constants)
        self.sites: dict[sympy.Expr, tuple[tuple[int, int], ...]] = {}
        super().__init__(expr)

    def __call__(self, inputs: Mapping[str, object]):
        return self.run(self.backend, inputs)

    def run(self, backend, inputs: Mapping[str, object], constants: Sequence | None = None):
        """The expression's value on ``inputs`` (by name), with ``constants`` in place of the lifted ones."""
        values: list[object] = []
        for rule, args in self.instructions:
            values.append(rule(backend, *(values[k] for k in args)) if args else rule.read(inputs, constants))
        return values[self.output]

    def _compile(self, expr: sympy.Expr) -> int:
        # Numbers are not shared: each occurrence is a constant of its own (see symbolic.constants).
        return self._constant(expr) if expr.is_number else super()._compile(expr)

    def _constant(self, number: sympy.Expr, *, lifted: bool = True) -> int:
        try:
            value = complex(sympy.N(number, 30))
        except (TypeError, ValueError) as error:
            raise LoweringError(f"constant {number} has no numeric value: {error}") from None
        if value.imag != 0 or not np.isfinite(value.real):
            raise LoweringError(f"constant {number} is not a finite real number")
        constant = Constant(number, float(value.real), len(self.constants) if lifted else None)
        if lifted:
            self.constants.append(constant)
        return self._emit(constant)

    def _apply(self, step: Primitive, *slots: int) -> int:
        return self._emit(step, slots)

    def _fold(self, step: Primitive, slots: Sequence[int]) -> int:
        return functools.reduce(lambda a, b: self._apply(step, a, b), slots)

    def _compile_node(self, expr: sympy.Expr) -> int:
        if expr.is_Symbol:
            if expr.name not in self.input_names:
                raise LoweringError(f"symbol {expr.name!r} is not one of the inputs {self.input_names}")
            return self._emit(Input(expr.name))
        if expr.is_Add:
            numbers = [term for term in expr.args if term.is_number]
            slots = [self._compile(term) for term in expr.args if not term.is_number]
            if numbers:
                slots.insert(0, self._site(expr, self._constant(sympy.Add(*numbers))))
            return self._fold(ADD, slots)
        if expr.is_Mul or expr.is_Pow:
            return self._compile_product(expr)
        if isinstance(expr, sympy.log) and type(expr.args[0]) in _STABLE_LOG_STEPS:
            return self._apply(_STABLE_LOG_STEPS[type(expr.args[0])], *(self._compile(a) for a in expr.args[0].args))
        step = _STEPS.get(type(expr))
        if step is None:
            raise LoweringError(f"no lowering for {type(expr).__name__}: {expr}")
        return self._apply(step, *(self._site(expr, self._compile(arg)) if arg.is_number else self._compile(arg)
                                   for arg in expr.args))

    def _compile_product(self, expr: sympy.Expr) -> int:
        on_top, below, numerator, denominator = [], [], [], []
        for factor in sympy.Mul.make_args(expr):
            if factor.is_Rational:
                on_top.append(sympy.Integer(factor.p))
                below.append(sympy.Integer(factor.q))
                continue
            base, exponent = factor.as_base_exp() if factor.is_Pow else (factor, sympy.S.One)
            negative = exponent.is_Rational and exponent < 0
            if factor.is_number:
                (below if negative else on_top).append(base**-exponent if negative else factor)
            elif negative:
                denominator.append(self._power(base, -exponent))
            else:
                numerator.append(self._power(base, exponent))
        top, bottom = sympy.Mul(*on_top), sympy.Mul(*below)
        if not denominator:  # numbers alone below: no guard to keep, so one coefficient
            top, bottom = top / bottom, sympy.S.One
        if top not in (sympy.S.One, sympy.S.NegativeOne):
            numerator.insert(0, self._site(expr, self._constant(top)))
        if bottom != sympy.S.One:  # a factor of the guarded denominator, as the light tree writes it
            denominator.insert(0, self._site(expr, self._constant(bottom), below=True))
        product = self._fold(MULTIPLY, numerator) if numerator else None
        if denominator:
            numerator_slot = self._constant(sympy.S.One, lifted=False) if product is None else product
            product = self._apply(DIVIDE, numerator_slot, self._fold(MULTIPLY, denominator))
        return self._apply(NEGATE, product) if top == sympy.S.NegativeOne else product

    def _site(self, node: sympy.Expr, slot: int, *, below: bool = False) -> int:
        """Record that ``node`` holds the lifted constant in ``slot``: a number part of a sum or product (``below``:
        of a product's denominator), or a number argument."""
        self.sites[node] = (*self.sites.get(node, ()), (self.instructions[slot][0].index, -1 if below else 1))
        return slot

    def _power(self, base: sympy.Expr, exponent: sympy.Expr) -> int:
        if exponent == 1:
            return self._compile(base)
        if not exponent.is_Rational or exponent.q & (exponent.q - 1):
            raise LoweringError(f"power {base}**{exponent}: only integer and 2^-k powers are lowered")
        slot = self._compile(base)
        for _ in range(exponent.q.bit_length() - 1):
            slot = self._apply(SQRT, slot)
        return self._integer_power(slot, int(exponent.p))

    def _integer_power(self, slot: int, n: int) -> int:
        result, square = None, slot
        while n:
            if n & 1:
                result = square if result is None else self._apply(MULTIPLY, result, square)
            n >>= 1
            if n:
                square = self._apply(MULTIPLY, square, square)
        return result


def output_primitive(form: Form) -> Callable[..., object]:
    """The primitive making the form's loss from the program's value: per sample (softmax) or elementwise."""
    return primitives.per_sample_output if form.vector else primitives.elementwise_output


def form_output(backend, form: Form, value, shape):
    """The form's loss from the program's value and the inputs' broadcast ``shape``."""
    return output_primitive(form)(backend, value, shape)


def evaluate_numpy(expr: sympy.Expr, form: Form, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate ``expr`` in float64 NumPy with the table's guarded numerics."""
    with np.errstate(all="ignore"):
        value = Program(expr, form.input_names, NUMPY)(inputs)
        shape = NUMPY.broadcast_shapes(*(inputs[name] for name in form.input_names))
        return form_output(NUMPY, form, value, shape)


def jax_loss(program: Program, form: Form, *, lifted: bool = False) -> Callable[..., jax.Array]:
    """A jitted JAX function running ``program``: ``loss(*inputs)``, or ``loss(constants, *inputs)`` if lifted."""
    names = form.input_names

    def run(constants, args):
        if len(args) != len(names):
            raise TypeError(f"a {form.name} loss takes ({', '.join(names)}), got {len(args)} arguments")
        arrays = JAX.as_inputs(*args)
        if constants is not None:
            constants = jnp.asarray(constants, arrays[0].dtype)
        value = program.run(JAX, dict(zip(names, arrays, strict=True)), constants)
        return form_output(JAX, form, value, JAX.broadcast_shapes(*arrays))

    if lifted:
        def loss(constants, *args):
            return run(constants, args)
    else:
        def loss(*args):
            return run(None, args)
    loss.__name__ = f"{form.name}_loss"
    return jax.jit(loss)


def lower_to_jax(expr: sympy.Expr, form: Form) -> Callable[..., jax.Array]:
    """A jitted JAX function with the form's signature: (x, y, w) or (i, u, e), unreduced."""
    loss = jax_loss(Program(expr, form.input_names), form)
    loss.__doc__ = f"{form.name}-form loss {expr}: {form.description}"
    return loss
