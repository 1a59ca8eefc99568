"""Candidate: one loss formula of one form, with its canonical identity.

A Candidate is immutable: a canonical SymPy expression, its form, and its canonical key.
Two candidates are equal, and hash equal, exactly when their keys are. Everything else
(size, value and gradient fingerprints, printed forms, the JAX function) is derived on demand and
cached.

Construction is bounded, whatever the input: ``Candidate.parse``, ``Candidate.from_tree`` and
``Candidate(expr, form)`` either return a candidate or raise ``InvalidCandidate`` (the parser
raises ``ParseError``), in at most ``CONSTRUCTION_SECONDS`` of CPU time for the SymPy step. A
tree is checked before SymPy sees it: its size and depth (``symbolic.tree``), its structure,
and the range of its constants (``symbolic.constant_range``: no constant so large that one
mpmath call could run for minutes). The SymPy step then runs in ``_bounded``, the one place
where anything SymPy or mpmath raises (``TypeError: Invalid comparison of non-real``,
``OverflowError``, ``RecursionError``, running out of the time budget) becomes an
``InvalidCandidate`` that says what happened.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import sympy

from symbolic.canonical import InvalidCandidate, canonical_key, canonicalize, fingerprint
from symbolic.constant_range import constant_problem
from symbolic.forms import Form, get_form
from symbolic.time_budget import BudgetExceeded, time_budget
from symbolic.tree import (
    MAX_DEPTH,
    MAX_NESTING,
    MAX_NODES,
    Tree,
    UnsupportedExpression,
    sympy_to_tree,
    tree_depth,
    tree_limit_problem,
    tree_problem,
    tree_size,
    tree_to_sympy,
)
from symbolic.vector_ops import VectorOperatorError, expression_rank

CONSTRUCTION_SECONDS = 0.5  # CPU time for SymPy to build one candidate; ordinary ones take milliseconds


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Candidate:
    """A loss candidate: ``Candidate(expr, form)`` canonicalizes and validates ``expr``.

    Raises ``InvalidCandidate`` (with ``.reason``) when the expression is not a valid loss of
    the form: it evaluates to zoo/nan/oo or a complex number, uses an input of another form,
    does not depend on the form's main input, or (softmax) is not one value per sample.
    """

    expr: sympy.Expr
    form: Form
    key: str = dataclasses.field(init=False)
    tree: Tree = dataclasses.field(init=False)  # the canonical expression as primitives

    def __post_init__(self):
        if not isinstance(self.expr, sympy.Expr):
            raise TypeError(f"Candidate takes a SymPy expression, got {type(self.expr).__name__}; "
                            "use Candidate.parse for text")
        form = get_form(self.form)
        _bounded(lambda: self._settle(self.expr, form, check_constants=True))

    @classmethod
    def from_tree(cls, tree: Tree, form: Form | str) -> Candidate:
        """The candidate of a light tree; InvalidCandidate if the tree is not a valid loss."""
        form = get_form(form)
        problem = tree_limit_problem(tree) or tree_problem(tree, form) or constant_problem(tree)
        if problem is not None:
            raise InvalidCandidate(problem)
        candidate = object.__new__(cls)  # the tree's constants are checked: skip __post_init__'s check
        _bounded(lambda: candidate._settle(tree_to_sympy(tree, form), form, check_constants=False))
        return candidate

    def _settle(self, expr: sympy.Expr, form: Form, *, check_constants: bool) -> None:
        """Set the canonical expression, tree and key of ``expr`` (raw SymPy work: call through _bounded)."""
        if check_constants:
            _check_constants(expr, form)
        expr = canonicalize(expr)
        tree = _check_expression(expr, form)
        object.__setattr__(self, "form", form)
        object.__setattr__(self, "expr", expr)
        object.__setattr__(self, "tree", tree)
        object.__setattr__(self, "key", canonical_key(tree, form))

    @classmethod
    def parse(cls, text: str, form: Form | str) -> Candidate:
        """Parse infix or the authors' prefix text (our own grammar; never eval/sympify)."""
        from symbolic.parser import parse_tree

        form = get_form(form)
        return cls.from_tree(parse_tree(text, form), form)

    def __eq__(self, other) -> bool:
        return isinstance(other, Candidate) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Candidate({self.infix()!r}, form={self.form.name!r})"

    @property
    def size(self) -> int:
        """Number of nodes of the primitive tree (operators, inputs, constants)."""
        return tree_size(self.tree)

    @property
    def depth(self) -> int:
        """Depth of the primitive tree (0 for a lone input)."""
        return tree_depth(self.tree)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the rounded values on the form's fixed probe inputs."""
        return fingerprint(self.tree, self.form)

    @functools.cached_property
    def gradient_key(self) -> str | None:
        """Symbolic identity of the gradient up to a positive factor; None when not cheap (see gradient_equivalence)."""
        from symbolic.gradient_equivalence import gradient_key

        return gradient_key(self)

    @functools.cached_property
    def gradient_fingerprint(self) -> str:
        """Hash of the probe gradient divided by its root mean square (see gradient_equivalence)."""
        from symbolic.gradient_equivalence import gradient_fingerprint

        return gradient_fingerprint(self)

    def infix(self) -> str:
        """Plain math text, e.g. ``-log(sigmoid(x))``; parses back to this candidate."""
        from symbolic.printers import to_infix

        return to_infix(self.expr)

    def latex(self) -> str:
        """LaTeX for display."""
        from symbolic.printers import to_latex

        return to_latex(self.expr)

    def prefix(self) -> str:
        """The authors' prefix format, e.g. ``Neg(Log(Sig(X)))``; parses back to this candidate."""
        from symbolic.printers import to_prefix

        return to_prefix(self.tree, self.form)

    def to_jax(self):
        """A jitted pure JAX function with the form's signature, unreduced (see DESIGN.md)."""
        return _lowered(self)


def to_jax(candidate: Candidate):
    """The candidate's jitted pure JAX loss with its form's signature (``Candidate.to_jax``)."""
    return candidate.to_jax()


@functools.lru_cache(maxsize=4096)
def _lowered(candidate: Candidate):
    from symbolic.lowering import lower_to_jax

    return lower_to_jax(candidate.expr, candidate.form)


def _bounded(build: Callable[[], None]) -> None:
    """Run the SymPy step of a construction: within its time budget, raising only InvalidCandidate."""
    try:
        with time_budget(CONSTRUCTION_SECONDS):
            build()
    except InvalidCandidate:
        raise
    except BudgetExceeded:
        raise InvalidCandidate(f"SymPy needed more than {CONSTRUCTION_SECONDS} s of CPU time to build the formula; "
                               "write it with fewer nested functions, or fewer functions of constants") from None
    except RecursionError:
        raise InvalidCandidate("the formula nests too deeply for SymPy; write it with fewer nested "
                               "functions") from None
    except Exception as error:  # SymPy or mpmath failed on it: a formula we cannot handle, not a crash
        raise InvalidCandidate(f"SymPy cannot build the formula: {type(error).__name__}: {error}") from error


def _check_constants(expr: sympy.Expr, form: Form) -> None:
    """Refuse a SymPy expression with a constant out of range before canonicalization evaluates it."""
    try:
        tree = sympy_to_tree(expr, form)
    except UnsupportedExpression:
        return  # not written with the primitives: refused after canonicalization, with the reason
    problem = constant_problem(tree)
    if problem is not None:
        raise InvalidCandidate(problem)


def _check_expression(expr: sympy.Expr, form: Form) -> Tree:
    """The expression's primitive tree, or InvalidCandidate saying why it is not a loss of ``form``."""
    symbols = expr.free_symbols
    foreign = sorted(s.name for s in symbols if s not in form.symbols)
    if foreign:
        raise InvalidCandidate(
            f"input(s) {', '.join(foreign)} do not belong to the {form.name} form ({', '.join(form.input_names)})"
        )
    if form.required not in symbols:
        raise InvalidCandidate(f"a {form.name} loss must depend on {form.required.name}")
    if form.vector:
        try:
            rank = expression_rank(expr, frozenset(form.symbols))
        except VectorOperatorError as error:
            raise InvalidCandidate(str(error)) from None
        if rank != 0:
            raise InvalidCandidate("the loss is a vector over classes; reduce it to one value per sample with dot")
    try:
        tree = sympy_to_tree(expr, form)
    except UnsupportedExpression as error:
        raise InvalidCandidate(str(error)) from None
    problem = tree_limit_problem(tree, MAX_NESTING)  # its prefix text must parse back
    if problem is not None:
        raise InvalidCandidate(f"written with the primitives, {problem}")
    problem = constant_problem(tree)  # SymPy's rewriting may move a sign under a root: refused in the text too
    if problem is not None:
        raise InvalidCandidate(f"rewritten in canonical form, {problem}")
    if tree_depth(tree) > MAX_DEPTH // 2 or tree_size(tree) > MAX_NODES // 4:  # only such trees come near a limit
        _check_printed(expr, tree, form)
    return tree


def _check_printed(expr: sympy.Expr, tree: Tree, form: Form) -> None:
    """Refuse a canonical form whose printed text the parser would refuse (printing can nest a level deeper)."""
    from symbolic.parser import ParseError, parse_tree
    from symbolic.printers import to_infix, to_prefix

    for text in (to_infix(expr), to_prefix(tree, form)):
        try:
            problem = tree_limit_problem(parse_tree(text, form))
        except ParseError as error:
            problem = error.message
        if problem is not None:
            raise InvalidCandidate(f"printed in canonical form, {problem}")
