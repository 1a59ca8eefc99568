"""Parse loss formulas, plain infix math and the authors' prefix format, with one grammar.

    expression := term (("+" | "-") term)*                 left associative
    term       := sign* factor (("*" | "/") factor)*       a leading "-" negates the whole term
    factor     := sign* atom (("**" | "^") factor)?        right associative; -x**2 = -(x**2)
    atom       := number | name | name "(" arguments ")" | "(" expression ")"

A sign or a numeric coefficient that starts a term applies to the whole product:
-a/b = -(a/b) and 2*a*b = 2*(a*b). The value is the same as reading them left to right, but
this is how SymPy prints a product with a coefficient, Mul(c, a, b), so its printed text parses
back to the same canonical expression (built as (-a)/b or (2*a)*b, SymPy would distribute the
coefficient over a sum a and give another, equal, expression).

Names are the form's inputs, the authors' input names (``Form.authors_inputs``) and the
operators of ``symbolic.operators`` under their infix or prefix names, so the authors'
``Neg(Log(Sig(X)))`` is just nested calls. Numbers become exact ints or Fractions. There is
no power primitive: a constant exponent ±n/2^k is written with n multiplications of k nested
square roots (and a division when negative), which covers what SymPy prints for canonical
expressions (``x**(-3/2)``, ``x**(1/4)``). The text is tokenized and parsed by hand, never
evaluated; limits on length, nesting and size keep hostile input cheap to reject.
"""

from __future__ import annotations

import difflib
import re
from fractions import Fraction

from symbolic.constant_range import MAX_DIGITS, rational_problem
from symbolic.forms import FORMS, Form, get_form
from symbolic.operators import BY_PREFIX, OPERATORS, Operator
from symbolic.tree import MAX_NESTING, MAX_NODES, MAX_POWER, Tree, tree_depth, tree_size

MAX_FORMULA_CHARS = 10_000  # MAX_NESTING counts parentheses, calls, unary signs and exponents, and the tree depth
MAX_NUMBER_DIGITS = MAX_DIGITS  # digits of a literal's mantissa, and the largest decimal exponent
_MAX_CONSTANT = 10**200  # larger intermediate values in an exponent are not exponents

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^(),]))"
)
_LOOKALIKES = {"−": "-", "×": "*", "·": "*", "÷": "/", "²": "**2", "√": "sqrt"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_TERM_PREFIX_PRECEDENCE = 1.5  # a term's leading sign or coefficient: looser than * and /
_BINARY_NAMES = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_FUNCTIONS: dict[str, Operator] = {**OPERATORS, **BY_PREFIX}


class ParseError(ValueError):
    """Text that is not a formula: says what is wrong, where (0-based ``position``) and shows it."""

    def __init__(self, message: str, text: str, position: int, token: str | None = None,
                 expected: str | None = None):
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position
        self.token = token
        self.expected = expected

    def __reduce__(self):
        return type(self), (self.message, self.text, self.position, self.token, self.expected)

    def __str__(self) -> str:
        return f"{self.message}\n{_caret_snippet(self.text, self.position, len(self.token or ' '))}"


def _caret_snippet(text: str, position: int, width: int) -> str:
    start = max(0, position - 40)
    end = min(len(text), position + width + 40)
    window = "".join(" " if c.isspace() else c for c in text[start:end])
    lead = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    offset = len(lead) + position - start
    return f"  {lead}{window}{tail}\n  {' ' * offset}{'^' * max(1, min(width, 60))}"


class _Token:
    __slots__ = ("kind", "text", "position")

    def __init__(self, kind: str, text: str, position: int):
        self.kind, self.text, self.position = kind, text, position

    def describe(self) -> str:
        return "the end of the formula" if self.kind == "end" else repr(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while True:
        match = _TOKEN.match(text, position)
        if match is None:
            start = len(text) - len(text[position:].lstrip())
            if start == len(text):
                tokens.append(_Token("end", "", start))
                return tokens
            char = text[start]
            hint = f"; write {_LOOKALIKES[char]!r} instead" if char in _LOOKALIKES else ""
            raise ParseError(f"unexpected character {char!r} at column {start + 1}{hint}", text, start, char)
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()


def _number(token: _Token, text: str) -> _Node:
    mantissa, _, exponent = token.text.lower().partition("e")
    exponent_digits = exponent.lstrip("+-") or "0"
    too_long = len(exponent_digits) > 3 or int(exponent_digits) > MAX_NUMBER_DIGITS
    if len(mantissa.replace(".", "")) > MAX_NUMBER_DIGITS or too_long:
        raise ParseError(f"number at column {token.position + 1} is too long: at most {MAX_NUMBER_DIGITS} "
                         f"digits and exponents up to e±{MAX_NUMBER_DIGITS}",
                         text, token.position, token.text)
    value = Fraction(token.text)
    problem = rational_problem(value)
    if problem is not None:
        raise ParseError(f"number at column {token.position + 1} is out of range: {problem}",
                         text, token.position, token.text)
    return _Node(value.numerator if value.denominator == 1 else value, 1, 0, value)


class _Node:
    """A parsed subtree with its size, depth and, for constant subtrees, exact value."""

    __slots__ = ("tree", "size", "depth", "value")

    def __init__(self, tree: Tree, size: int, depth: int, value: Fraction | None):
        self.tree, self.size, self.depth, self.value = tree, size, depth, value


_ONE = _Node(1, 1, 0, Fraction(1))


def _constant_value(name: str, values: list[Fraction | None]) -> Fraction | None:
    if None in values:
        return None
    if name == "neg":
        result = -values[0]
    elif name in ("add", "sub", "mul"):
        a, b = values
        result = a + b if name == "add" else a - b if name == "sub" else a * b
    elif name == "div" and values[1] != 0:
        result = values[0] / values[1]
    else:
        return None
    too_big = abs(result.numerator) > _MAX_CONSTANT or result.denominator > _MAX_CONSTANT
    return None if too_big else result


class _Parser:
    def __init__(self, text: str, form: Form):
        self.text = text
        self.form = form
        self.tokens = _tokenize(text)
        self.index = 0

    def error(self, token: _Token, message: str, expected: str | None = None) -> ParseError:
        return ParseError(message, self.text, token.position, token.text or None, expected)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def node(self, name: str, children: list[_Node], token: _Token) -> _Node:
        size = 1 + sum(child.size for child in children)
        depth = 1 + max(child.depth for child in children)
        if size > MAX_NODES:
            raise self.error(token, f"the formula has more than {MAX_NODES} nodes (at column "
                                    f"{token.position + 1}); a loss candidate is far smaller")
        if depth > MAX_NESTING:
            raise self.error(token, f"the formula nests deeper than {MAX_NESTING} levels "
                                    f"(at column {token.position + 1})")
        value = _constant_value(name, [child.value for child in children])
        return _Node((name, *(child.tree for child in children)), size, depth, value)

    def deeper(self, token: _Token, depth: int) -> int:
        """``depth + 1``, or a ParseError at ``token`` when that passes MAX_NESTING."""
        if depth >= MAX_NESTING:
            raise self.error(token, f"the formula nests deeper than {MAX_NESTING} levels "
                                    f"(at column {token.position + 1})")
        return depth + 1

    def formula(self) -> Tree:
        if self.peek().kind == "end":
            raise ParseError("the formula is empty; write a loss such as -log(sigmoid(x))", self.text, 0)
        result = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            if token.text == ")":
                raise self.error(token, f"unbalanced parentheses: ')' at column {token.position + 1} "
                                        "has no matching '('", "an operator or the end")
            raise self.error(token, f"unexpected {token.describe()} at column {token.position + 1} after "
                                    "a complete expression; expected an operator (+ - * / **) or the end",
                             "an operator or the end")
        return result.tree

    def expression(self, depth: int) -> _Node:
        # + - * / and leading signs are reduced with an explicit operator stack, so only
        # parentheses, calls, signs after * / and exponents recurse: at most three Python
        # frames per nesting level.
        operands: list[_Node] = []
        pending: list[tuple[float, str, _Token]] = []
        self.leading_signs(pending, depth)
        operands.append(self.operand(depth))
        while True:
            token = self.peek()
            precedence = _PRECEDENCE.get(token.text) if token.kind == "op" else None
            if precedence is None:
                break
            while pending and pending[-1][0] >= precedence:  # left associative
                self.reduce(operands, pending)
            pending.append((precedence, _BINARY_NAMES[token.text], self.advance()))
            if precedence == _PRECEDENCE["+"]:
                self.leading_signs(pending, depth)
            operands.append(self.operand(depth))
        while pending:
            self.reduce(operands, pending)
        return operands[0]

    def leading_signs(self, pending: list[tuple[float, str, _Token]], depth: int) -> None:
        """Signs and a numeric coefficient that start a term apply to the whole product."""
        while self.peek().text in ("-", "+"):
            token = self.advance()
            depth = self.deeper(token, depth)
            if token.text == "-":
                pending.append((_TERM_PREFIX_PRECEDENCE, "neg", token))
        token = self.peek()
        if token.kind == "number" and self.tokens[self.index + 1].text == "*":
            self.advance()
            pending.append((_TERM_PREFIX_PRECEDENCE, "coefficient", token))
            self.advance()

    def reduce(self, operands: list[_Node], pending: list[tuple[float, str, _Token]]) -> None:
        _, name, token = pending.pop()
        if name == "neg":
            operands[-1] = self.node("neg", [operands[-1]], token)
        elif name == "coefficient":
            operands[-1] = self.node("mul", [_number(token, self.text), operands[-1]], token)
        else:
            right = operands.pop()
            operands[-1] = self.node(name, [operands[-1], right], token)

    def operand(self, depth: int) -> _Node:
        """A factor: signs (after * / or **), an atom, then an optional right-associative power."""
        signs = []
        while self.peek().text in ("-", "+"):
            token = self.advance()
            depth = self.deeper(token, depth)
            signs.append(token)
        token = self.advance()
        if token.kind == "number":
            result = _number(token, self.text)
        elif token.kind == "name" and self.peek().text == "(":
            result = self.call(token, self.deeper(token, depth))
        elif token.kind == "name":
            result = self.name(token)
        elif token.text == "(":
            result = self.expression(self.deeper(token, depth))
            self.expect_close(token)
        else:
            self.index -= 1
            raise self.missing_operand(token)
        if self.peek().text in ("**", "^"):
            power_token = self.advance()
            exponent_token = self.peek()
            exponent = self.operand(self.deeper(power_token, depth))
            result = self.power(result, exponent, power_token, exponent_token)
        for sign in reversed(signs):
            if sign.text == "-":
                result = self.node("neg", [result], sign)
        return result

    def missing_operand(self, token: _Token) -> ParseError:
        if token.kind == "end":
            return self.error(token, f"the formula ends at column {token.position + 1} where an "
                                     "expression was expected", "an expression")
        return self.error(token, f"expected a number, an input, a function call or '(' at column "
                                 f"{token.position + 1}, found {token.describe()}", "an expression")

    def expect_close(self, opening: _Token) -> None:
        token = self.peek()
        if token.text == ")":
            self.advance()
            return
        if token.kind == "end":
            raise self.error(opening, f"unbalanced parentheses: '(' at column {opening.position + 1} "
                                      "is never closed", "')'")
        raise self.error(token, f"expected ')' at column {token.position + 1}, found {token.describe()}",
                         "')'")

    def call(self, name_token: _Token, depth: int) -> _Node:
        name = name_token.text
        op = _FUNCTIONS.get(name)
        if op is None:
            raise self.error(name_token, self.unknown_function_message(name_token))
        if self.form.name not in op.forms:
            allowed = ", ".join(sorted(op.forms))
            raise self.error(name_token, f"operator {name!r} at column {name_token.position + 1} is not "
                                         f"allowed in the {self.form.name} form (only in: {allowed})")
        opening = self.advance()
        arguments: list[_Node] = []
        if self.peek().text == ")":
            self.advance()
        else:
            while True:
                arguments.append(self.expression(depth))
                token = self.advance()
                if token.text == ")":
                    break
                if token.text != ",":
                    self.index -= 1
                    if token.kind == "end":
                        raise self.error(opening, f"unbalanced parentheses: '(' at column "
                                                  f"{opening.position + 1} is never closed", "')' or ','")
                    raise self.error(token, f"expected ')' or ',' at column {token.position + 1}, found "
                                            f"{token.describe()}", "')' or ','")
        if len(arguments) != op.arity:
            plural = "s" if op.arity != 1 else ""
            raise self.error(name_token, f"{name!r} at column {name_token.position + 1} takes {op.arity} "
                                         f"argument{plural}, got {len(arguments)}")
        return self.node(op.name, arguments, name_token)

    def name(self, token: _Token) -> _Node:
        name = token.text
        if name in self.form.input_names:
            return _Node(name, 1, 0, None)
        if name in self.form.authors_inputs:
            tree = self.form.authors_inputs[name]
            return _Node(tree, tree_size(tree), tree_depth(tree), None)
        column = token.position + 1
        if name in _FUNCTIONS:
            raise self.error(token, f"{name!r} at column {column} is a function; call it as {name}(...)",
                             "'('")
        inputs = f"the {self.form.name} form's inputs are {', '.join(self.form.input_names)}"
        authors = ", ".join(self.form.authors_inputs)
        euler = "; write exp(1) for Euler's number" if name in ("e", "E") else ""
        for other in FORMS.values():
            if other.name != self.form.name and (name in other.input_names or name in other.authors_inputs):
                raise self.error(token, f"{name!r} at column {column} is an input of the {other.name} form; "
                                        f"{inputs} (the authors' {authors}){euler}")
        known = [*self.form.input_names, *self.form.authors_inputs, *_FUNCTIONS]
        raise self.error(token, f"unknown name {name!r} at column {column}{_suggest(name, known)}; "
                                f"{inputs} (the authors' {authors}){euler}")

    def unknown_function_message(self, token: _Token) -> str:
        name = token.text
        column = token.position + 1
        if name in self.form.input_names or name in self.form.authors_inputs:
            return f"{name!r} at column {column} is an input, not a function; write {name}*(...) to multiply"
        # Suggest names in the style the writer uses: infix names are lower case, prefix capitalized.
        infix, prefix = list(OPERATORS), list(BY_PREFIX)
        pools = (prefix, infix) if name[:1].isupper() else (infix, prefix)
        suggestion = _suggest(name, pools[0]) or _suggest(name, pools[1])
        if not suggestion:
            names = ", ".join(op.name for op in self.form.operators)
            suggestion = f"; the {self.form.name} form's functions are {names} (or their prefix names)"
        return f"unknown function {name!r} at column {column}{suggestion}"

    def power(self, base: _Node, exponent: _Node, token: _Token, exponent_token: _Token) -> _Node:
        value = exponent.value
        allowed = (f"exponents must be constants ±n or ±n/2^k with n ≤ {MAX_POWER}, e.g. x**2, x**(1/2), "
                   "x**(-3/2), since the operators have no general power")
        if value is None:
            raise self.error(exponent_token, f"exponent at column {exponent_token.position + 1} is not a "
                                             f"rational constant; {allowed}", "a constant exponent")
        magnitude = abs(value)
        roots = magnitude.denominator.bit_length() - 1
        if magnitude.denominator != 1 << roots or magnitude.numerator > MAX_POWER:
            raise self.error(exponent_token, f"exponent {value} at column {exponent_token.position + 1} "
                                             f"cannot be written with the operators; {allowed}",
                             "a constant exponent")
        if magnitude == 0:
            return _ONE
        for _ in range(roots):
            base = self.node("sqrt", [base], token)
        result = base
        for _ in range(magnitude.numerator - 1):
            result = self.node("mul", [result, base], token)
        return self.node("div", [_ONE, result], token) if value < 0 else result


def _suggest(name: str, known: list[str]) -> str:
    matches = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    if not matches:
        return ""
    described = [f"{m!r} (the scaled {m[:-2]})" if m.endswith("_s") else repr(m) for m in matches]
    return f"; did you mean {' or '.join(described)}?"


def parse_tree(text: str, form: Form | str) -> Tree:
    """Parse infix or the authors' prefix ``text`` into a light tree of ``form``; ParseError if not."""
    if not isinstance(text, str):
        raise TypeError(f"a formula must be a str, got {type(text).__name__}")
    form = get_form(form)
    if len(text) > MAX_FORMULA_CHARS:
        raise ParseError(f"the formula is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}",
                         text, MAX_FORMULA_CHARS)
    return _Parser(text, form).formula()
