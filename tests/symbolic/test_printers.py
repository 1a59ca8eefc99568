"""Tests for the printers: infix and prefix text parse back to the same key; LaTeX templates."""

from __future__ import annotations

import contextlib
import functools
import random
import re
from fractions import Fraction

import pytest
import sympy

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import FORMS, x, y
from symbolic.functions import ScaledErf, Sigmoid
from symbolic.operators import OPERATORS, SIGMOID_FORM, SOFTMAX_FORM
from symbolic.parser import parse_tree
from symbolic.printers import to_infix, to_latex, to_prefix, tree_to_infix
from symbolic.time_budget import time_budget
from symbolic.tree import UnsupportedExpression
from symbolic.variation import crossover, mutate, random_tree
from symbolic.vector_ops import Dot

CANDIDATES_PER_FORM = 2000
A_CLS = "Neg(Dot(Mul(Y,Add(1,Sin(Z))),Log(Softmax(X))))"
B_CLS = ("Neg(Add(Mul(Q,Mul(Add(1,Serf(Sig(NY))),Log(Sig(X)))),Mul(Add(Sgdf(X),Neg(Q)),Mul(Add(Add(1,Neg(Q)),"
         "Neg(Add(1,Neg(Sig(X))))),Log(Add(1,Neg(Sig(X))))))))")
HEADED = [op for op in OPERATORS.values() if op.head is not None]
TEMPLATED = [op for op in OPERATORS.values() if op.latex is not None]


@functools.cache
def _bred_candidates(form: str) -> tuple[Candidate, ...]:
    """Seeded candidates built as the search builds them: random trees, their mutants and crossovers."""
    rng = random.Random(f"printers-{form}")
    found: list[Candidate] = []
    while len(found) < CANDIDATES_PER_FORM:
        tree = random_tree(rng, form)
        if len(found) % 3 == 1:
            tree = mutate(rng, tree, form)
        elif len(found) % 3 == 2:
            tree = crossover(rng, tree, random_tree(rng, form), form)
        with contextlib.suppress(InvalidCandidate):
            found.append(Candidate.from_tree(tree, form))
    return tuple(found)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_printed_text_parses_back_to_the_same_key(form):
    """A key shown in a hall of fame is found again from its printed infix or prefix text."""
    failures = []
    for candidate in _bred_candidates(form):
        prefix = candidate.prefix()
        if parse_tree(prefix, form) != candidate.tree:
            failures.append(("prefix is not the tree", prefix))
        for kind, text in (("infix", candidate.infix()), ("prefix", prefix)):
            if Candidate.parse(text, form).key != candidate.key:
                failures.append((kind, text))
    assert failures == []


@pytest.mark.parametrize(("text", "form", "printed"), [
    ("x/1e100", "sigmoid", "x/1" + "0" * 100),  # printed as a 101-digit integer, which the parser refused
    ("x/(3*(3 - sqrt(y))*sigmoid(x))", "sigmoid", "x/(3*(3 - sqrt(y))*sigmoid(x))"),  # issue's Div(X,Mul(Mul(3,...
    ("(w/2)/(3 - x)", "sigmoid", "w/(3 - x)/2"),  # a number times a lone sum would distribute: 2*(3 - x)
    ("2*(1 - tanh(3))*abs(dot(x, y)) - 9", "softmax", "2*(1 - tanh(3))*abs(dot(x, y)) - 9"),
    ("i*(i - 2)/2/(2 - cos(u))", "reg", "i*(i - 2)/(2 - cos(u))/2"),
    ("sqrt(2)*sqrt(i)/2/(2 - u)", "reg", "sqrt(2)*sqrt(i)/(2 - u)/2"),
])
def test_numbers_next_to_sums_print_so_that_they_parse_back(text, form, printed):
    candidate = Candidate.parse(text, form)
    assert candidate.infix() == printed
    for again in (candidate.infix(), candidate.prefix()):
        assert Candidate.parse(again, form).key == candidate.key, again


def test_tree_to_infix_parses_back_to_the_tree():
    for form in sorted(FORMS):
        for candidate in _bred_candidates(form)[:300]:
            assert parse_tree(tree_to_infix(candidate.tree), form) == candidate.tree
    assert tree_to_infix(("div", ("div", "w", 2), ("sub", 3, ("neg", "x")))) == "(w / 2) / (3 - (-x))"


def test_published_prefix_strings_print_in_the_authors_format():
    tree = parse_tree(A_CLS, "softmax")
    assert to_prefix(tree, "softmax") == A_CLS
    assert to_prefix(("mul", "w", ("sub", 1, "y")), "sigmoid") == "Mul(Q,Sub(1,PY))"
    assert to_prefix(("add", "x", Fraction(1, 4)), "sigmoid") == "Add(X,Div(1,4))"
    assert to_prefix(("div", "i", ("add", "u", "e")), "reg") == "Div(I,Add(U,E))"
    cls = Candidate.parse(B_CLS, "sigmoid")
    assert " " not in cls.prefix()
    assert Candidate.parse(cls.prefix(), "sigmoid") == cls


def test_to_prefix_rejects_what_is_not_a_tree_of_the_form():
    with pytest.raises(ValueError, match="not an input of the reg form"):
        to_prefix(("add", "x", 1), "reg")
    with pytest.raises(ValueError, match="unknown operator"):
        to_prefix(("pow", "x", 2), "sigmoid")
    with pytest.raises(ValueError, match="non-negative"):
        to_prefix(-1, "sigmoid")


@pytest.mark.parametrize("op", HEADED, ids=lambda op: op.name)
def test_every_operator_head_prints_by_its_infix_name(op):
    args = (x, y)[: op.arity]
    expr = op.build(*args)
    text = to_infix(expr)
    assert text.startswith(f"{op.name}(")
    if op.name == "softmax":
        assert Candidate.parse(f"dot(y, {text})", SOFTMAX_FORM).expr == Dot(y, expr)
    elif op.name == "dot":
        assert Candidate.parse(text, SOFTMAX_FORM).expr == expr
    else:
        assert Candidate.parse(f"x + {text}", SIGMOID_FORM).expr == x + expr


def test_infix_prints_powers_euler_and_negations_the_parser_reads():
    assert to_infix(x**2) == "x**2"
    assert to_infix(x ** sympy.Rational(-3, 2)) == "x**(-3/2)"
    assert to_infix(sympy.E * x) == "exp(1)*x"
    assert to_infix(-((x + 1) / y)) == "-(x + 1)/y"
    assert to_infix(Sigmoid(-x)) == "sigmoid(-x)"


@pytest.mark.parametrize(
    "expr",
    [sympy.erf(x), sympy.pi * x, x**y, x ** sympy.Rational(1, 3), sympy.Float(0.5) * x, sympy.atan(x)],
    ids=str,
)
def test_infix_refuses_what_the_parser_could_not_read(expr):
    with pytest.raises(UnsupportedExpression, match="cannot print"):
        to_infix(expr)


def _template_text(template: str) -> list[str]:
    pieces = re.split(r"\{\d\}", template)
    return [piece.replace("{{", "{").replace("}}", "}").strip() for piece in pieces if piece.strip()]


@pytest.mark.parametrize("op", TEMPLATED, ids=lambda op: op.name)
def test_every_operator_latex_template_is_used(op):
    if op.name == "dot":
        candidate = Candidate.parse("dot(y, sin(x))", SOFTMAX_FORM)
    elif op.name == "softmax":
        candidate = Candidate.parse("dot(y, softmax(x))", SOFTMAX_FORM)
    else:
        candidate = Candidate.parse(f"{op.name}(x)", SIGMOID_FORM)
    latex = candidate.latex()
    for piece in _template_text(op.latex):
        assert piece in latex, (op.name, latex)


def test_latex_of_the_published_losses():
    assert r"\operatorname{softmax}" in Candidate.parse(A_CLS, "softmax").latex()
    b_cls = Candidate.parse(B_CLS, "sigmoid").latex()
    for name in (r"\sigma", r"\operatorname{erf}_s", r"\operatorname{gd}_s", r"\operatorname{softplus}"):
        assert name in b_cls
    assert to_latex(Sigmoid(x) ** 2) == r"\left(\sigma\left(x\right)\right)^{2}"
    assert to_latex(ScaledErf(x)) == r"\operatorname{erf}_s\left(x\right)"


# SymPy's LaTeX product asks is_constant() of e^u for u negative, which runs an unbounded simplify.
DEEP_EXP = ("abs(i / exp(2 * relu(1 / softplus(2 - relu(i / tanh(1 * sigmoid(1 / softplus(2 - cos(i - exp(3 + abs(1 "
            "- cos(i + abs(3 + sqrt(i + tanh(3 / softplus(3 + abs(i / exp(3 / i))))))))))))))))))")


def test_latex_of_a_product_with_e_to_a_negative_formula_runs_no_simplify(monkeypatch):
    # Building it takes about as long as the construction budget (0.5 s; more with SymPy's caches cold): this test
    # is about printing, so building gets room.
    monkeypatch.setattr("symbolic.candidate.CONSTRUCTION_SECONDS", 10.0)
    candidate = Candidate.parse(DEEP_EXP, "reg")
    with time_budget(10):  # it ran for minutes: SymPy simplified e^(-2/softplus(...)) to split a fraction
        latex = candidate.latex()
    assert latex.startswith(r"i e^{- \frac{2}{\operatorname{softplus}\left(- \frac{i}{\tanh")


@pytest.mark.parametrize("expr", [
    x * sympy.exp(-x), -3 * x * sympy.exp(-x) / (1 + y), (x + 1) * sympy.exp(-x) / 2, -sympy.exp(-x),
    sympy.exp(-x) / (x + 1) / sympy.sqrt(y), x * sympy.exp(x) * sympy.exp(-y**2), x * sympy.exp(-2),
])
def test_products_with_e_to_a_formula_print_as_sympy_prints_them(expr):
    assert to_latex(expr) == sympy.latex(expr)
