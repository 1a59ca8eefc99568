import random
from fractions import Fraction

import pytest

from symbolic.candidate import Candidate
from symbolic.forms import FORMS
from symbolic.operators import CONSTANTS, OPERATORS
from symbolic.tree import iter_paths, replace_at, tree_depth, tree_problem, tree_rank, tree_size
from symbolic.variation import (
    MUTATIONS,
    change_constant,
    crossover,
    crossover_candidates,
    delete_node,
    insert_node,
    is_valid_tree,
    mutate,
    mutate_candidate,
    random_candidate,
    random_tree,
    replace_subtree,
    swap_operator,
)

FORM_NAMES = list(FORMS)


def population(form, count=300, seed=0):
    rng = random.Random(seed)
    return [random_tree(rng, form) for _ in range(count)]


def shape(tree):
    """The tree with operator names blanked out: what swap_operator must keep."""
    if isinstance(tree, tuple):
        return (len(tree) - 1, *(shape(child) for child in tree[1:]))
    return tree


def assert_ranks_hold(tree, form):
    """Every softmax has a vector argument, every dot two vectors, and the root is per-sample."""
    assert tree_rank(tree, form) == 0
    for _, node in iter_paths(tree):
        if isinstance(node, tuple) and node[0] == "softmax":
            assert tree_rank(node[1], form) == 1
        if isinstance(node, tuple) and node[0] == "dot":
            assert tree_rank(node[1], form) == tree_rank(node[2], form) == 1


@pytest.mark.parametrize("form", FORM_NAMES)
def test_same_seed_same_trees(form):
    assert population(form, 100, seed=7) == population(form, 100, seed=7)
    assert population(form, 100, seed=7) != population(form, 100, seed=8)


@pytest.mark.parametrize("form", FORM_NAMES)
def test_random_trees_are_valid_and_within_depth(form):
    trees = population(form, 500)
    for tree in trees:
        assert tree_problem(tree, FORMS[form]) is None
        assert 1 <= tree_depth(tree) <= 5
        assert_ranks_hold(tree, FORMS[form])
    assert len(set(trees)) > 250


@pytest.mark.parametrize("method", ["full", "grow"])
def test_methods(method):
    rng = random.Random(3)
    trees = [random_tree(rng, "sigmoid", min_depth=2, max_depth=4, method=method) for _ in range(200)]
    depths = {tree_depth(tree) for tree in trees}
    assert depths <= {2, 3, 4}
    if method == "full":  # every leaf at the full height: unary chains and balanced binaries
        for tree in trees:
            assert {len(path) for path, node in iter_paths(tree) if not isinstance(node, tuple)} == {tree_depth(tree)}


def test_softmax_form_uses_its_vector_operators():
    names = {node[0] for tree in population("softmax", 500) for _, node in iter_paths(tree) if isinstance(node, tuple)}
    assert {"dot", "softmax"} <= names


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="method"):
        random_tree(random.Random(0), "sigmoid", method="half")


@pytest.mark.parametrize("form", FORM_NAMES)
def test_is_valid_tree_agrees_with_tree_problem(form):
    rng = random.Random(5)
    trees = population(form, 200)
    broken = [("sub", "x"), ("softmax", "x"), ("dot", "x", "y"), ("erf_s", "i"), ("neg", -1), ("add", "x", 2.5),
              ("add", "x", True), ("log", "q"), ("nope", "x"), "x", "i", ("neg", 1), ("add", "x", Fraction(1, 3))]
    mutants = [replace_subtree(rng, tree, form) for tree in trees]
    foreign = [random_tree(rng, other) for other in FORM_NAMES for _ in range(50)]
    for tree in trees + broken + mutants + foreign:
        assert is_valid_tree(tree, form) == (tree_problem(tree, FORMS[form]) is None), tree


@pytest.mark.parametrize("form", FORM_NAMES)
@pytest.mark.parametrize("kind", list(MUTATIONS))
def test_each_mutation_gives_new_valid_trees(form, kind):
    rng = random.Random(11)
    unchanged = 0
    for tree in population(form, 150):
        child = MUTATIONS[kind](rng, tree, form)
        assert tree_problem(child, FORMS[form]) is None
        assert_ranks_hold(child, FORMS[form])
        lone_dot = tree[0] == "dot" and tree_size(tree) == 3  # nothing to delete or swap
        unchanged += child == tree and not (lone_dot and kind in ("delete_node", "swap_operator"))
    assert unchanged <= 3  # only when retries run out


def test_insert_grows_and_delete_shrinks():
    rng = random.Random(2)
    for tree in population("sigmoid", 200):
        grown = insert_node(rng, tree, "sigmoid")
        assert tree_size(grown) > tree_size(tree)
        shrunk = delete_node(rng, tree, "sigmoid")
        assert shrunk == tree or tree_size(shrunk) < tree_size(tree)


def test_swap_keeps_shape_and_arity():
    rng = random.Random(4)
    changed = 0
    for form in FORM_NAMES:
        for tree in population(form, 150):
            swapped = swap_operator(rng, tree, form)
            assert shape(swapped) == shape(tree)
            changed += swapped != tree
            for (_, old), (_, new) in zip(iter_paths(tree), iter_paths(swapped), strict=True):
                if isinstance(old, tuple):
                    assert OPERATORS[old[0]].arity == OPERATORS[new[0]].arity
    assert changed > 400


def test_change_constant_changes_exactly_one_constant():
    rng = random.Random(6)
    trees = [tree for tree in population("reg", 300) if any(isinstance(n, int) for _, n in iter_paths(tree))]
    assert len(trees) > 50
    for tree in trees:
        child = change_constant(rng, tree, "reg")
        diffs = [(a, b) for (_, a), (_, b) in zip(iter_paths(tree), iter_paths(child), strict=True) if a != b]
        leaf_diffs = [(a, b) for a, b in diffs if not isinstance(a, tuple)]
        assert len(leaf_diffs) == 1
        old, new = leaf_diffs[0]
        assert old in CONSTANTS and new in CONSTANTS and old != new


def test_change_constant_without_constants_falls_back():
    rng = random.Random(0)
    tree = ("neg", ("log", ("sigmoid", "x")))
    child = change_constant(rng, tree, "sigmoid")
    assert child != tree and tree_problem(child, FORMS["sigmoid"]) is None


def test_replace_subtree_bounds_new_depth():
    rng = random.Random(8)
    for tree in population("sigmoid", 200):
        child = replace_subtree(rng, tree, "sigmoid")
        assert tree_depth(child) <= tree_depth(tree) + 2


@pytest.mark.parametrize("form", FORM_NAMES)
def test_mutate_and_crossover_respect_limits(form):
    rng = random.Random(9)
    trees = population(form, 300)
    for a, b in zip(trees, reversed(trees), strict=True):
        child = mutate(rng, a, form, max_size=12, max_depth=6)
        assert child != a and tree_size(child) <= 12 and tree_depth(child) <= 6
        assert tree_problem(child, FORMS[form]) is None
        crossed = crossover(rng, a, b, form, max_size=12, max_depth=6)
        assert crossed != a and tree_size(crossed) <= 12 and tree_depth(crossed) <= 6
        assert tree_problem(crossed, FORMS[form]) is None
        assert_ranks_hold(crossed, FORMS[form])


def test_mutate_weights_pick_the_named_mutation():
    rng = random.Random(1)
    for tree in population("sigmoid", 100):
        assert tree_size(mutate(rng, tree, "sigmoid", weights={"insert_node": 1.0})) > tree_size(tree)


def test_crossover_takes_material_from_both_parents():
    rng = random.Random(12)
    a = ("add", ("sigmoid", "x"), ("mul", "y", "w"))
    b = ("neg", ("log", ("tanh", ("cos", "x"))))
    donors = {node for _, node in iter_paths(b)}
    for _ in range(50):
        child = crossover(rng, a, b, "sigmoid")
        assert child != a
        assert any(replace_at(a, path, node) == child for path, node in iter_paths(child) if node in donors)


def test_variation_is_reproducible():
    def run(seed):
        rng = random.Random(seed)
        trees = population("softmax", 50)
        return [mutate(rng, t, "softmax") for t in trees] + [crossover(rng, a, b, "softmax")
                                                            for a, b in zip(trees, trees[1:], strict=False)]
    assert run(3) == run(3)


@pytest.mark.parametrize("form", FORM_NAMES)
def test_candidate_level_variation(form):
    rng = random.Random(13)
    parents = [random_candidate(rng, form) for _ in range(8)]
    for parent in parents:
        assert isinstance(parent, Candidate) and parent.form is FORMS[form]
    for a, b in zip(parents, parents[1:], strict=False):
        child = mutate_candidate(rng, a)
        assert isinstance(child, Candidate) and child.form is FORMS[form] and child != a
        crossed = crossover_candidates(rng, a, b)
        assert isinstance(crossed, Candidate) and crossed.form is FORMS[form]
        assert crossed != a and crossed != b


def test_crossing_forms_is_an_error():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="cannot cross"):
        crossover_candidates(rng, random_candidate(rng, "sigmoid"), random_candidate(rng, "reg"))
