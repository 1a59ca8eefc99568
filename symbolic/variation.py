"""Random generation and variation of light trees: ramped half-and-half, mutations, crossover.

Randomness is explicit: every function takes a ``random.Random`` as its first argument
(scalar draws from the standard library are several times cheaper than NumPy's for one
value at a time), and the same seed gives the same trees.

Trees are typed by *rank* (see ``symbolic.vector_ops``): in the ``softmax`` form the inputs
are vectors over classes (rank 1) and constants are one value per sample (rank 0);
``softmax`` maps a vector to a vector, ``dot`` maps two vectors to one value per sample,
and an elementwise operator is a vector when any argument is. Every node is generated
for a required rank and every variation keeps the rank of what it replaces, so the root
stays one value per sample. In the other forms everything has rank 0.

Every result is checked to be a valid loss of its form (``is_valid_tree``: the same verdict
as ``tree_problem(tree, form) is None``, e.g. it must use x, or i for ``reg``, without
building messages); generation and variation retry a bounded number of times.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from fractions import Fraction

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import Form, get_form
from symbolic.operators import CONSTANTS
from symbolic.tree import Path, Tree, iter_paths, replace_at, tree_depth, tree_size

MAX_SIZE = 48  # default limits of mutate/crossover; the authors' published losses fit in them
MAX_DEPTH = 10
SUBTREE_DEPTH = 2  # depth of new subtrees grown by insert_node and replace_subtree
ATTEMPTS = 25  # retries of one variation before giving up on it
GENERATION_ATTEMPTS = 1000


_VECTOR_PAIRS = ((1, 1), (1, 0), (0, 1))  # child ranks of an elementwise binary giving a vector


@functools.cache
def _grammar(form_name: str) -> _Grammar:
    return _Grammar(get_form(form_name))


class _Grammar:
    """What may appear where in one form: operators by the rank they produce, and terminals."""

    def __init__(self, form: Form):
        self.form = form
        self.vector = form.vector
        self.required = form.required.name
        self.arity = {op.name: op.arity for op in form.operators}
        unary = [op.name for op in form.operators if op.arity == 1 and op.name != "softmax"]
        binary = [op.name for op in form.operators if op.arity == 2 and op.name != "dot"]
        self.unary_by_rank = {0: tuple(unary), 1: tuple(unary + ["softmax"] if form.vector else unary)}
        self.binary_by_rank = {0: tuple(binary + ["dot"] if form.vector else binary), 1: tuple(binary)}
        self.ops_by_rank = {r: self.unary_by_rank[r] + self.binary_by_rank[r] for r in (0, 1)}
        inputs, constants = form.input_names, tuple(CONSTANTS)
        self.inputs = frozenset(inputs)
        self.terminals_by_rank = {0: constants, 1: inputs} if form.vector else {0: inputs + constants}
        self.terminal_ratio = (len(inputs) + len(constants)) / (
            len(inputs) + len(constants) + len(form.operators)
        )

    def terminal(self, rng: random.Random, rank: int) -> Tree:
        return rng.choice(self.terminals_by_rank[rank])

    def node_rank(self, name: str, child_ranks: tuple[int, ...]) -> int | None:
        """The rank of ``name`` applied to children of these ranks; None if not allowed."""
        if name == "softmax":
            return 1 if child_ranks[0] == 1 else None
        if name == "dot":
            return 0 if max(child_ranks) == 1 else None
        return max(child_ranks)

    def grow(self, rand: Callable[[], float], depth: int, height: int, min_depth: int, full: bool,
             rank: int) -> Tree:
        """A random subtree of ``rank`` rooted at ``depth``, by DEAP's genFull/genGrow rule.

        ``rand`` is a bound ``Random.random``; ``seq[int(rand() * len(seq))]`` is a uniform
        choice at a fraction of the cost of ``Random.choice`` (this is the hot loop).
        """
        if depth >= height or (not full and depth >= min_depth and rand() < self.terminal_ratio):
            terminals = self.terminals_by_rank[rank]
            return terminals[int(rand() * len(terminals))]
        ops = self.ops_by_rank[rank]
        name = ops[int(rand() * len(ops))]
        depth += 1
        if self.arity[name] == 1:
            child_rank = 1 if name == "softmax" else rank
            return (name, self.grow(rand, depth, height, min_depth, full, child_rank))
        if name == "dot":
            left = right = 1
        elif rank:
            left, right = _VECTOR_PAIRS[int(rand() * 3)]
        else:
            left = right = 0
        return (name, self.grow(rand, depth, height, min_depth, full, left),
                self.grow(rand, depth, height, min_depth, full, right))

    def rank(self, tree: Tree) -> int | None:
        """The rank of ``tree``, or None if it is not well-formed in this form (fast tree_problem)."""
        if type(tree) is tuple:
            arity = self.arity.get(tree[0])
            if arity is None or len(tree) != arity + 1:
                return None
            if arity == 1:
                child = self.rank(tree[1])
                if child is None:
                    return None
                return self.node_rank(tree[0], (child,)) if self.vector else 0
            left, right = self.rank(tree[1]), self.rank(tree[2])
            if left is None or right is None:
                return None
            return self.node_rank(tree[0], (left, right)) if self.vector else 0
        if type(tree) is str:
            return (1 if self.vector else 0) if tree in self.inputs else None
        if type(tree) is int or type(tree) is Fraction:
            return 0 if tree >= 0 else None
        return None

    def is_valid(self, tree: Tree) -> bool:
        """``tree_problem(tree, form) is None``, computed without building messages."""
        return _contains(tree, self.required) and self.rank(tree) == 0

    def annotate(self, tree: Tree) -> list[tuple[Path, Tree, int]]:
        """Every (path, subtree, rank) of a valid tree, in pre-order."""
        out: list = []
        self._annotate(tree, (), out)
        return out

    def _annotate(self, tree: Tree, path: Path, out: list) -> int:
        if not isinstance(tree, tuple):
            rank = 1 if self.vector and isinstance(tree, str) else 0
            out.append((path, tree, rank))
            return rank
        slot = len(out)
        out.append(None)
        ranks = tuple(self._annotate(child, (*path, k), out) for k, child in enumerate(tree[1:]))
        rank = self.node_rank(tree[0], ranks) if self.vector else 0
        out[slot] = (path, tree, rank)
        return rank


def _contains(tree: Tree, name: str) -> bool:
    if type(tree) is tuple:
        return _contains(tree[1], name) or (len(tree) == 3 and _contains(tree[2], name))
    return tree == name


def is_valid_tree(tree: Tree, form: Form | str) -> bool:
    """True exactly when ``tree_problem(tree, form) is None``, at a fraction of its cost."""
    return _grammar(get_form(form).name).is_valid(tree)


def random_tree(rng: random.Random, form: Form | str, *, min_depth: int = 1, max_depth: int = 5,
                method: str | None = None) -> Tree:
    """A random valid tree by ramped half-and-half (DEAP's genHalfAndHalf), depth in [min, max].

    ``method`` is "full", "grow" or None (each with probability 1/2, drawn per tree).
    """
    grammar = _grammar(get_form(form).name)
    if method not in (None, "full", "grow"):
        raise ValueError(f"method must be 'full', 'grow' or None, not {method!r}")
    rand = rng.random
    for _ in range(GENERATION_ATTEMPTS):
        full = rand() >= 0.5 if method is None else method == "full"
        height = min_depth + int(rand() * (max_depth - min_depth + 1))
        tree = grammar.grow(rand, 0, height, min_depth, full, 0)
        if grammar.is_valid(tree):
            return tree
    raise RuntimeError(f"no valid {grammar.form.name} tree of depth {min_depth}..{max_depth} "
                       f"in {GENERATION_ATTEMPTS} attempts; allow deeper trees")


def _retry(rng: random.Random, tree: Tree, form: Form, attempt: Callable[[], Tree | None]) -> Tree:
    for _ in range(ATTEMPTS):
        new = attempt()
        if new is not None and new != tree and is_valid_tree(new, form):
            return new
    return tree


def insert_node(rng: random.Random, tree: Tree, form: Form | str) -> Tree:
    """Wrap a random subtree in a random operator (a binary one gets a new small sibling)."""
    grammar = _grammar(get_form(form).name)
    nodes = grammar.annotate(tree)

    def attempt():
        path, subtree, rank = rng.choice(nodes)
        # binary_by_rank[1] holds the elementwise binaries: dot would change the rank
        name = rng.choice(grammar.unary_by_rank[rank] + grammar.binary_by_rank[1])
        if grammar.arity[name] == 1:
            return replace_at(tree, path, (name, subtree))
        sibling = grammar.grow(rng.random, 0, rng.randint(0, SUBTREE_DEPTH), 0, rng.random() < 0.5,
                               rng.choice((0, 1)) if rank else 0)
        pair = (subtree, sibling) if rng.random() < 0.5 else (sibling, subtree)
        return replace_at(tree, path, (name, *pair))

    return _retry(rng, tree, grammar.form, attempt)


def delete_node(rng: random.Random, tree: Tree, form: Form | str) -> Tree:
    """Replace a random operator node by one of its children of the same rank, or by a terminal."""
    grammar = _grammar(get_form(form).name)
    operators = [node for node in grammar.annotate(tree) if isinstance(node[1], tuple)]
    if not operators:
        return tree
    ranks = {path: rank for path, _, rank in grammar.annotate(tree)}

    def attempt():
        path, subtree, rank = rng.choice(operators)
        children = [child for k, child in enumerate(subtree[1:]) if ranks[(*path, k)] == rank]
        choice = rng.randrange(len(children) + 1)
        new = children[choice] if choice < len(children) else grammar.terminal(rng, rank)
        return replace_at(tree, path, new)

    return _retry(rng, tree, grammar.form, attempt)


def replace_subtree(rng: random.Random, tree: Tree, form: Form | str) -> Tree:
    """Replace a random subtree by a new random subtree of the same rank, depth ≤ SUBTREE_DEPTH."""
    grammar = _grammar(get_form(form).name)
    nodes = grammar.annotate(tree)

    def attempt():
        path, _, rank = rng.choice(nodes)
        new = grammar.grow(rng.random, 0, rng.randint(0, SUBTREE_DEPTH), 0, rng.random() < 0.5, rank)
        return replace_at(tree, path, new)

    return _retry(rng, tree, grammar.form, attempt)


def swap_operator(rng: random.Random, tree: Tree, form: Form | str) -> Tree:
    """Replace a random operator by another of the same arity and result rank; shape is kept."""
    grammar = _grammar(get_form(form).name)
    nodes = grammar.annotate(tree)
    ranks = {path: rank for path, _, rank in nodes}
    operators = [node for node in nodes if isinstance(node[1], tuple)]
    if not operators:
        return tree

    def attempt():
        path, subtree, rank = rng.choice(operators)
        child_ranks = tuple(ranks[(*path, k)] for k in range(len(subtree) - 1))
        options = [name for name, arity in grammar.arity.items()
                   if arity == len(child_ranks) and name != subtree[0]
                   and grammar.node_rank(name, child_ranks) == rank]
        return replace_at(tree, path, (rng.choice(options), *subtree[1:])) if options else None

    return _retry(rng, tree, grammar.form, attempt)


def _is_constant(tree: Tree) -> bool:
    return isinstance(tree, int | Fraction) and not isinstance(tree, bool)


def change_constant(rng: random.Random, tree: Tree, form: Form | str) -> Tree:
    """Replace a random constant by another of 1, 2, 3; another mutation if there is none."""
    form = get_form(form)
    constants = [(path, node) for path, node in iter_paths(tree) if _is_constant(node)]
    if not constants:
        for mutation in rng.sample(_STRUCTURAL, len(_STRUCTURAL)):
            new = mutation(rng, tree, form)
            if new != tree:
                return new
        return tree

    def attempt():
        path, value = rng.choice(constants)
        return replace_at(tree, path, rng.choice([c for c in CONSTANTS if c != value]))

    return _retry(rng, tree, form, attempt)


_STRUCTURAL = (insert_node, delete_node, replace_subtree, swap_operator)
MUTATIONS: dict[str, Callable[..., Tree]] = {
    fn.__name__: fn for fn in (*_STRUCTURAL, change_constant)
}


def _within(tree: Tree, max_size: int, max_depth: int) -> bool:
    return tree_size(tree) <= max_size and tree_depth(tree) <= max_depth


def mutate(rng: random.Random, tree: Tree, form: Form | str, *, max_size: int = MAX_SIZE,
           max_depth: int = MAX_DEPTH, weights: dict[str, float] | None = None) -> Tree:
    """A valid mutant of ``tree`` within the limits, by one of ``MUTATIONS`` (uniform by default).

    ``weights`` maps mutation names to relative probabilities. If no mutant is found in a
    bounded number of tries, a fresh random tree is returned.
    """
    form = get_form(form)
    names = list(MUTATIONS) if weights is None else list(weights)
    chances = None if weights is None else [weights[name] for name in names]
    for _ in range(ATTEMPTS):
        name = rng.choices(names, chances)[0]
        new = MUTATIONS[name](rng, tree, form)
        if new != tree and _within(new, max_size, max_depth):
            return new
    return _random_within(rng, form, max_size, max_depth)


def _random_within(rng: random.Random, form: Form, max_size: int, max_depth: int) -> Tree:
    for _ in range(GENERATION_ATTEMPTS):
        tree = random_tree(rng, form, max_depth=max(1, min(5, max_depth)))
        if _within(tree, max_size, max_depth):
            return tree
    raise ValueError(f"no random {form.name} tree fits in size {max_size} and depth {max_depth}")


def crossover(rng: random.Random, a: Tree, b: Tree, form: Form | str, *, max_size: int = MAX_SIZE,
              max_depth: int = MAX_DEPTH) -> Tree:
    """A random subtree of ``a`` (not its root) replaced by a random subtree of ``b`` of the same rank.

    Falls back to ``mutate(a)`` when no valid, new child within the limits is found.
    """
    grammar = _grammar(get_form(form).name)
    targets = grammar.annotate(a)[1:] or grammar.annotate(a)
    donors: dict[int, list[Tree]] = {0: [], 1: []}
    for _, subtree, rank in grammar.annotate(b):
        donors[rank].append(subtree)
    for _ in range(ATTEMPTS):
        path, _, rank = rng.choice(targets)
        if not donors[rank]:
            continue
        child = replace_at(a, path, rng.choice(donors[rank]))
        if child != a and _within(child, max_size, max_depth) and grammar.is_valid(child):
            return child
    return mutate(rng, a, grammar.form, max_size=max_size, max_depth=max_depth)


CANDIDATE_ATTEMPTS = 50


def random_candidate(rng: random.Random, form: Form | str, *, min_depth: int = 1,
                     max_depth: int = 5) -> Candidate:
    """A random Candidate (random_tree, retried while SymPy finds it invalid, e.g. x cancels)."""
    form = get_form(form)
    for _ in range(CANDIDATE_ATTEMPTS):
        try:
            return Candidate.from_tree(random_tree(rng, form, min_depth=min_depth, max_depth=max_depth), form)
        except InvalidCandidate:
            continue
    raise RuntimeError(f"no valid {form.name} candidate in {CANDIDATE_ATTEMPTS} attempts")


def mutate_candidate(rng: random.Random, candidate: Candidate, *, max_size: int = MAX_SIZE,
                     max_depth: int = MAX_DEPTH) -> Candidate:
    """A new valid Candidate mutated from ``candidate.tree``; a random one if none is found."""
    form = candidate.form
    for _ in range(CANDIDATE_ATTEMPTS):
        tree = mutate(rng, candidate.tree, form, max_size=max_size, max_depth=max_depth)
        try:
            child = Candidate.from_tree(tree, form)
        except InvalidCandidate:
            continue
        if child != candidate:
            return child
    return random_candidate(rng, form)


def crossover_candidates(rng: random.Random, a: Candidate, b: Candidate, *, max_size: int = MAX_SIZE,
                         max_depth: int = MAX_DEPTH) -> Candidate:
    """A new valid Candidate crossed from two of the same form; a mutant of ``a`` if none is found."""
    if a.form != b.form:
        raise ValueError(f"cannot cross a {a.form.name} candidate with a {b.form.name} one")
    for _ in range(CANDIDATE_ATTEMPTS):
        tree = crossover(rng, a.tree, b.tree, a.form, max_size=max_size, max_depth=max_depth)
        try:
            child = Candidate.from_tree(tree, a.form)
        except InvalidCandidate:
            continue
        if child != a and child != b:
            return child
    return mutate_candidate(rng, a, max_size=max_size, max_depth=max_depth)
