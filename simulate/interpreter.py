"""A loss interpreter whose programs are data: one compiled function evaluates any candidate.

Lowering a candidate with ``Candidate.to_jax`` gives the fastest code for *that* candidate, but
every new formula is a new XLA program; compiling a detector's training step per candidate costs
seconds, more than simulating it. Here a candidate becomes a fixed-size *program array* instead:

- registers ``0 .. I-1`` hold the form's inputs (x, y, w or i, u, e), broadcast to one shape;
- registers ``I .. I+R-1`` are scratch; a tree evaluated children-first with the larger child
  first (Sethi-Ullman order) needs at most depth + 1 of them, so ``R`` stays small;
- instruction ``k`` is ``(opcode, a, b, destination, constant)``: the form's operator number
  ``opcode`` applied to registers ``a`` (and ``b``) written to ``destination``, or a constant,
  or a copy. Programs are padded with no-ops to a *length class* (16, 32, 64, ...).

:func:`run_program` evaluates one program with ``lax.switch`` per instruction, so under
``jax.lax.map`` only the chosen operator runs; under ``jax.vmap`` XLA turns the switch into a
select over every operator of the form (each fed safe operands where it is not chosen, so an
unchosen ``log`` or ``/`` cannot leak a NaN into the gradient). Padding no-ops copy the output
register onto itself. Either way a new candidate is
new *data*, never a recompile. The numerics are the operator table's (``symbolic.operators``),
including the stable ``log σ(a)`` and ``log softmax(a)``, so values match ``Candidate.to_jax``.

``softmax``-form registers are ``[..., C+1]``; a per-sample value (after ``dot``) is kept
broadcast over the class axis, which is exact because the form's rank rules forbid softmax of
a per-sample value and dot of two (``symbolic.vector_ops``); the output is column 0.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from symbolic.candidate import Candidate
from symbolic.forms import Form, get_form
from symbolic.operators import JAX, OPERATORS, operators_for
from symbolic.tree import Tree

LENGTH_CLASSES = (16, 32, 64, 128)
NOOP, CONSTANT, LOG_SIGMOID, LOG_SOFTMAX = "noop", "const", "log_sigmoid", "log_softmax"
_SAFE_OPERAND = 0.5  # fed to unchosen operators under vmap: finite value and gradient for every operator


class ProgramTooLong(ValueError):
    """A candidate needs more instructions or registers than the largest program class allows."""


@functools.lru_cache(maxsize=8)
def opcode_names(form_name: str) -> tuple[str, ...]:
    """The instruction set of a form: no-op, constant, the form's operators, then the fused stable logs."""
    names = [NOOP, CONSTANT, *(op.name for op in operators_for(form_name))]
    names.append(LOG_SIGMOID)
    if form_name == "softmax":
        names.append(LOG_SOFTMAX)
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class Programs:
    """Encoded programs of one form and length class, stacked along the leading axis (a pytree of arrays)."""

    opcodes: np.ndarray  # int32 [K, L]
    operands: np.ndarray  # int32 [K, L, 2]
    destinations: np.ndarray  # int32 [K, L]
    constants: np.ndarray  # float32 [K, L]
    outputs: np.ndarray  # int32 [K]: the register holding the loss

    def __len__(self) -> int:
        return int(self.opcodes.shape[0])

    def take(self, rows) -> Programs:
        """The programs at ``rows`` (e.g. to pad a batch by repeating one program)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Programs(*(np.asarray(getattr(self, f.name))[rows] for f in dataclasses.fields(self)))

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        """The arrays, in field order, for passing into a jitted function."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


def _stable_log_opcode(node: Tree) -> str | None:
    if node[0] == "log" and isinstance(node[1], tuple) and node[1][0] in ("sigmoid", "softmax"):
        return LOG_SIGMOID if node[1][0] == "sigmoid" else LOG_SOFTMAX
    return None


class _Encoder:
    """Straight-line register code of one light tree, Sethi-Ullman ordered."""

    def __init__(self, form: Form):
        self.form = form
        self.opcode = {name: k for k, name in enumerate(opcode_names(form.name))}
        self.num_inputs = len(form.input_names)
        self.instructions: list[tuple[int, int, int, int, float]] = []
        self.scratch_used = 0

    def need(self, node: Tree) -> int:
        """Scratch registers needed to evaluate ``node`` (0 for an input)."""
        if isinstance(node, str):
            return 0
        if not isinstance(node, tuple):
            return 1
        children = self._children(node)
        needs = sorted((self.need(child) for child in children), reverse=True)
        if len(needs) == 1:
            return max(needs[0], 1)
        return max(needs[0], needs[1] + 1, 1)

    def _children(self, node: tuple) -> tuple[Tree, ...]:
        return node[1][1:] if _stable_log_opcode(node) else node[1:]

    def emit(self, node: Tree, base: int) -> int:
        """Emit code for ``node`` using scratch registers ``base`` and up; return its register."""
        if isinstance(node, str):
            return self.form.input_names.index(node)
        target = self.num_inputs + base
        self.scratch_used = max(self.scratch_used, base + 1)
        if not isinstance(node, tuple):
            value = float(Fraction(node))
            self.instructions.append((self.opcode[CONSTANT], 0, 0, target, value))
            return target
        name = _stable_log_opcode(node) or node[0]
        children = self._children(node)
        if len(children) == 1:
            a = b = self.emit(children[0], base)
        else:
            first = 0 if self.need(children[0]) >= self.need(children[1]) else 1
            registers = [0, 0]
            registers[first] = self.emit(children[first], base)
            registers[1 - first] = self.emit(children[1 - first], base + 1)
            a, b = registers
        self.instructions.append((self.opcode[name], a, b, target, 0.0))
        return target


def length_class(length: int) -> int:
    """The smallest program length class holding ``length`` instructions."""
    for size in LENGTH_CLASSES:
        if length <= size:
            return size
    raise ProgramTooLong(f"a program of {length} instructions exceeds the largest class {LENGTH_CLASSES[-1]}")


def encode_tree(tree: Tree, form: Form | str) -> tuple[list[tuple[int, int, int, int, float]], int, int]:
    """(instructions, output register, scratch registers used) of a valid light tree of ``form``."""
    encoder = _Encoder(get_form(form))
    output = encoder.emit(tree, 0)
    return encoder.instructions, output, encoder.scratch_used


def encode(candidates: Sequence[Candidate | Tree], form: Form | str, *, length: int | None = None,
           registers: int | None = None) -> tuple[Programs, int]:
    """Encode candidates (or light trees) into stacked :class:`Programs` and the register count they need.

    ``length`` (default: the smallest class holding the longest) and ``registers`` (default: the
    most any needs) may be raised to share one compiled program across batches.
    """
    form = get_form(form)
    codes = [encode_tree(c.tree if isinstance(c, Candidate) else c, form) for c in candidates]
    longest = max((len(code) for code, _, _ in codes), default=1)
    length = length_class(max(longest, 1)) if length is None else length
    if longest > length:
        raise ProgramTooLong(f"a program of {longest} instructions does not fit length {length}")
    scratch = max((used for _, _, used in codes), default=1)
    registers = len(form.input_names) + scratch if registers is None else registers
    if len(form.input_names) + scratch > registers:
        raise ProgramTooLong(f"a program needs {len(form.input_names) + scratch} registers, more than {registers}")
    count = len(codes)
    opcodes = np.zeros((count, length), np.int32)  # NOOP
    operands = np.zeros((count, length, 2), np.int32)
    destinations = np.zeros((count, length), np.int32)
    constants = np.zeros((count, length), np.float32)
    outputs = np.zeros(count, np.int32)
    for row, (code, output, _) in enumerate(codes):
        # Padding no-ops copy the output register onto itself.
        operands[row], destinations[row] = output, output
        for k, (opcode, a, b, target, value) in enumerate(code):
            opcodes[row, k], operands[row, k], destinations[row, k], constants[row, k] = opcode, (a, b), target, value
        outputs[row] = output
    return Programs(opcodes, operands, destinations, constants, outputs), registers


def _branches(form_name: str):
    """One function per opcode, ``(opcode, a, b, constant) -> value`` of the operands' shape.

    Each feeds its operator a safe operand where it is not the chosen opcode: under ``vmap``
    ``lax.switch`` evaluates every branch, and an unchosen ``log`` or ``/`` must not turn its
    zero cotangent into 0 x inf = NaN. Under ``lax.map`` this costs one select on the chosen branch.
    """

    def operator(name):
        compute = OPERATORS[name].compute
        if name == "dot":
            return lambda a, b, c: jnp.broadcast_to(compute(JAX, a, b), a.shape)
        if OPERATORS[name].arity == 2:
            return lambda a, b, c: compute(JAX, a, b)
        return lambda a, b, c: compute(JAX, a)

    special = {
        NOOP: lambda a, b, c: a,
        CONSTANT: lambda a, b, c: jnp.broadcast_to(c, a.shape).astype(a.dtype),
        LOG_SIGMOID: lambda a, b, c: OPERATORS["sigmoid"].stable_log(JAX, a),
        LOG_SOFTMAX: lambda a, b, c: OPERATORS["softmax"].stable_log(JAX, a),
    }

    def guarded(k, branch):
        def run(index, a, b, c):
            chosen = index == k
            return branch(jnp.where(chosen, a, _SAFE_OPERAND), jnp.where(chosen, b, _SAFE_OPERAND), c)

        return run

    names = opcode_names(form_name)
    return [guarded(k, special[name] if name in special else operator(name)) for k, name in enumerate(names)]


def run_program(program: Sequence[jax.Array], inputs: Sequence[jax.Array], form: Form | str,
                registers: int) -> jax.Array:
    """Evaluate ONE encoded program (the arrays of one row of :class:`Programs`) on the form's inputs.

    Returns the unreduced loss with the form's contract: the inputs' broadcast shape, or
    ``[...]`` without the class axis for ``softmax``. Map or vmap it over stacked programs.
    """
    form = get_form(form)
    opcodes, operands, destinations, constants, output = program
    dtype = jnp.result_type(float)
    arrays = [jnp.asarray(value, dtype) for value in inputs]
    shape = jnp.broadcast_shapes(*(value.shape for value in arrays))
    state = jnp.zeros((registers, *shape), dtype)
    state = state.at[: len(arrays)].set(jnp.stack([jnp.broadcast_to(value, shape) for value in arrays]))
    branches = _branches(form.name)
    for k in range(opcodes.shape[0]):
        a, b = state[operands[k, 0]], state[operands[k, 1]]
        value = jax.lax.switch(opcodes[k], branches, opcodes[k], a, b, constants[k])
        state = state.at[destinations[k]].set(value)
    result = state[output]
    return result[..., 0] if form.vector else result
