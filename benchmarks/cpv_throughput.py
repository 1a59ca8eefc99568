"""CPV screening throughput against the authors' stack, side by side in one run.

Runs the reference (``benchmarks.authors_screen``: DEAP trees, their NumPy primitives,
sampled-point checks) in a subprocess, and our pipeline on the same number of
``sigmoid``-form trees of the same size distribution (ramped half-and-half, depth 1-5):

    generate -> check_trees (batched sampled CPV) -> Candidate.from_tree + dedup -> verify

and reports candidates/s of both and their ratio, the pass rate of each property, the
survivors that reach ``verify`` and the time in proofs vs sampling. The proof budget is the
search's (``--budget``, default 0.1 s). How much is proved: ``benchmarks.proof_coverage``.

Usage: python -m benchmarks.cpv_throughput [--trees N] [--budget S] [--write]
(the reference needs ``pip install -e ".[bench]"``, i.e. DEAP: a benchmark-only tool).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time

from benchmarks.results_file import command_line, machine_line, publish
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.cpv import check_trees, verify
from symbolic.funnel import Funnel
from symbolic.variation import random_tree
from symbolic.zoo import KNOWN_LOSSES

SECTION = "## CPV screening vs the authors' stack"


def run_reference(count: int) -> dict:
    """``benchmarks.authors_screen`` in a subprocess: its candidates/s and pass count."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.authors_screen", str(count)], capture_output=True,
                         text=True, check=True)
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
    dedup, candidates = Funnel("sigmoid", cpv=False), []  # the funnel's dedup layers (verify is timed below)
    for tree in checks.survivors():
        try:
            candidate = Candidate.from_tree(tree, "sigmoid")
        except InvalidCandidate:
            continue
        if next(dedup.sift([(candidate, "random")])).passed:
            candidates.append(candidate)
    built = time.perf_counter()
    verdicts = [verify(candidate, time_budget=budget) for candidate in candidates]
    done = time.perf_counter()
    no_proof = time.perf_counter()
    passed_sampled = sum(verify(candidate, time_budget=0.0).passed for candidate in candidates)
    no_proof = time.perf_counter() - no_proof
    return {"seconds": done - start, "rate": count / (done - start), "generate": generated - start,
            "check": checked - generated, "build": built - checked, "verify": done - built,
            "verify_without_proofs": no_proof, "passed_sampled": passed_sampled, "checks": checks,
            "survivors": len(checks.survivors()),
            "distinct": len(candidates), "passed": sum(v.passed for v in verdicts),
            "proved": sum(p.status == "proved" for v in verdicts for p in v.properties if p.required),
            "required": sum(p.required and p.name != "finiteness" for v in verdicts for p in v.properties)}


def report(count, budget, reference, ours, machine, load_after) -> str:
    checks = ours["checks"]
    reached, lines = count, []
    ratio = ours["rate"] / reference["rate"]
    # the authors' stack only samples; so does the search by default (verify_time_budget 0): like for like
    sampled_seconds = ours["seconds"] - ours["verify"] + ours["verify_without_proofs"]
    sampled_ratio = count / sampled_seconds / reference["rate"]
    lines += [SECTION, "", f"Machine: {machine}; after the run {load_after:.1f} (other processes share the cores, "
              "so both pipelines ran in the same minutes). "
              f"Command: `{command_line('benchmarks.cpv_throughput')}`.", "",
              "| pipeline | trees | seconds | candidates/s | passed |", "|---|---|---|---|---|",
              f"| authors' stack (benchmarks/authors_screen.py) | {count} | {reference['seconds']:.2f} | "
              f"{reference['rate']:.0f} | {reference['passed']} |",
              f"| ours, sampled checks only (verify without proofs, the search's default) | {count} | "
              f"{sampled_seconds:.2f} | {count / sampled_seconds:.0f} | {ours['passed_sampled']} |",
              f"| ours: generate + check_trees + build/dedup + verify with proofs ({budget:g}s each) | {count} | "
              f"{ours['seconds']:.2f} | {ours['rate']:.0f} | {ours['passed']} |", "",
              f"**Ratio: {sampled_ratio:.2f}x** the reference's throughput doing what it does (sampled checks), "
              f"**{ratio:.2f}x** with proofs besides (a later generation of the same process; the "
              f"first generation, which also compiles JAX primitives for the float32 check, ran at "
              f"{ours['cold_rate']:.0f} candidates/s = {ours['cold_rate'] / reference['rate']:.2f}x).",
              "", f"Our time: generation {ours['generate']:.2f}s, batched sampled CPV {ours['check']:.2f}s, "
              f"SymPy construction + dedup {ours['build']:.2f}s, verify {ours['verify']:.2f}s with a proof budget "
              f"of {budget:g}s per candidate (of which proofs about "
              f"{max(0.0, ours['verify'] - ours['verify_without_proofs']):.2f}s, measured as verify minus verify "
              f"with a zero proof budget; sampling in verify and the float32 check about "
              f"{ours['verify_without_proofs']:.2f}s). {ours['survivors']} trees passed the batched check, "
              f"{ours['distinct']} distinct candidates reached verify; {ours['proved']} of their "
              f"{ours['required']} monotonicity, convergence and IoU-awareness verdicts were proved.", "",
              "Pass rate of each property (batched check; a property is evaluated on the trees that passed the ones "
              "before it):", "", "| property | evaluated | passed | rate |", "|---|---|---|---|"]
    failures = checks.failure_counts()
    for name in checks.properties:
        failed = failures.get(name, 0)
        rate = (reached - failed) / reached if reached else 0.0
        lines.append(f"| {name} | {reached} | {reached - failed} | {rate:.4%} |")
        reached -= failed
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=20000)
    parser.add_argument("--budget", type=float, default=0.1, help="proof time budget per candidate (s)")
    parser.add_argument("--write", action="store_true", help="replace our section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    verify(KNOWN_LOSSES["bce"].candidate)  # JAX and the proof worker start, outside the timed runs
    # the first generation of a process also compiles JAX primitives for the float32 check; a running
    # search pays that once, so the side-by-side run is a later generation (the cold one is reported too)
    cold = run_pipeline(args.trees, args.budget, seed=99)
    reference = run_reference(args.trees)
    ours = run_pipeline(args.trees, args.budget)
    ours["cold_rate"] = cold["rate"]
    print(reference["line"])
    publish(report(args.trees, args.budget, reference, ours, machine, os.getloadavg()[0]), args.write)


if __name__ == "__main__":
    main()
