"""CPV screening throughput against the authors' stack, side by side, plus proof coverage.

Runs the reference (DEAP trees, NumPy primitives, sampled-point checks; ``deap_screen.py``)
in a subprocess and our pipeline on the same number of ``sigmoid``-form trees of the same
size distribution (ramped half-and-half, depth 1-5):

    generate -> check_trees (batched sampled CPV) -> Candidate.from_tree + dedup -> verify

and reports candidates/s of both and their ratio, the pass rate of each property, the
survivors that reach ``verify``, the time in proofs vs sampling, and the share of
``proved`` vs ``sampled`` per property over the zoo and over a seeded sample of survivors
of all three forms.

Usage: python benchmarks/cpv_throughput.py [--trees N] [--budget S] [--write]
(the reference needs ``pip install deap``; it is a benchmark-only tool).
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import machine_line, publish  # noqa: E402
from symbolic.candidate import Candidate  # noqa: E402
from symbolic.canonical import Deduplicator, InvalidCandidate  # noqa: E402
from symbolic.cpv.batch import check_trees  # noqa: E402
from symbolic.cpv.verify import verify  # noqa: E402
from symbolic.variation import random_tree  # noqa: E402
from symbolic.zoo import KNOWN_LOSSES  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference" / "deap_screen.py"
SECTION = "## CPV screening vs the authors' stack"


def run_reference(count: int) -> dict:
    """Run deap_screen.py in a subprocess; its candidates/s and pass count."""
    out = subprocess.run([sys.executable, str(REFERENCE), str(count)], capture_output=True, text=True, check=True)
    match = re.search(r"in ([\d.]+)s = (\d+) cand/s; passed (\d+)", out.stdout)
    return {"seconds": float(match.group(1)), "rate": float(match.group(2)), "passed": int(match.group(3)),
            "line": out.stdout.strip()}


def run_pipeline(count: int, budget: float, seed: int = 0) -> dict:
    """Our screening pipeline on ``count`` sigmoid trees; timings and counts."""
    rng = random.Random(seed)
    start = time.perf_counter()
    trees = [random_tree(rng, "sigmoid") for _ in range(count)]
    generated = time.perf_counter()
    checks = check_trees(trees, "sigmoid")
    checked = time.perf_counter()
    dedup, candidates = Deduplicator(), []
    for tree in checks.survivors():
        try:
            candidate = Candidate.from_tree(tree, "sigmoid")
        except InvalidCandidate:
            continue
        if dedup.duplicate_of(candidate) is None:
            candidates.append(candidate)
    built = time.perf_counter()
    verdicts = [verify(candidate, time_budget=budget) for candidate in candidates]
    done = time.perf_counter()
    no_proof = time.perf_counter()
    for candidate in candidates:
        verify(candidate, time_budget=0.0)
    no_proof = time.perf_counter() - no_proof
    return {"seconds": done - start, "rate": count / (done - start), "generate": generated - start,
            "check": checked - generated, "build": built - checked, "verify": done - built,
            "verify_without_proofs": no_proof, "checks": checks, "survivors": len(checks.survivors()),
            "distinct": len(candidates), "passed": sum(v.passed for v in verdicts), "verdicts": verdicts}


def coverage(verdicts) -> dict[str, collections.Counter]:
    """Per property, how many verdicts are proved / sampled / failed."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for verdict in verdicts:
        for result in verdict.properties:
            out[result.name][result.status] += 1
    return out


def survivor_sample(per_form: int, seed: int = 7):
    """Up to ``per_form`` distinct survivors of the batched check per form, from seeded generations."""
    out = []
    for form in ("sigmoid", "softmax", "reg"):
        rng, dedup, taken = random.Random(seed), Deduplicator(), []
        for _ in range(20):
            trees = [random_tree(rng, form) for _ in range(5000)]
            for tree in check_trees(trees, form).survivors():
                try:
                    candidate = Candidate.from_tree(tree, form)
                except InvalidCandidate:
                    continue
                if dedup.duplicate_of(candidate) is None:
                    taken.append(candidate)
            if len(taken) >= per_form:
                break
        out += taken[:per_form]
    return out


def format_coverage(table) -> list[str]:
    lines = ["| property | proved | sampled | failed |", "|---|---|---|---|"]
    for name, counts in table.items():
        total = sum(counts.values())
        cells = " | ".join(f"{counts[status]}/{total}" for status in ("proved", "sampled", "failed"))
        lines.append(f"| {name} | {cells} |")
    return lines


def report(count, budget, reference, ours, zoo, sample, machine) -> str:
    checks = ours["checks"]
    reached, lines = count, []
    ratio = ours["rate"] / reference["rate"]
    command = f"python benchmarks/cpv_throughput.py --trees {count} --budget {budget} --write"
    lines += [SECTION, "", f"Machine: {machine}. Command: `{command}`.", "",
              "| pipeline | trees | seconds | candidates/s | passed |", "|---|---|---|---|---|",
              f"| authors' stack (deap_screen.py) | {count} | {reference['seconds']:.2f} | {reference['rate']:.0f} | "
              f"{reference['passed']} |",
              f"| ours: generate + check_trees + build/dedup + verify | {count} | {ours['seconds']:.2f} | "
              f"{ours['rate']:.0f} | {ours['passed']} |", "",
              f"**Ratio: {ratio:.2f}x** the reference's throughput (a later generation of the same process; the "
              f"first generation, which also compiles JAX primitives for the float32 check, ran at "
              f"{ours['cold_rate']:.0f} candidates/s = {ours['cold_rate'] / reference['rate']:.2f}x).", "",
              f"Our time: generation {ours['generate']:.2f}s, batched sampled CPV {ours['check']:.2f}s, "
              f"SymPy construction + dedup {ours['build']:.2f}s, verify {ours['verify']:.2f}s "
              f"(of which proofs about {max(0.0, ours['verify'] - ours['verify_without_proofs']):.2f}s, "
              f"measured as verify minus verify with a zero proof budget; sampling in verify and the float32 "
              f"check about {ours['verify_without_proofs']:.2f}s). "
              f"{ours['survivors']} trees passed the batched check, {ours['distinct']} distinct candidates reached "
              "verify.", "", "Pass rate of each property (batched check; a property is evaluated on the trees "
              "that passed the ones before it):", "", "| property | evaluated | passed | rate |", "|---|---|---|---|"]
    failures = checks.failure_counts()
    for name in checks.properties:
        failed = failures.get(name, 0)
        rate = (reached - failed) / reached if reached else 0.0
        lines.append(f"| {name} | {reached} | {reached - failed} | {rate:.4%} |")
        reached -= failed
    lines += ["", "Proof coverage over the zoo (9 known losses):", ""] + format_coverage(coverage(zoo))
    lines += ["", f"Proof coverage over a seeded sample of {len(sample)} distinct survivors of the batched check "
              "(sigmoid, softmax, reg):", ""] + format_coverage(coverage(sample))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=20000)
    parser.add_argument("--budget", type=float, default=0.1, help="proof time budget per candidate (s)")
    parser.add_argument("--sample", type=int, default=20, help="survivors per form for proof coverage")
    parser.add_argument("--write", action="store_true", help="replace our section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    verify(KNOWN_LOSSES["bce"].candidate)  # JAX start-up, outside the timed runs
    # the first generation of a process also compiles JAX primitives for the float32 check; a running
    # search pays that once, so the side-by-side run is a later generation (the cold one is reported too)
    cold = run_pipeline(args.trees, args.budget, seed=99)
    reference = run_reference(args.trees)
    ours = run_pipeline(args.trees, args.budget)
    ours["cold_rate"] = cold["rate"]
    zoo = [verify(loss.candidate, time_budget=1.0) for loss in KNOWN_LOSSES.values()]
    sample = [verify(candidate, time_budget=1.0) for candidate in survivor_sample(args.sample)]
    text = report(args.trees, args.budget, reference, ours, zoo, sample, machine)
    print(reference["line"])
    publish(text, args.write)


if __name__ == "__main__":
    main()
