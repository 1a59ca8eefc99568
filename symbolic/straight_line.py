"""Straight-line code over a SymPy expression: each distinct subexpression once, in evaluation order.

The shared base of the array lowering (``symbolic.lowering.Program``) and the interval
enclosures (``symbolic.cpv.intervals.IntervalProgram``).
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

Instruction = tuple[Callable[..., object], tuple[int, ...]]


class StraightLineCode:
    """An expression compiled to straight-line code: each distinct subexpression once, in order.

    Subclasses say what an instruction is (``_compile_node``) and how to run the code.
    """

    def __init__(self, expr: sympy.Expr):
        self.instructions: list[Instruction] = []
        self._slots: dict[sympy.Expr, int] = {}
        self.output = self._compile(expr)

    def _emit(self, rule, args: tuple[int, ...] = ()) -> int:
        self.instructions.append((rule, args))
        return len(self.instructions) - 1

    def _compile(self, expr: sympy.Expr) -> int:
        slot = self._slots.get(expr)
        if slot is None:
            slot = self._slots[expr] = self._compile_node(expr)
        return slot

    def _compile_node(self, expr: sympy.Expr) -> int:
        raise NotImplementedError
