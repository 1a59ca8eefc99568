"""The cheap first filter: batched numeric evaluation and screening of light trees.

``screen_trees`` says, per tree, whether it is well-formed for its form, finite on the
form's probe inputs, and *depends on the main input numerically*: its values change
somewhere on the probe when the main input moves (x → x/2 + 1; the area i → i/2, which keeps
i ≤ u ≤ e). It also gives each tree its functional fingerprint (``canonical.fingerprint_rows``
of its probe values, as ``Candidate.fingerprint``), so functional duplicates are dropped
before any SymPy is built.
``screen`` generates, deduplicates and screens a random population and counts what each
step removed.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping, Sequence

import numpy as np

from symbolic.canonical import fingerprint_rows
from symbolic.forms import Form, get_form, probe_inputs
from symbolic.numeric import evaluate_trees
from symbolic.tree import Tree, tree_problem
from symbolic.variation import is_valid_tree, random_tree

CHANGE_RTOL, CHANGE_ATOL = 1e-9, 1e-12  # a smaller change of value is round-off, not dependence
CHUNK = 20_000  # trees per memoized batch in ``screen``: bounds the memory of the memo


@functools.cache
def _probe_pair(form_name: str) -> dict[str, np.ndarray]:
    """The probe inputs followed, along the sample axis, by a copy with the main input moved."""
    form = get_form(form_name)
    pair = _input_pair(form, probe_inputs(form_name))
    for array in pair.values():
        array.setflags(write=False)
    return pair


@dataclasses.dataclass(frozen=True)
class ScreenResult:
    """Per-tree verdicts of the numeric screen; rows follow ``trees``."""

    trees: list[Tree]
    problems: list[str | None]  # the structural problem (``tree_problem``) or None
    values: np.ndarray  # [T, N] values on the probe inputs; NaN rows for malformed trees
    finite: np.ndarray  # bool [T]: every probe value finite
    depends_on_main: np.ndarray  # bool [T]: values change when the main input moves
    fingerprints: list[str | None]  # fingerprint_rows of the probe values; None if malformed

    @property
    def valid(self) -> np.ndarray:
        """bool [T]: the tree is a well-formed loss of the form."""
        return np.array([problem is None for problem in self.problems], dtype=bool)

    @property
    def passed(self) -> np.ndarray:
        """bool [T]: well-formed, finite and dependent on the main input."""
        return self.valid & self.finite & self.depends_on_main

    def reasons(self) -> list[str | None]:
        """Why each tree fails the screen (the first failed check), or None if it passes."""
        out = []
        for problem, finite, depends in zip(self.problems, self.finite, self.depends_on_main, strict=True):
            if problem is not None:
                out.append(problem)
            elif not finite:
                out.append("non-finite values on the probe inputs")
            elif not depends:
                out.append("constant in the main input on the probe inputs")
            else:
                out.append(None)
        return out


def screen_trees(trees: Sequence[Tree], form: Form | str,
                 inputs: Mapping[str, np.ndarray] | None = None) -> ScreenResult:
    """Check structure, finiteness and dependence on the main input; fingerprint each tree.

    ``inputs`` replaces the form's probe inputs (the main input is then moved the same way).
    """
    form = get_form(form)
    trees = list(trees)
    pair = _probe_pair(form.name) if inputs is None else _input_pair(form, inputs)
    problems = [None if is_valid_tree(tree, form) else tree_problem(tree, form) for tree in trees]
    valid_rows = [row for row, problem in enumerate(problems) if problem is None]
    both = evaluate_trees([trees[row] for row in valid_rows], pair, form)
    half = both.shape[1] // 2
    probe, moved = both[:, :half], both[:, half:]
    finite = np.isfinite(probe).all(axis=1)
    changed = ~np.isclose(probe, moved, rtol=CHANGE_RTOL, atol=CHANGE_ATOL)
    depends = changed.reshape(len(valid_rows), -1).any(axis=1)
    values = np.full((len(trees), *probe.shape[1:]), np.nan)
    values[valid_rows] = probe
    fingerprints: list[str | None] = [None] * len(trees)
    for row, fingerprint in zip(valid_rows, fingerprint_rows(probe), strict=True):
        fingerprints[row] = fingerprint
    return ScreenResult(trees, problems, values, _scatter(finite, valid_rows, len(trees)),
                        _scatter(depends, valid_rows, len(trees)), fingerprints)


def _input_pair(form: Form, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs followed, along the sample axis, by a copy with the main input moved."""
    arrays = np.broadcast_arrays(*(np.asarray(inputs[name], dtype=np.float64) for name in form.input_names))
    probe = dict(zip(form.input_names, arrays, strict=True))
    main = form.required.name
    moved = dict(probe)
    moved[main] = probe[main] / 2 if form.required.is_nonnegative else probe[main] / 2 + 1
    return {name: np.concatenate([probe[name], moved[name]]) for name in form.input_names}


def _scatter(flags: np.ndarray, rows: list[int], size: int) -> np.ndarray:
    out = np.zeros(size, dtype=bool)
    out[rows] = flags
    return out


@dataclasses.dataclass(frozen=True)
class ScreenCounts:
    """How many trees each step of ``screen`` removed; the removals and survivors add up."""

    generated: int
    structural_duplicates: int  # identical tuples
    invalid: int  # malformed (never, for generated trees)
    non_finite: int
    constant_in_main: int
    fingerprint_duplicates: int  # same probe values as an earlier survivor
    survivors: int

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Screened:
    """The outcome of ``screen``: surviving trees, their fingerprints and probe values, counts."""

    survivors: list[Tree]
    fingerprints: list[str]
    values: np.ndarray  # [S, N] probe values of the survivors
    counts: ScreenCounts


def screen(rng: random.Random, form: Form | str, count: int, *, min_depth: int = 1, max_depth: int = 5,
           seen: set[str] | None = None) -> Screened:
    """Generate ``count`` random trees and keep the distinct, finite ones that depend on x.

    ``seen`` holds fingerprints admitted earlier (e.g. in previous generations); trees with
    those values count as fingerprint duplicates, and the survivors' fingerprints are added.
    """
    form = get_form(form)
    seen = set() if seen is None else seen
    trees = [random_tree(rng, form, min_depth=min_depth, max_depth=max_depth) for _ in range(count)]
    unique = list(dict.fromkeys(trees))
    survivors, fingerprints, values = [], [], []
    invalid = non_finite = constant = duplicates = 0
    for start in range(0, len(unique), CHUNK):
        result = screen_trees(unique[start : start + CHUNK], form)
        invalid += sum(problem is not None for problem in result.problems)
        non_finite += int((result.valid & ~result.finite).sum())
        constant += int((result.valid & result.finite & ~result.depends_on_main).sum())
        for row in np.flatnonzero(result.passed):
            fingerprint = result.fingerprints[row]
            if fingerprint in seen:
                duplicates += 1
                continue
            seen.add(fingerprint)
            survivors.append(result.trees[row])
            fingerprints.append(fingerprint)
            values.append(result.values[row])
    counts = ScreenCounts(count, count - len(unique), invalid, non_finite, constant, duplicates, len(survivors))
    probe_size = len(_probe_pair(form.name)[form.required.name]) // 2
    return Screened(survivors, fingerprints, np.array(values).reshape(len(values), probe_size), counts)
