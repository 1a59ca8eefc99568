"""Screening throughput: random light trees generated and screened numerically, then SymPy.

Measures, per form:
  * generation alone, and ``screen`` (generation + structural dedup + batched evaluation on
    the probe inputs + finiteness / dependence checks + numeric-fingerprint dedup), trees/s;
  * the duplicate rates: identical trees, and distinct trees with equal probe values;
  * SymPy for the survivors: ``Candidate.from_tree`` + ``.key`` + ``.fingerprint``, cand/s,
    in one process and in a pool of one worker per core;
and runs the authors' DEAP + NumPy reference screen (``benchmarks.authors_screen``) in a subprocess.
The reference compiles each tree and runs a sampled monotonicity/convergence check; our
convergence checks are not part of this measurement, so only generation + evaluation
throughput is compared with it.

    python -m benchmarks.screen_throughput [--trees N] [--survivors M] [--write]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import RESULTS, command_line, machine_line, publish  # noqa: E402
from symbolic.candidate import Candidate  # noqa: E402
from symbolic.forms import FORMS  # noqa: E402
from symbolic.screening import screen  # noqa: E402
from symbolic.tree import tree_size  # noqa: E402
from symbolic.variation import random_tree  # noqa: E402

SECTION = "## Screening throughput (symbolic)"


def build_candidate(item: tuple) -> str:
    """Key and fingerprint of one survivor, or why SymPy rejects it (runs in workers too)."""
    tree, form = item
    try:
        candidate = Candidate.from_tree(tree, form)
        return f"{candidate.key}:{candidate.fingerprint}"
    except ValueError as error:  # InvalidCandidate, or a constant SymPy cannot evaluate (see RESULTS.md)
        return f"!{type(error).__name__}"


def measure_form(form: str, trees: int, survivors: int, seed: int, pool) -> dict:
    rng = random.Random(seed)
    start = time.perf_counter()
    generated = [random_tree(rng, form) for _ in range(trees)]
    generation_rate = trees / (time.perf_counter() - start)
    start = time.perf_counter()
    outcome = screen(random.Random(seed), form, trees)
    screen_rate = trees / (time.perf_counter() - start)
    counts = outcome.counts
    items = [(tree, form) for tree in outcome.survivors[:survivors]]
    start = time.perf_counter()
    results = [build_candidate(item) for item in items]
    sympy_rate = len(items) / (time.perf_counter() - start)
    items_pool = [(tree, form) for tree in outcome.survivors[survivors : 2 * survivors]]
    start = time.perf_counter()
    list(pool.map(build_candidate, items_pool, chunksize=25))
    pool_rate = len(items_pool) / (time.perf_counter() - start)
    built = [r for r in results if not r.startswith("!")]
    return {
        "form": form,
        "mean_size": sum(map(tree_size, generated)) / trees,
        "generation": generation_rate,
        "screen": screen_rate,
        "structural_dup": counts.structural_duplicates / trees,
        "fingerprint_dup": counts.fingerprint_duplicates / trees,
        "non_finite": counts.non_finite / trees,
        "constant": counts.constant_in_main / trees,
        "survivors": counts.survivors / trees,
        "sympy": sympy_rate,
        "sympy_pool": pool_rate,
        "sympy_rejected": (len(results) - len(built)) / max(1, len(results)),
        "key_dup": 1 - len({r.split(":")[0] for r in built}) / max(1, len(built)),
        "fingerprint_dup_after_sympy": 1 - len({r.split(":")[1] for r in built}) / max(1, len(built)),
        "counts": counts,
    }


def deap_mean_size(trees: int) -> float | None:
    """Mean node count of the reference's genHalfAndHalf(1, 5) trees, if DEAP is installed."""
    try:
        from deap import gp

        from benchmarks.authors_screen import primitive_set
    except ImportError:
        return None
    pset = primitive_set()
    random.seed(0)
    sizes = [len(gp.genHalfAndHalf(pset, min_=1, max_=5)) for _ in range(trees)]
    return sum(sizes) / trees


def run_reference(trees: int) -> tuple[float | None, str]:
    """``benchmarks.authors_screen`` in a subprocess: its candidates/s and its line."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.authors_screen", str(trees)], capture_output=True,
                          text=True)
    line = (done.stdout.strip().splitlines() or [done.stderr.strip()[-200:]])[-1]
    match = re.search(r"= (\d+) cand/s", line)
    return (float(match.group(1)) if match else None), line


def format_table(rows: list[dict]) -> list[str]:
    lines = ["| form | mean size | generate trees/s | screen trees/s | identical trees | equal probe values"
             " | non-finite | constant in x | survivors | SymPy cand/s (1 proc) | SymPy cand/s (pool)"
             " | SymPy rejects | equal keys | equal fingerprints after SymPy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['form']} | {r['mean_size']:.2f} | {r['generation']:,.0f} | {r['screen']:,.0f}"
            f" | {r['structural_dup']:.1%} | {r['fingerprint_dup']:.1%} | {r['non_finite']:.1%}"
            f" | {r['constant']:.1%} | {r['survivors']:.1%} | {r['sympy']:,.0f} | {r['sympy_pool']:,.0f}"
            f" | {r['sympy_rejected']:.1%} | {r['key_dup']:.1%} | {r['fingerprint_dup_after_sympy']:.1%} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=20_000, help="random trees per form")
    parser.add_argument("--survivors", type=int, default=1_000, help="survivors built with SymPy per form")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()

    workers = os.cpu_count() or 1
    machine = machine_line()
    context = multiprocessing.get_context("spawn")  # no fork: JAX is imported, and threads with it
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(build_candidate, [(("neg", "x"), "sigmoid")] * workers * 4))  # start the workers
        rows = [measure_form(form, args.trees, args.survivors, args.seed, pool) for form in FORMS]
    reference_rate, reference_line = run_reference(args.trees)
    deap_size = deap_mean_size(args.trees)

    sigmoid = next(r for r in rows if r["form"] == "sigmoid")
    lines = [
        f"Machine: {machine}, {os.getloadavg()[0]:.1f} after (other processes share the cores).",
        "",
        f"Command: `{command_line('benchmarks.screen_throughput')}`",
        "",
        *format_table(rows),
        "",
        f"* Targets (sigmoid): screen ≥ 20,000 trees/s: **{sigmoid['screen']:,.0f}**; "
        f"SymPy ≥ 500 cand/s: **{sigmoid['sympy']:,.0f}** in one process, "
        f"**{sigmoid['sympy_pool']:,.0f}** with {workers} worker processes.",
        f"* Reference (authors' DEAP + NumPy, generate + compile + sampled check, same run): "
        f"{reference_line}",
        "* Ours, generate + screen (without the convergence checks; see the CPV section for the full pipeline): "
        f"{sigmoid['screen']:,.0f} trees/s"
        + (f" = {sigmoid['screen'] / reference_rate:.1f}× the reference's rate" if reference_rate else ""),
        f"* Tree sizes: ours {sigmoid['mean_size']:.2f} nodes (half-and-half depth 1–5, kept only if they use x)"
        + (f"; DEAP's genHalfAndHalf(1, 5) {deap_size:.2f} (no such condition)" if deap_size else ""),
        "* Rates are fractions of the generated trees; 'equal keys' / 'equal fingerprints after SymPy' are "
        "among the candidates SymPy accepted.",
    ]
    text = "\n".join([SECTION, "", *lines])
    publish(text, args.write)
    if args.write:
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
