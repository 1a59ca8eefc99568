"""Light trees: the cheap, hashable expression form used before a formula becomes SymPy.

A light tree is a nested tuple over the primitives of ``symbolic.operators``:

    ("sigmoid", ("neg", "x"))        an operator node: (operator name, *children)
    "x"                              an input of the form
    2, Fraction(1, 4)                a non-negative constant

Random generation, variation and the batched numeric screen work on light trees, because
building a SymPy expression costs far more than evaluating a tree; only the survivors
become SymPy ``Candidate``s. ``tree_to_sympy`` and ``sympy_to_tree`` convert both ways:
the latter writes SymPy's Add/Mul/Pow back as the primitives (sub, div, sqrt, ...), which
is also what the authors' prefix format prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import sympy

from symbolic.constant_range import integer_problem
from symbolic.forms import Form
from symbolic.operators import BY_HEAD, OPERATORS

Tree = tuple | str | int | Fraction
Path = tuple[int, ...]

MAX_POWER = 16  # x**n is written as n−1 multiplications; larger powers cannot come from our ops
MAX_NODES = 2_000  # a loss candidate is far smaller; the parser and Candidate.from_tree refuse larger trees
MAX_DEPTH = 50  # of a candidate's tree (as deep as a search may breed): SymPy and its printers recurse
MAX_NESTING = 200  # of text the parser reads; a canonical tree must fit it for its prefix text to parse back


class UnsupportedExpression(ValueError):
    """A SymPy expression that has no exact light-tree form (e.g. π, floats, x**(1/3))."""


def is_operator_node(tree: Tree) -> bool:
    """True for an (operator, *children) node, False for inputs and constants."""
    return isinstance(tree, tuple)


def tree_size(tree: Tree) -> int:
    """Number of nodes: operators, inputs and constants."""
    if isinstance(tree, tuple):
        return 1 + sum(tree_size(child) for child in tree[1:])
    return 1


def tree_depth(tree: Tree) -> int:
    """Depth: 0 for a leaf, 1 + the deepest child for an operator."""
    if isinstance(tree, tuple):
        return 1 + max(tree_depth(child) for child in tree[1:])
    return 0


def iter_paths(tree: Tree, path: Path = ()) -> Iterator[tuple[Path, Tree]]:
    """Every (path, subtree) in pre-order; a path is the child indices from the root."""
    yield path, tree
    if isinstance(tree, tuple):
        for index, child in enumerate(tree[1:]):
            yield from iter_paths(child, (*path, index))


def subtree_at(tree: Tree, path: Path) -> Tree:
    """The subtree at ``path``."""
    for index in path:
        tree = tree[1 + index]
    return tree


def replace_at(tree: Tree, path: Path, new: Tree) -> Tree:
    """A copy of ``tree`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    index = 1 + path[0]
    return (*tree[:index], replace_at(tree[index], path[1:], new), *tree[index + 1 :])


def inputs_of(tree: Tree) -> set[str]:
    """The input names a tree uses."""
    if isinstance(tree, tuple):
        return set().union(*(inputs_of(child) for child in tree[1:]))
    return {tree} if isinstance(tree, str) else set()


def tree_rank(tree: Tree, form: Form) -> int:
    """1 if the tree is a vector over classes, 0 if one value per sample; raises on misuse."""
    if isinstance(tree, str):
        return 1 if form.vector else 0
    if not isinstance(tree, tuple):
        return 0
    ranks = [tree_rank(child, form) for child in tree[1:]]
    if tree[0] == "softmax":
        if ranks[0] == 0:
            raise ValueError("softmax needs a vector over classes, not a per-sample value")
        return 1
    if tree[0] == "dot":
        if max(ranks) == 0:
            raise ValueError("dot needs at least one vector over classes")
        return 0
    return max(ranks)


def tree_limit_problem(tree: Tree, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``tree`` is larger than ``MAX_NODES`` or deeper than ``max_depth``, or None; never recurses."""
    nodes = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return f"the formula has more than {MAX_NODES} nodes; a loss candidate is far smaller"
        if depth > max_depth:
            return f"the formula nests deeper than {max_depth} levels of operators"
        if isinstance(node, tuple):
            stack.extend((child, depth + 1) for child in node[1:])
    return None


def tree_problem(tree: Tree, form: Form) -> str | None:
    """Why ``tree`` is not a valid loss of ``form``, or None if it is."""
    for _, node in iter_paths(tree):
        if isinstance(node, tuple):
            op = OPERATORS.get(node[0])
            if op is None:
                return f"unknown operator {node[0]!r}"
            if form.name not in op.forms:
                return f"operator {node[0]!r} is not allowed in the {form.name} form"
            if len(node) - 1 != op.arity:
                return f"operator {node[0]!r} takes {op.arity} argument(s), got {len(node) - 1}"
        elif isinstance(node, str):
            if node not in form.input_names:
                return f"input {node!r} does not belong to the {form.name} form ({', '.join(form.input_names)})"
        elif isinstance(node, bool) or not isinstance(node, int | Fraction) or node < 0:
            return f"constant {node!r} must be a non-negative integer or fraction"
    if form.required.name not in inputs_of(tree):
        return f"a {form.name} loss must depend on {form.required.name}"
    try:
        rank = tree_rank(tree, form)
    except ValueError as error:
        return str(error)
    if rank != 0:
        return "the loss is a vector over classes; reduce it to one value per sample with dot"
    return None


def tree_to_sympy(tree: Tree, form: Form) -> sympy.Expr:
    """Build the SymPy expression of a light tree (SymPy's automatic evaluation applies)."""
    if isinstance(tree, tuple):
        return OPERATORS[tree[0]].build(*(tree_to_sympy(child, form) for child in tree[1:]))
    if isinstance(tree, str):
        return form.symbol(tree)
    if isinstance(tree, Fraction):
        return sympy.Rational(tree.numerator, tree.denominator)
    return sympy.Integer(tree)


def sympy_to_tree(expr: sympy.Expr, form: Form) -> Tree:
    """Write a SymPy expression as a light tree of primitives; exact, or UnsupportedExpression."""
    if expr.is_Symbol:
        if expr.name not in form.input_names:
            raise UnsupportedExpression(f"symbol {expr.name!r} is not an input of the {form.name} form")
        return expr.name
    if expr.is_Rational:
        return _rational_tree(expr)
    if expr is sympy.S.Exp1:
        return ("exp", 1)
    if expr.is_Add:
        return _add_tree(expr, form)
    if expr.is_Mul:
        return _mul_tree(expr, form)
    if expr.is_Pow:
        return _pow_tree(expr, form)
    op = BY_HEAD.get(type(expr))
    if op is None:
        raise UnsupportedExpression(f"{expr} is not built from the primitives of the search space")
    return (op.name, *(sympy_to_tree(arg, form) for arg in expr.args))


def _integer(value: sympy.Integer | int) -> int:
    value = int(value)
    problem = integer_problem(value)
    if problem is not None:
        raise UnsupportedExpression(problem)
    return value


def _rational_tree(value: sympy.Rational) -> Tree:
    magnitude = abs(value)
    tree = _integer(magnitude.p) if magnitude.q == 1 else ("div", _integer(magnitude.p), _integer(magnitude.q))
    return ("neg", tree) if value < 0 else tree


def _add_tree(expr: sympy.Add, form: Form) -> Tree:
    # Written as (positive terms, constants last) − negative terms: e − i − 1, not −1 + e − i.
    positive = sorted((t for t in expr.args if not t.could_extract_minus_sign()), key=lambda t: t.is_number)
    negative = sorted((-t for t in expr.args if t.could_extract_minus_sign()), key=lambda t: t.is_number)
    if not positive:
        return ("neg", _fold("add", [sympy_to_tree(t, form) for t in negative]))
    tree = _fold("add", [sympy_to_tree(t, form) for t in positive])
    for term in negative:
        tree = ("sub", tree, sympy_to_tree(term, form))
    return tree


def _mul_tree(expr: sympy.Mul, form: Form) -> Tree:
    coeff, factors = expr.as_coeff_mul()
    if coeff < 0:
        return ("neg", sympy_to_tree(-expr, form))
    p, q = _integer(coeff.p), _integer(coeff.q)
    numerator, denominator = [], []
    for factor in factors:
        if factor.is_Pow and factor.exp.is_Rational and factor.exp < 0:
            denominator.append(factor.base ** -factor.exp)
        else:
            numerator.append(factor)
    num = [sympy_to_tree(f, form) for f in numerator]
    den = [sympy_to_tree(f, form) for f in denominator]
    if _distributes(q, denominator) or (_distributes(p, numerator) and sum(not f.is_number for f in factors) < 2):
        # SymPy distributes a number over a lone sum, 2·(3 − x) → 6 − 2x, so writing p·(sum)... or
        # q·(sum)... would read back as another expression (only a product of two or more
        # non-constant factors gets its number back, see canonical._extract_sum_content):
        # divide by q last and let p scale the whole product instead.
        tree = _fold("mul", num) if num else 1
        if den:
            tree = ("div", tree, _fold("mul", den))
        if q != 1:
            tree = ("div", tree, q)
        return ("mul", p, tree) if p != 1 else tree
    tree = _fold("mul", [p, *num] if p != 1 else num) if num or p != 1 else 1
    return ("div", tree, _fold("mul", [q, *den] if q != 1 else den)) if den or q != 1 else tree


def _distributes(number: int, factors: list[sympy.Expr]) -> bool:
    """True when folding ``number`` into ``factors`` starts with number × sum, which SymPy expands."""
    return number != 1 and bool(factors) and factors[0].is_Add


def _pow_tree(expr: sympy.Pow, form: Form) -> Tree:
    base, exponent = expr.args
    if not exponent.is_Rational:
        raise UnsupportedExpression(f"{expr}: only rational powers come from the primitives")
    if exponent < 0:
        return ("div", 1, sympy_to_tree(base**-exponent, form))
    roots = exponent.q.bit_length() - 1
    if exponent.q != 1 << roots:
        raise UnsupportedExpression(f"{expr}: a root other than nested square roots")
    if exponent.p > MAX_POWER:
        raise UnsupportedExpression(f"{expr}: power above {MAX_POWER}")
    tree = sympy_to_tree(base, form)
    for _ in range(roots):
        tree = ("sqrt", tree)
    return _fold("mul", [tree] * int(exponent.p))


def _fold(op: str, trees: list[Tree]) -> Tree:
    result = trees[0]
    for tree in trees[1:]:
        result = (op, result, tree)
    return result
