"""Tests for the printers: infix and prefix text parse back to the same candidate; LaTeX templates."""

from __future__ import annotations

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
from symbolic.operators import CONSTANTS, OPERATORS, SIGMOID_FORM, SOFTMAX_FORM, operators_for
from symbolic.parser import parse_tree
from symbolic.printers import to_infix, to_latex, to_prefix, tree_to_infix
from symbolic.tree import UnsupportedExpression, tree_problem
from symbolic.vector_ops import Dot

CANDIDATES_PER_FORM = 1200
A_CLS = "Neg(Dot(Mul(Y,Add(1,Sin(Z))),Log(Softmax(X))))"
B_CLS = ("Neg(Add(Mul(Q,Mul(Add(1,Serf(Sig(NY))),Log(Sig(X)))),Mul(Add(Sgdf(X),Neg(Q)),Mul(Add(Add(1,Neg(Q)),"
         "Neg(Add(1,Neg(Sig(X))))),Log(Add(1,Neg(Sig(X))))))))")
HEADED = [op for op in OPERATORS.values() if op.head is not None]
TEMPLATED = [op for op in OPERATORS.values() if op.latex is not None]


def _random_tree(rng, ops, leaves, depth):
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(leaves)
    op = rng.choice(ops)
    return (op.name, *(_random_tree(rng, ops, leaves, depth - 1) for _ in range(op.arity)))


def _random_loss_tree(rng, form):
    """A random tree of depth ≤ 4; softmax-form trees reduce vector subtrees with dot."""
    ops = operators_for(form.name)
    leaves = [*form.input_names, *CONSTANTS]
    if not form.vector:
        return _random_tree(rng, ops, leaves, 4)
    elementwise = [op for op in ops if op.name != "dot"]
    dot = ("dot", _random_tree(rng, elementwise, leaves, 2), _random_tree(rng, elementwise, leaves, 2))
    op = rng.choice([op for op in elementwise if op.name != "softmax"])
    if op.arity == 1:
        return (op.name, dot) if rng.random() < 0.7 else dot
    other = rng.choice([rng.choice(CONSTANTS), ("dot", _random_tree(rng, elementwise, leaves, 1), "x")])
    return (op.name, dot, other) if rng.random() < 0.5 else (op.name, other, dot)


@functools.cache
def _random_candidates(form_name: str, count: int = CANDIDATES_PER_FORM, seed: int = 7):
    form = FORMS[form_name]
    rng = random.Random(f"{seed}-{form_name}")
    found = []
    while len(found) < count:
        tree = _random_loss_tree(rng, form)
        if tree_problem(tree, form) is not None:
            continue
        try:
            found.append(Candidate.from_tree(tree, form))
        except InvalidCandidate:
            continue
    return found


def _canonical_form_is_stable(candidate) -> bool:
    """False where rebuilding the candidate from its own tree gives another canonical form."""
    return Candidate.from_tree(candidate.tree, candidate.form).key == candidate.key


@pytest.mark.parametrize("form", sorted(FORMS))
def test_prefix_text_parses_to_the_candidate_tree(form):
    for candidate in _random_candidates(form):
        assert parse_tree(candidate.prefix(), form) == candidate.tree, candidate.prefix()


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("kind", ["infix", "prefix"])
def test_printed_text_parses_back_to_the_same_candidate(form, kind):
    for candidate in _random_candidates(form):
        text = getattr(candidate, kind)()
        parsed = Candidate.parse(text, form)
        assert parsed.key == candidate.key, f"{text}: {parsed.tree} != {candidate.tree}"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_canonical_form_is_stable(form):
    unstable = [c.infix() for c in _random_candidates(form) if not _canonical_form_is_stable(c)]
    assert unstable == []


def test_tree_to_infix_parses_back_to_the_tree():
    for form in sorted(FORMS):
        for candidate in _random_candidates(form)[:300]:
            assert parse_tree(tree_to_infix(candidate.tree), form) == candidate.tree


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
