"""The filter funnel: raw trees → value dedup → sampled CPV → canonical dedup → gradient dedup → CPV.

One implementation serves the search (``autoloss.evolution`` breeds through it), the filter
benchmark and the notebooks. Its layers, cheapest first, in the order a tree meets them:

1. ``value``: one batched float64 evaluation per chunk gives every tree its functional fingerprint
   (``canonical.fingerprint_rows``); a tree whose values were seen before, in this chunk or
   earlier, leaves here and costs nothing more (it makes no event in a search, only a count);
2. ``sampled_cpv``: the batched sampled CPV (``cpv.check_trees``) on the fresh trees of the chunk;
3. ``invalid``: ``Candidate.from_tree`` refuses the tree (SymPy, bounded);
4. ``canonical``: the canonical key of a candidate admitted earlier;
5. ``gradient``: the gradient of a candidate admitted earlier up to a positive factor
   (``gradient_equivalence``; admitted here, before the proofs, so a CPV failure still counts);
6. ``cpv``: ``cpv.verify`` (the sampled check per candidate, the float32 check and proofs within
   ``verify_time_budget``);
7. ``passed``: the candidate's key is admitted.

Without CPV (the search's ``vanilla`` and ``random`` baselines) layers 2 and 6 are skipped.
What the funnel remembers is a :class:`DedupState`, a plain object with a JSON round trip that a
search keeps in its checkpoint, so a resumed search deduplicates against everything seen before.

Model optimization simulation (MOS) is not a layer here: it lives in ``simulate``, which
``symbolic`` never imports, and a search runs it as a stage of its own (batched, checkpointed:
``autoloss.evolution``) on the candidates that leave this funnel passed. The filter benchmark does
the same with ``Simulator.simulate_many``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate, fingerprint_rows
from symbolic.cpv import VerdictSummary, check_trees, verify
from symbolic.forms import get_form, probe_inputs
from symbolic.gradient_equivalence import GradientIndex
from symbolic.numeric import evaluate_trees
from symbolic.tree import Tree

LAYERS = ("value", "sampled_cpv", "invalid", "canonical", "gradient", "cpv", "passed")  # where a tree leaves
FIRST_CHUNK, LARGEST_CHUNK = 256, 8192  # raw trees per chunk of ``Funnel.fill``: doubled while too few pass


class DedupState:
    """What a funnel has admitted: value fingerprints, canonical keys of passed candidates, gradient identities.

    Mutable (the funnel adds to it); :meth:`copy` before a step that must leave the original as it was.
    ``to_json``/``from_json`` round-trip it exactly (insertion order kept).
    """

    def __init__(self, fingerprints: Iterable[str] = (), keys: Iterable[str] = (), gradients: Iterable = ()):
        self.fingerprints: dict[str, None] = dict.fromkeys(fingerprints)
        self.keys: dict[str, None] = dict.fromkeys(keys)
        self.gradients = GradientIndex(gradients)

    def __len__(self) -> int:
        return len(self.keys)

    def __eq__(self, other) -> bool:
        return isinstance(other, DedupState) and other.to_json() == self.to_json()

    def copy(self) -> DedupState:
        """An independent copy."""
        return DedupState(self.fingerprints, self.keys, self.gradients.admitted)

    def to_json(self) -> dict:
        """The admitted identities as JSON-ready lists."""
        return {"fingerprints": list(self.fingerprints), "keys": list(self.keys),
                "gradients": [list(entry) for entry in self.gradients.admitted]}

    @classmethod
    def from_json(cls, data: dict) -> DedupState:
        """The state written by :meth:`to_json`."""
        return cls(data["fingerprints"], data["keys"], data["gradients"])


@dataclasses.dataclass(frozen=True)
class Sifted:
    """Where one tree left the funnel (``layer``, one of ``LAYERS``) and what was learned on the way."""

    tree: Tree
    origin: str
    fingerprint: str
    layer: str
    reason: str | None = None  # why it was removed, in words (None when passed or a value duplicate)
    candidate: Candidate | None = None  # from layer "canonical" on
    cpv: VerdictSummary | None = None  # from layer "cpv" on, when CPV runs
    seconds: float = 0.0  # building, dedup and verifying the candidate

    @property
    def passed(self) -> bool:
        """True when the tree passed every layer."""
        return self.layer == "passed"

    @property
    def tally_key(self) -> str:
        """The rejection's name in a search's counts: ``cpv: monotonicity``, ``duplicate``, ``invalid``, ..."""
        if self.layer == "sampled_cpv":
            return "cpv: " + self.reason.removesuffix(" (sampled CPV)")
        if self.layer == "cpv":
            return "cpv: " + ",".join(self.cpv.failed)
        return {"canonical": "duplicate", "gradient": "gradient duplicate"}.get(self.layer, self.layer)


class Funnel:
    """The filter funnel of one form; ``dedup`` is its memory (a new one if not given)."""

    def __init__(self, form, *, cpv: bool = True, verify_time_budget: float = 0.0, dedup: DedupState | None = None):
        self.form = get_form(form)
        self.cpv = cpv
        self.verify_time_budget = verify_time_budget
        self.dedup = DedupState() if dedup is None else dedup

    def sift(self, items: Sequence[tuple[Tree | Candidate, str]]) -> Iterator[Sifted]:
        """Each (tree or candidate, origin) through the layers, lazily, in order; stop iterating to stop admitting."""
        trees = [item.tree if isinstance(item, Candidate) else item for item, _ in items]
        fingerprints = fingerprint_rows(evaluate_trees(trees, probe_inputs(self.form.name), self.form))
        fresh: dict[int, int] = {}  # index in items -> row of the sampled CPV check
        in_chunk: set[str] = set()
        for index, fingerprint in enumerate(fingerprints):
            if fingerprint not in self.dedup.fingerprints and fingerprint not in in_chunk:
                fresh[index] = len(fresh)
                in_chunk.add(fingerprint)
        checks = check_trees([trees[i] for i in fresh], self.form.name) if self.cpv else None
        for index, (item, origin) in enumerate(items):
            tree, fingerprint = trees[index], fingerprints[index]
            if index not in fresh:
                yield Sifted(tree, origin, fingerprint, "value")
                continue
            self.dedup.fingerprints[fingerprint] = None
            row = fresh[index]
            if checks is not None and not checks.passed[row]:
                yield Sifted(tree, origin, fingerprint, "sampled_cpv", f"{checks.first_failure[row]} (sampled CPV)")
                continue
            yield self._judge(item, tree, fingerprint, origin)

    def _judge(self, item, tree: Tree, fingerprint: str, origin: str) -> Sifted:
        """Build, deduplicate and verify one tree that passed the value layer and the sampled screen."""
        started = time.perf_counter()
        try:
            candidate = item if isinstance(item, Candidate) else Candidate.from_tree(tree, self.form)
        except InvalidCandidate as error:
            return Sifted(tree, origin, fingerprint, "invalid", f"invalid: {error.reason}")
        if candidate.key in self.dedup.keys:
            reason = f"duplicate: same canonical form as an earlier candidate ({candidate.key})"
            return Sifted(tree, origin, fingerprint, "canonical", reason, candidate)
        same_gradient = self.dedup.gradients.duplicate_of(candidate)
        if same_gradient is not None:
            return Sifted(tree, origin, fingerprint, "gradient", f"duplicate: {same_gradient}", candidate)
        summary = None
        if self.cpv:
            verdict = verify(candidate, time_budget=self.verify_time_budget)
            summary = VerdictSummary.from_dict(verdict.summary().to_dict())  # seconds rounded as in a checkpoint
            if not verdict.passed:
                return Sifted(tree, origin, fingerprint, "cpv", "CPV failed: " + ", ".join(verdict.failed_properties),
                              candidate, summary, time.perf_counter() - started)
        self.dedup.keys[candidate.key] = None
        return Sifted(tree, origin, fingerprint, "passed", None, candidate, summary, time.perf_counter() - started)

    def fill(self, draw: Callable[[int], list[tuple[Tree, str]]], *, target: int, limit: int,
             on_chunk: Callable[[], None] | None = None) -> Iterator[Sifted]:
        """Sift chunks of ``draw(n)`` (n raw trees with origins) until ``target`` passed or ``limit`` were drawn.

        Chunks start at ``FIRST_CHUNK`` trees and double (up to ``LARGEST_CHUNK``); ``on_chunk`` is
        called after each. Everything sifted is yielded, the last one being the ``target``-th pass.
        """
        passed = drawn = 0
        chunk = FIRST_CHUNK
        while passed < target and drawn < limit:
            for sifted in self.sift(draw(min(chunk, limit - drawn))):
                drawn += 1
                yield sifted
                passed += sifted.passed
                if passed == target:
                    break
            if on_chunk is not None:
                on_chunk()
            chunk = min(LARGEST_CHUNK, chunk * 2)
