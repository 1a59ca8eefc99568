"""Parser fuzz: seeded hostile strings against ``Candidate.parse``, counted by outcome.

Every input goes where a user's formula goes, ``Candidate.parse`` (the parser, then the bounded
construction). The allowed outcomes are a clean rejection (``ParseError`` or
``InvalidCandidate``) or an accepted candidate, whose infix and prefix text must parse back to the
same key (its LaTeX is printed too). What must never happen: any other exception, a printed
formula that does not parse back, or one input taking more than 1 s of CPU time for all of it,
printing and parsing back included. Kinds of input:

* random text: printable ASCII, any Unicode code point, control characters;
* token soup: the grammar's tokens, the operators' names, misspellings, in random order;
* mutated formulas: published losses and bred candidates (infix and prefix) with names, numbers
  or subformulas swapped, functions wrapped around, characters deleted, inserted or replaced;
* huge: formulas and numbers around and far beyond the length limit;
* deeply nested: parentheses, calls, signs, powers, chains of functions, up to 10,000 deep;
* numbers: 1e400, nan, inf, 1e-400, 310-digit integers, malformed literals, in several places;
* unicode look-alikes: −, ×, ÷, √, ², fullwidth and Cyrillic letters, zero-width spaces, in
  otherwise valid formulas;
* prefix arity: the authors' prefix format with wrong argument counts, empty arguments,
  operators and inputs of other forms;
* constant towers: nested functions of constants (``x*abs(cos(exp(exp(exp(3)))))``);
* deep chains: functions of the inputs nested 10 to 50 deep (``abs(x - abs(x - ...))``).

    python -m benchmarks.parser_fuzz [--count N] [--seed S] [--write] [--quiet]
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from benchmarks.results_file import RESULTS, command_line, machine_line, publish
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import FORMS
from symbolic.operators import BY_PREFIX, OPERATORS
from symbolic.parser import MAX_FORMULA_CHARS, ParseError
from symbolic.printers import tree_to_infix
from symbolic.variation import crossover, mutate, random_tree
from symbolic.zoo import KNOWN_LOSSES

SECTION = "## Parser fuzz (hostile input)"
SLOW_SECONDS = 1.0
FORM_NAMES = sorted(FORMS)
_FUNCTION_NAMES = sorted({*OPERATORS, *BY_PREFIX} - {"add", "sub", "mul", "div"})
_INPUT_NAMES = sorted({n for f in FORMS.values() for n in (*f.input_names, *f.authors_inputs)})
_NAMES = [*_FUNCTION_NAMES, *_INPUT_NAMES]
_TOKENS = [*_NAMES, "(", ")", ",", "+", "-", "*", "/", "**", "^", " ", "1", "2", "3", "0.5", "1e9", "e", "pi",
           "sigmoid_", "Sig1", "exp exp", "$", "[", "]", "{", "}", "=", ";", "\\", "'", '"', "#", "@", "..", "1/0"]
_LOOKALIKES = {"-": ["−", "–", "—", "‐"], "*": ["×", "·", "∗", "⋅"], "/": ["÷", "∕", "⁄"], "x": ["х", "ｘ", "ⅹ", "𝑥"],
               "(": ["（", "❨"], ")": ["）", "❩"], "e": ["е", "ｅ"], "s": ["ѕ", "ｓ"], "1": ["１", "¹", "l"],
               "2": ["２", "²"], " ": ["\u00a0", "\u200b", "\u2009", "\u200f", "\t", "\n"], "o": ["о", "ο"]}
_NUMBERS = ["1e400", "1e-400", "1e309", "1e308", "1.7976931348623157e308", "5e-324", "nan", "NaN", "inf", "-inf",
            "Infinity", "0", "-0", "0.0", "1.", ".5", "1e", "1e+", "1e-", "0x1F", "1_000", "１２", "1e99999",
            "9" * 310, "9" * 311, "1" + "0" * 309, "0." + "0" * 308 + "1", "1e-310", "1e310", "1.5e-309"]
_NUMBER_PLACES = ["x*{}", "x/{}", "{}**x", "x**{}", "exp({})*x", "x + sqrt({})", "log({})*x", "x - {}", "{}"]
_CONSTANTS = ["1", "2", "3", "0.5", "1e10", "1e100", "9" * 50, "1e-100", "100", "700", "1000"]
_UNARY = sorted(op.name for op in OPERATORS.values() if op.arity == 1)
_WRAPPERS = ["x*abs({})", "x*relu({})", "x + {}", "x*{}", "sqrt({})*x", "x*log({})", "sigmoid(x)*cos({})",
             "x*sign({})", "x/({})", "dot(x, y)*abs({})"]
_ISSUE = ["x*abs(cos(exp(exp(exp(3)))))", "x*relu(cos(exp(exp(exp(3)))))", "x*abs(cos(exp(1e10)))",
          "x + abs(sqrt(tanh(1 + sqrt(1-3))))", "x + erfc_s(sigmoid(exp(" + "9" * 100 + ")))", "x/1e100"]


def _pick_form(rng: random.Random) -> str:
    return rng.choice(FORM_NAMES)


def random_text(rng: random.Random) -> tuple[str, str]:
    """Random characters: printable ASCII, any Unicode code point, or control characters."""
    length = int(rng.expovariate(1 / 30))
    pool = rng.random()
    if pool < 0.6:
        text = "".join(chr(rng.randrange(32, 127)) for _ in range(length))
    elif pool < 0.85:
        text = "".join(chr(rng.choice([rng.randrange(0xD800), rng.randrange(0xE000, 0x110000)])) for _ in range(length))
    else:
        text = "".join(chr(rng.randrange(0, 32)) for _ in range(length))
    return text, _pick_form(rng)


def token_soup(rng: random.Random) -> tuple[str, str]:
    """The grammar's tokens and names in random order."""
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randrange(1, 50))), _pick_form(rng)


class _Formulas:
    """Valid formulas of each form, infix and prefix: the known losses and bred candidates."""

    def __init__(self, seed: int, per_form: int = 150):
        self.by_form: dict[str, list[str]] = {form: [] for form in FORM_NAMES}
        for known in KNOWN_LOSSES.values():
            self.by_form[known.form].extend([known.candidate.infix(), known.candidate.prefix()])
        rng = random.Random(f"parser-fuzz-formulas-{seed}")
        for form in FORM_NAMES:
            while len(self.by_form[form]) < per_form:
                tree = random_tree(rng, form, max_depth=rng.choice([3, 5, 7]))
                if rng.random() < 0.5:
                    tree = mutate(rng, tree, form) if rng.random() < 0.5 else crossover(
                        rng, tree, random_tree(rng, form), form)
                try:
                    candidate = Candidate.from_tree(tree, form)
                except InvalidCandidate:
                    continue
                self.by_form[form].extend([candidate.infix(), candidate.prefix()])

    def pick(self, rng: random.Random) -> tuple[str, str]:
        form = _pick_form(rng)
        return rng.choice(self.by_form[form]), form


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+\.?[0-9]*(?:[eE][-+]?[0-9]+)?")


def _mutate_text(rng: random.Random, text: str, pool: list[str]) -> str:
    """``text`` with 1 to 3 edits: mostly a name, number or subformula swapped for one of its kind, else characters."""
    for _ in range(rng.randrange(1, 4)):
        words = list(_WORD.finditer(text))
        if words and rng.random() < 0.7:
            word = rng.choice(words)
            is_call = text[word.end():word.end() + 1] == "("
            if is_call:
                replacement = rng.choice(_FUNCTION_NAMES)
            elif word.group()[0].isdigit() or rng.random() < 0.3:
                replacement = rng.choice([*_NUMBERS, *_CONSTANTS, rng.choice(pool)])
            else:
                replacement = rng.choice([*_INPUT_NAMES, f"{rng.choice(_UNARY)}({word.group()})"])
            text = text[:word.start()] + replacement + text[word.end():]
            continue
        if not text:
            text = rng.choice(_TOKENS)
            continue
        a = rng.randrange(len(text))
        b = min(len(text), a + rng.randrange(1, 12))
        kind = rng.randrange(4)
        if kind == 0:
            text = text[:a] + text[b:]
        elif kind == 1:
            text = text[:a] + rng.choice(_TOKENS) + text[a:]
        elif kind == 2:
            text = text[:a] + chr(rng.randrange(32, 127)) + text[a + 1:]
        else:
            text = text[:b] + text[a:b] + text[b:]
    return text


def huge(rng: random.Random) -> tuple[str, str]:
    """Formulas and numbers around and far beyond the length limit."""
    size = rng.choice([MAX_FORMULA_CHARS // 2, MAX_FORMULA_CHARS - 1, MAX_FORMULA_CHARS + 1, 10 * MAX_FORMULA_CHARS,
                       10**6])
    unit = rng.choice(["x+", "x*", "sigmoid(x)+", "9", "a", " ", "(", "-", "Add(X,", "x**2+"])
    return (unit * (size // len(unit) + 1))[:size] + rng.choice(["x", "", ")" * 5]), _pick_form(rng)


def deeply_nested(rng: random.Random) -> tuple[str, str]:
    """Parentheses, calls, signs, powers and chains of functions, 10 to 10,000 deep."""
    depth = int(10 ** rng.uniform(1, 4))
    opener, inner, closer = rng.choice([("(", "x", ")"), ("exp(", "x", ")"), ("-", "x", ""), ("x**", "2", ""),
                                        ("Sig(", "X", ")"), ("sigmoid(x*", "1", ")"), ("abs(x-", "1", ")"),
                                        ("relu(1-", "x", ")"), ("x+(", "x", ")"), ("sqrt(x+", "1", ")"),
                                        ("Neg(Add(X,", "X", "))"), ("2*exp(", "x", ")"), ("log(1+", "x", ")")])
    return opener * depth + inner + closer * depth, _pick_form(rng)


def numbers(rng: random.Random) -> tuple[str, str]:
    """Out-of-range, special and malformed numbers in several places of a formula."""
    return rng.choice(_NUMBER_PLACES).format(rng.choice(_NUMBERS)), _pick_form(rng)


def constant_towers(rng: random.Random) -> tuple[str, str]:
    """Nested functions of constants, as the issue's reproducers and the search's generator make them."""
    if rng.random() < 0.05:
        return rng.choice(_ISSUE), "sigmoid"

    def grow(depth: int) -> tuple | str:
        if depth == 0 or rng.random() < 0.15:
            return rng.choice(_CONSTANTS)
        if rng.random() < 0.75:
            return (rng.choice(_UNARY), grow(depth - 1))
        return (rng.choice(["add", "sub", "mul", "div"]), grow(depth - 1), grow(depth - 1))

    wrapper = rng.choice(_WRAPPERS)
    form = "softmax" if wrapper.startswith("dot") else rng.choice(["sigmoid", "sigmoid", "reg"])
    return wrapper.format(tree_to_infix(grow(rng.randrange(1, 9)))), form


def deep_chains(rng: random.Random) -> tuple[str, str]:
    """Functions of the inputs nested 10 to 50 deep, where SymPy's work grows fastest."""
    form = rng.choice(["sigmoid", "reg"])
    variable = "x" if form == "sigmoid" else "i"
    text = variable
    for _ in range(rng.randrange(10, 51)):
        function = rng.choice(["abs", "relu", "sqrt", "sigmoid", "tanh", "log", "exp", "softplus", "cos"])
        text = f"{function}({rng.choice([variable, '1', '2', '3'])} {rng.choice('+-*/')} {text})"
    return text, form


def prefix_arity(rng: random.Random) -> tuple[str, str]:
    """The authors' prefix format with wrong argument counts, empty arguments and foreign names."""
    inputs = [*FORMS["sigmoid"].authors_inputs, *FORMS["reg"].authors_inputs, "Y", "Z", "1", "2", ""]

    def grow(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(inputs)
        op = rng.choice(list(BY_PREFIX))
        arity = BY_PREFIX[op].arity if rng.random() < 0.7 else rng.randrange(0, 5)
        return f"{op}({','.join(grow(depth - 1) for _ in range(arity))})"

    return grow(rng.randrange(1, 7)), _pick_form(rng)


def _lookalikes(formulas: _Formulas) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        text, form = formulas.pick(rng)
        chars = list(text)
        places = [k for k, c in enumerate(chars) if c in _LOOKALIKES]
        for k in rng.sample(places, min(len(places), rng.randrange(1, 4))):
            chars[k] = rng.choice(_LOOKALIKES[chars[k]])
        return "".join(chars), form

    make.__doc__ = "Valid formulas with characters replaced by Unicode look-alikes."
    return make


def _mutated(formulas: _Formulas) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        text, form = formulas.pick(rng)
        return _mutate_text(rng, text, formulas.by_form[form]), form

    make.__doc__ = "Known losses and bred candidates with names, numbers, subformulas or characters changed."
    return make


@functools.lru_cache(maxsize=4)
def generators(seed: int) -> dict[str, tuple[float, Callable[[random.Random], tuple[str, str]]]]:
    """Each kind of input: (share of the inputs, a function of a seeded Random giving (text, form))."""
    formulas = _Formulas(seed)
    return {
        "random text": (0.15, random_text),
        "token soup": (0.15, token_soup),
        "mutated formulas": (0.235, _mutated(formulas)),
        "huge": (0.02, huge),
        "deeply nested": (0.05, deeply_nested),
        "numbers": (0.08, numbers),
        "unicode look-alikes": (0.10, _lookalikes(formulas)),
        "prefix arity": (0.08, prefix_arity),
        "constant towers": (0.12, constant_towers),
        "deep chains": (0.015, deep_chains),
    }


def hostile_inputs(count: int, seed: int) -> Iterator[tuple[str, str, str]]:
    """``count`` seeded (kind, text, form) inputs, made one at a time; the same seed gives the same inputs."""
    kinds = generators(seed)
    names = list(kinds)
    shares = [kinds[name][0] for name in names]
    rng = random.Random(seed)
    for _ in range(count):
        kind = rng.choices(names, shares)[0]
        yield (kind, *kinds[kind][1](rng))


def _reason_group(reason: str) -> str:
    if "float64" in reason or "digits" in reason:
        return "constant out of range"
    if "of CPU time" in reason:
        return "time budget"
    if reason.startswith("SymPy cannot build") or "nests too deeply for SymPy" in reason:
        return "SymPy failure"
    return "other reason"


def judge(text: str, form: str) -> tuple[str, float, float, str | None]:
    """(outcome, CPU seconds, wall seconds, detail) of ``Candidate.parse(text, form)``, its printing and round trip."""
    cpu, wall = time.thread_time(), time.perf_counter()
    try:
        candidate = Candidate.parse(text, form)
    except ParseError:
        outcome, detail, candidate = "ParseError", None, None
    except InvalidCandidate as error:
        outcome, detail, candidate = "InvalidCandidate", _reason_group(error.reason), None
    except Exception as error:  # noqa: BLE001 - what this benchmark counts
        outcome, detail, candidate = "other exception", f"{type(error).__name__}: {error}", None
    else:
        outcome, detail = "accepted", None
    if candidate is not None:
        try:
            for printed in (candidate.infix(), candidate.prefix()):
                if Candidate.parse(printed, form).key != candidate.key:
                    outcome, detail = "round trip failed", printed
            candidate.latex()
        except Exception as error:  # noqa: BLE001
            outcome, detail = "other exception", f"printing: {type(error).__name__}: {error}"
    return outcome, time.thread_time() - cpu, time.perf_counter() - wall, detail


def run(count: int, seed: int, progress: bool = True) -> dict:
    """Judge ``count`` seeded hostile inputs; counts per kind, the failures and the slowest inputs."""
    inputs = hostile_inputs(count, seed)
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    slowest: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    reasons: collections.Counter = collections.Counter()
    failures: list[tuple[str, str, str, str]] = []
    # The objects that exist before the run are no input's cost: a full garbage collection of a large host
    # process (a test suite's) would otherwise be charged to whichever input triggered it.
    gc.freeze()
    try:
        for kind, text, form in tqdm(inputs, desc="parser fuzz", unit="input", total=count, disable=not progress,
                                     mininterval=2):
            outcome, cpu, wall, detail = judge(text, form)
            row = rows[kind]
            row["inputs"] += 1
            row[outcome] += 1
            if outcome == "InvalidCandidate":
                reasons[detail] += 1
            if cpu > SLOW_SECONDS:
                row["over 1 s"] += 1
                failures.append((kind, form, _abbreviated(text), f"{cpu:.2f} s of CPU time"))
            if outcome in ("other exception", "round trip failed"):
                failures.append((kind, form, _abbreviated(text), f"{outcome}: {detail}"))
            slowest[kind] = [max(slowest[kind][0], cpu), max(slowest[kind][1], wall)]
    finally:
        gc.unfreeze()
    return {"rows": dict(rows), "slowest": dict(slowest), "reasons": reasons, "failures": failures}


def _abbreviated(text: str, limit: int = 100) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def render(result: dict, count: int, seed: int, command: str, minutes: float) -> str:
    """The RESULTS.md section of a fuzz run."""
    columns = ["ParseError", "InvalidCandidate", "accepted", "other exception", "round trip failed", "over 1 s"]
    lines = [SECTION, "", f"Machine: {machine_line()}.", "", f"Command: `{command}` ({minutes:.1f} min).", "",
             f"| input kind | inputs | {' | '.join(columns)} | slowest (CPU s) | slowest (wall s) |",
             "|---" * (len(columns) + 4) + "|"]
    total: collections.Counter = collections.Counter()
    for kind, row in sorted(result["rows"].items(), key=lambda item: -item[1]["inputs"]):
        total.update(row)
        cpu, wall = result["slowest"][kind]
        lines.append(f"| {kind} | {row['inputs']:,} | " + " | ".join(f"{row[c]:,}" for c in columns)
                     + f" | {cpu:.2f} | {wall:.2f} |")
    cpu = max(cpu for cpu, _ in result["slowest"].values())
    wall = max(wall for _, wall in result["slowest"].values())
    lines.append(f"| **all** | **{total['inputs']:,}** | " + " | ".join(f"**{total[c]:,}**" for c in columns)
                 + f" | **{cpu:.2f}** | **{wall:.2f}** |")
    reasons = ", ".join(f"{name} {n:,}" for name, n in result["reasons"].most_common())
    lines += [
        "",
        f"* Targets: other exceptions 0 and inputs over {SLOW_SECONDS:g} s of CPU time 0; measured "
        f"**{total['other exception']:,}** and **{total['over 1 s']:,}**; printed formulas of accepted inputs that "
        f"do not parse back to the same key: **{total['round trip failed']:,}**.",
        f"* InvalidCandidate by reason: {reasons or 'none'}. A time-budget refusal is SymPy work stopped after "
        "`symbolic.candidate.CONSTRUCTION_SECONDS` of CPU time; a SymPy failure is an exception SymPy or mpmath "
        "raised, turned into InvalidCandidate by the construction's guard.",
        f"* {count:,} inputs of seed {seed}; the time of an input covers parsing, construction, printing (infix, "
        "prefix, LaTeX) and parsing both back. CPU time is the judging thread's own (`time.thread_time`); wall time "
        "includes waiting for the cores other processes share.",
    ]
    if result["failures"]:
        lines += ["", "Failures (first 20):", ""]
        lines += [f"* {kind}, {form}: `{text}`: {what}" for kind, form, text, what in result["failures"][:20]]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line: --count, --seed, --write, --results, --quiet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="number of hostile inputs (default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    parser.add_argument("--write", action="store_true", help="replace this section of the results file")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file (benchmarks/RESULTS.md)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    return args


def main(argv=None) -> str:
    """Run the fuzz; print the section (and write it with --write); return it."""
    args = parse_args(argv)
    started = time.perf_counter()
    result = run(args.count, args.seed, progress=not args.quiet)
    section = render(result, args.count, args.seed, command_line("benchmarks.parser_fuzz", argv),
                     (time.perf_counter() - started) / 60)
    return publish(section, args.write, args.results)


if __name__ == "__main__":
    main()
