"""Python source of a compiled loss over an array backend, copied from the one text of each piece.

An exported module (JAX or PyTorch, see ``autoloss/export*.py``) is written from three texts
that also run in process, so nothing is written twice:

* the guarded primitives of ``symbolic.primitives``, copied with ``inspect.getsource``, with the
  guard constants and other primitives they refer to (found in their syntax tree);
* the backend class of ``symbolic.backends`` (``JaxArrays``, ``TorchArrays``), read from its
  module's file without importing it (torch need not be installed to export), trimmed to the
  words the loss uses, with its module's imports;
* the straight-line program of ``symbolic.lowering``: one local per instruction, each a call of
  a primitive. A primitive whose body is one ``return`` of its arguments and ``B`` alone, each
  argument used once (``a + b``, ``B.sigmoid(a)``), is written in place instead, through its
  syntax tree: ``t3 = t1 + t2``, not ``t3 = add(B, t1, t2)``.

Constants are written as float literals (17 significant digits, the value the program runs
with), or as ``constants[k]`` when they are a parameter of the function (``symbolic.constants``).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import importlib.util
import inspect
import textwrap
from collections.abc import Callable, Sequence

from symbolic import primitives
from symbolic.backends import BACKEND_CLASSES
from symbolic.forms import Form
from symbolic.lowering import Constant, Input, Program, output_primitive

# the guard constants: the module-level numbers of symbolic.primitives (LOG_FLOOR, DIV_FLOOR, ...)
_GUARDS = tuple(name for name, value in vars(primitives).items() if name.isupper() and isinstance(value, float))


@dataclasses.dataclass(frozen=True)
class PrimitiveText:
    """A primitive's source, what it refers to, and its in-place expression if it has one."""

    name: str
    source: str
    needs: tuple[str, ...]  # other primitives, guard constants and "math", by name
    words: frozenset[str]  # backend words (B.<word>) it uses
    inline: ast.expr | None  # the returned expression, when the primitive is written in place
    params: tuple[str, ...]


@functools.cache
def primitive_text(function: Callable) -> PrimitiveText:
    """The source facts of one function of ``symbolic.primitives``."""
    source = textwrap.dedent(inspect.getsource(function)).rstrip()
    definition = ast.parse(source).body[0]
    params = tuple(arg.arg for arg in definition.args.args)
    names = [n for n in ast.walk(definition) if isinstance(n, ast.Name)]
    local = set(params) | {n.id for n in names if isinstance(n.ctx, ast.Store)}
    known = set(_GUARDS) | {"math"} | {name for name, value in vars(primitives).items() if inspect.isfunction(value)}
    needs = tuple(sorted({n.id for n in names if n.id not in local and n.id in known}))
    return PrimitiveText(function.__name__, source, needs, _words(definition), _inline_expression(definition, params),
                         params)


def _words(node: ast.AST) -> frozenset[str]:
    return frozenset(n.attr for n in ast.walk(node)
                     if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "B")


def _inline_expression(definition: ast.FunctionDef, params: tuple[str, ...]) -> ast.expr | None:
    body = definition.body[1:] if ast.get_docstring(definition) is not None else definition.body
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return None
    names = [n.id for n in ast.walk(body[0].value) if isinstance(n, ast.Name)]
    if any(name not in params for name in names) or any(names.count(p) > 1 for p in params if p != "B"):
        return None
    return body[0].value


class _Substitute(ast.NodeTransformer):
    def __init__(self, replacements: dict[str, ast.expr]):
        self.replacements = replacements

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.replacements.get(node.id, node)


class SourceWriter:
    """Writes calls of primitives over a backend, and collects the definitions they need."""

    def __init__(self, backend: str):
        if backend not in BACKEND_CLASSES:
            raise ValueError(f"unknown array backend {backend!r}; choose one of {', '.join(BACKEND_CLASSES)}")
        self.backend = backend
        self.primitives: set[str] = set()
        self.words: set[str] = set()

    def call(self, function: Callable, *args: str) -> str:
        """Text of ``function(B, *args)``: the primitive's expression in place, or a call of its definition."""
        text = primitive_text(function)
        if text.inline is None:
            self._need(text.name)
            return f"{text.name}(B, {', '.join(args)})"
        self.words |= text.words
        replacements = {p: ast.parse(arg, mode="eval").body for p, arg in zip(text.params[1:], args, strict=True)}
        return ast.unparse(_Substitute(replacements).visit(copy.deepcopy(text.inline)))

    def word(self, word: str, *args: str) -> str:
        """Text of a call of the backend's ``word``."""
        self.words.add(word)
        return f"B.{word}({', '.join(args)})"

    def _need(self, name: str) -> None:
        if name in self.primitives:
            return
        self.primitives.add(name)
        if name in _GUARDS or name == "math":
            return
        text = primitive_text(getattr(primitives, name))
        self.words |= text.words
        for need in text.needs:
            self._need(need)

    def imports(self) -> list[str]:
        """The import lines the written code needs: math (if used) and the backend module's imports."""
        module, _ = BACKEND_CLASSES[self.backend]
        lines = ["import math"] if "math" in self.primitives else []
        return lines + _module_imports(module)

    def definitions(self) -> list[str]:
        """Blocks of source: the backend class (as ``B``), the guard constants, then the primitives used."""
        module, class_name = BACKEND_CLASSES[self.backend]
        blocks = [_trimmed_class(module, class_name, frozenset(self.words)), f"B = {class_name}"]
        guards = [_guard_line(name) for name in _GUARDS if name in self.primitives]
        if guards:
            blocks.append("\n".join(guards))
        functions = sorted(name for name in self.primitives if name not in _GUARDS and name != "math")
        return blocks + [primitive_text(getattr(primitives, name)).source for name in _dependency_order(functions)]


def _dependency_order(names: Sequence[str]) -> list[str]:
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for need in primitive_text(getattr(primitives, name)).needs:
            if need in names:
                visit(need)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered


@functools.cache
def _module_text(module: str) -> tuple[str, ast.Module]:
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as handle:
        text = handle.read()
    return text, ast.parse(text)


def _lines(text: str, first: int, last: int) -> str:
    return "\n".join(text.splitlines()[first - 1 : last])


def _module_imports(module: str) -> list[str]:
    text, tree = _module_text(module)
    return [_lines(text, n.lineno, n.end_lineno) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]


@functools.cache
def _guard_line(name: str) -> str:
    text, tree = _module_text(primitives.__name__)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]:
            return _lines(text, node.lineno, node.end_lineno)
    raise KeyError(name)


@functools.cache
def _trimmed_class(module: str, class_name: str, words: frozenset[str]) -> str:
    """The backend class's source with only the members called ``words`` (its docstring kept)."""
    text, tree = _module_text(module)
    definition = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    parts = [_lines(text, definition.lineno, definition.lineno)]
    previous_function = True
    for member in definition.body:
        if isinstance(member, ast.Expr) and isinstance(member.value, ast.Constant):  # the docstring
            parts.append(_lines(text, member.lineno, member.end_lineno))
            continue
        name = member.name if isinstance(member, ast.FunctionDef) else member.targets[0].id
        if name not in words:
            continue
        is_function = isinstance(member, ast.FunctionDef)
        first = member.decorator_list[0].lineno if is_function and member.decorator_list else member.lineno
        if is_function or previous_function:
            parts.append("")
        parts.append(_lines(text, first, member.end_lineno))
        previous_function = is_function
    return "\n".join(parts)


def float_literal(value: float) -> str:
    """Python text of a float (shortest round trip), parenthesized if negative."""
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


def loss_statements(program: Program, form: Form, writer: SourceWriter, *,
                    lifted_constants: str | None = None) -> list[str]:
    """The body of ``loss(<inputs>)``: inputs to arrays, one local per instruction, the form's output.

    With ``lifted_constants`` (a parameter's name) the lifted constants are read from it,
    ``constants[k]``; otherwise they are float literals.
    """
    names = form.input_names
    lines = [f"{', '.join(names)} = {writer.word('as_inputs', *names)}",
             f"shape = {writer.word('broadcast_shapes', *names)}"]
    texts: list[str] = []
    for rule, args in program.instructions:
        if isinstance(rule, Input):
            texts.append(rule.name)
        elif isinstance(rule, Constant):
            lifted = lifted_constants is not None and rule.index is not None
            texts.append(f"{lifted_constants}[{rule.index}]" if lifted else float_literal(rule.value))
        else:
            texts.append(f"t{len(lines) - 2}")
            lines.append(f"{texts[-1]} = {writer.call(rule, *(texts[k] for k in args))}")
    lines.append(f"return {writer.call(output_primitive(form), texts[program.output], 'shape')}")
    return lines
