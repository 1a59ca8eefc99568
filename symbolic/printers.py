"""Printers generated from the operator table: infix text, LaTeX and the authors' prefix format.

``to_infix`` and ``to_latex`` subclass SymPy's printers, which keep handling the precedence
of Add, Mul, Pow and rationals; the node of every table operator with a SymPy head prints
through a method generated from its table entry. ``to_infix`` output is read back by
``symbolic.parser``, so it refuses anything the parser would not understand. ``to_prefix``
prints a light tree in the authors' format, e.g. ``Neg(Log(Sig(X)))``.
"""

from __future__ import annotations

from fractions import Fraction

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

from symbolic.forms import Form, get_form
from symbolic.operators import BY_HEAD, OPERATORS, Operator
from symbolic.tree import Tree, UnsupportedExpression


def _is_square_root_power(exponent: sympy.Expr) -> bool:
    """True for rational exponents n/2^k, the only ones the operators can write."""
    return exponent.is_Rational and exponent.q & (exponent.q - 1) == 0


def _printable(expr: sympy.Basic) -> bool:
    if expr.is_Symbol or expr.is_Rational or expr.is_Add or expr.is_Mul or expr is sympy.S.Exp1:
        return True
    if expr.is_Pow:
        return _is_square_root_power(expr.exp)
    return type(expr) in BY_HEAD


def _check_printable(expr: sympy.Expr) -> None:
    """Raise UnsupportedExpression for any node the parser could not read back."""
    stack = [expr]  # iterative: printing itself already costs several frames per level
    while stack:
        node = stack.pop()
        if not _printable(node):
            raise UnsupportedExpression(
                f"cannot print {node} as a formula: {type(node).__name__} is not an operator of the search "
                "space (nor a sum, product, power n/2^k, input or rational constant)"
            )
        stack.extend(node.args)


class InfixPrinter(StrPrinter):
    """Plain math text over the table's infix names; ``**`` for powers, ``exp(1)`` for e."""

    def _print_Exp1(self, expr) -> str:
        return "exp(1)"

    def _print_Mul(self, expr) -> str:
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_Rational and coeff.q != 1 and _lone_sum_divisor(rest):
            # SymPy would print x/(2*(a + b)), which reads back as x/(2*a + 2*b) (a number times a
            # lone sum distributes): divide by the number last instead, x/(a + b)/2.
            sign = "-" if coeff < 0 else ""
            scaled = self.parenthesize(abs(coeff.p) * rest, precedence(expr), strict=True)
            return f"{sign}{scaled}/{coeff.q}"
        return super()._print_Mul(expr)


def _lone_sum_divisor(expr: sympy.Expr) -> bool:
    """True when the only factor of ``expr`` with a negative exponent is 1/(a sum)."""
    divisors = [f for f in sympy.Mul.make_args(expr) if f.is_Pow and f.exp.is_Rational and f.exp < 0]
    return len(divisors) == 1 and divisors[0].exp == -1 and divisors[0].base.is_Add


class TableLatexPrinter(LatexPrinter):
    """LaTeX with each table operator's own template (σ, softmax, the scaled S-curves, ...)."""

    def _print_Mul(self, expr) -> str:
        # SymPy's product printing splits off a denominator with fraction(exact=True), which asks
        # is_constant() of every negative exponent that is not a number, and is_constant() runs an
        # unbounded simplify (minutes on e^(-2/softplus(...)) nested 20 deep). Such a factor, e^u
        # with u not a number, is kept out of that split and printed as e^{u} in the numerator.
        factors = sympy.Mul.make_args(expr)
        exps = [f for f in factors if isinstance(f, sympy.exp) and not f.exp.is_number]
        if not exps:
            return super()._print_Mul(expr)
        others = [f for f in factors if f not in exps]
        sign = ""
        if others and others[0].is_Number and others[0] < 0:  # a product's number comes first
            sign, others[0] = "- ", -others[0]
        rest = sympy.Mul(*(f for f in others if f != 1), evaluate=False)  # evaluated, 2*(a + b) would distribute
        numerator, denominator = sympy.fraction(rest, exact=True)  # no such factor left: no simplify
        top = " ".join(self.parenthesize(f, PRECEDENCE["Mul"], strict=True) for f in (numerator, *exps) if f != 1)
        return sign + (top if denominator == 1 else rf"\frac{{{top}}}{{{self._print(denominator)}}}")


def _printed_args(printer, expr) -> list[str]:
    # No comprehension for the common unary case: a frame fewer per nesting level.
    if len(expr.args) == 1:
        return [printer._print(expr.args[0])]
    return [printer._print(arg) for arg in expr.args]


def _infix_method(op: Operator):
    def print_operator(self, expr) -> str:
        return f"{op.name}({', '.join(_printed_args(self, expr))})"

    return print_operator


def _latex_method(op: Operator):
    def print_operator(self, expr, exp=None) -> str:
        text = op.latex.format(*_printed_args(self, expr))
        # SymPy prints a power of a function by passing the exponent here.
        return text if exp is None else rf"\left({text}\right)^{{{exp}}}"

    return print_operator


for _op in OPERATORS.values():
    if _op.head is not None:
        setattr(InfixPrinter, f"_print_{_op.head.__name__}", _infix_method(_op))
        if _op.latex is not None:
            setattr(TableLatexPrinter, f"_print_{_op.head.__name__}", _latex_method(_op))


def to_infix(expr: sympy.Expr) -> str:
    """Plain math text for ``expr`` that ``symbolic.parser.parse_tree`` reads back exactly."""
    _check_printable(expr)
    return InfixPrinter().doprint(expr)


def to_latex(expr: sympy.Expr) -> str:
    """LaTeX for ``expr``, using the operator table's templates."""
    return TableLatexPrinter().doprint(expr)


def to_prefix(tree: Tree, form: Form | str) -> str:
    """The authors' prefix format of a light tree, e.g. ``Neg(Dot(Y,Log(Softmax(X))))``."""
    form = get_form(form)
    if isinstance(tree, tuple):
        op = OPERATORS.get(tree[0])
        if op is None:
            raise ValueError(f"unknown operator {tree[0]!r} in a light tree")
        return f"{op.prefix}({','.join(to_prefix(child, form) for child in tree[1:])})"
    if isinstance(tree, str):
        try:
            return form.authors_names[tree]
        except KeyError:
            raise ValueError(f"{tree!r} is not an input of the {form.name} form") from None
    if isinstance(tree, bool) or not isinstance(tree, int | Fraction) or tree < 0:
        raise ValueError(f"constant {tree!r} must be a non-negative integer or fraction")
    if isinstance(tree, Fraction) and tree.denominator != 1:
        return f"Div({tree.numerator},{tree.denominator})"
    return str(int(tree))


_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def tree_to_infix(tree: Tree) -> str:
    """A light tree as text that parses back to the same tree, e.g. ``(w / 2) / (3 - (-x))``.

    Arithmetic is written infix with every operand that is itself arithmetic parenthesized, the
    other operators as calls of their infix names; for messages and debugging.
    """
    if isinstance(tree, tuple):
        symbol = _ARITHMETIC.get(tree[0])
        if symbol is None:
            if tree[0] == "neg":
                return f"-{_operand(tree[1])}"
            return f"{tree[0]}({', '.join(tree_to_infix(child) for child in tree[1:])})"
        return f"{_operand(tree[1])} {symbol} {_operand(tree[2])}"
    if isinstance(tree, Fraction) and tree.denominator != 1:
        return f"{tree.numerator}/{tree.denominator}"
    return str(tree)


def _operand(tree: Tree) -> str:
    text = tree_to_infix(tree)
    compound = isinstance(tree, tuple) and (tree[0] in _ARITHMETIC or tree[0] == "neg")
    return f"({text})" if compound or isinstance(tree, Fraction) else text
