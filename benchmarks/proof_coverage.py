"""How much of CPV is proved: on the known losses and on a seeded sample of survivors of the batched check.

For the zoo and for ``--per-form`` distinct survivors of ``check_trees`` per form (drawn
from seeded random generations, deduplicated by canonical key), ``verify`` with
``--budget`` seconds of proofs (the zoo: ``--zoo-budget``, by default verify's own);
reported: per form and property how many verdicts are proved, sampled or failed, which
argument decided the proofs (and how many hold for all real logits), the median proof time
per candidate (verify minus verify with a zero proof budget), and — given the verdicts of
an earlier revision — every candidate whose verdict changed between passed and failed.

    python -m benchmarks.proof_coverage [--per-form 200] [--budget 1.0] [--zoo-budget S] [--baseline OLD.json] [--write]

The baseline is made by this script running on the earlier revision's package, from the
sample this one writes: ``python -m benchmarks.proof_coverage --sample-out SAMPLE.json
--sample-only``, then ``PYTHONPATH=OLD_CHECKOUT python benchmarks/proof_coverage.py
--verdicts-of SAMPLE.json --verdicts-out OLD.json`` (that mode needs only ``Candidate.parse``
and ``symbolic.cpv.verify.verify``, which both revisions have).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import time
from pathlib import Path

from tqdm import tqdm

SECTION = "## CPV proof coverage"
FORMS = ("sigmoid", "softmax", "reg")
TARGETS = ("monotonicity", "convergence", "distance_consistency")  # the ≥ 90% target
ARGUMENTS = {  # a phrase of a proof's argument: its name in the table
    "SymPy assumptions": "SymPy assumptions", "interval branch and bound": "interval branch and bound",
    "rational sign analysis": "rational sign analysis", "leading-term analysis": "leading-term analysis",
    "limit by continuity": "limit by continuity", "SymPy limit": "SymPy limit",
    "interval bound |dL": "interval bound on the end slope (x = ±100)", "Topkis": "Topkis",
    "affine in w": "affine in w (decided at w = 0 and 1)", "does not depend on w": "does not depend on w",
    "three directions": "three directions", "path family": "path family",
    "monotone differences": "monotone differences (a difference of one monotone function: its arguments' order)"}


def survivor_sample(per_form: int, seed: int = 7) -> list[tuple[str, object]]:
    """``per_form`` distinct survivors of the batched check per form, as (form, Candidate)."""
    from symbolic.candidate import Candidate
    from symbolic.canonical import InvalidCandidate
    from symbolic.cpv import check_trees
    from symbolic.funnel import Funnel
    from symbolic.variation import random_tree

    out = []
    for form in FORMS:
        rng, dedup, taken = random.Random(seed), Funnel(form, cpv=False), []
        with tqdm(total=per_form, desc=f"sampling {form} survivors", leave=False) as bar:
            while len(taken) < per_form:
                for tree in check_trees([random_tree(rng, form) for _ in range(5000)], form).survivors():
                    try:
                        candidate = Candidate.from_tree(tree, form)
                    except InvalidCandidate:
                        continue
                    if next(dedup.sift([(candidate, "random")])).passed and len(taken) < per_form:
                        taken.append(candidate)
                        bar.update()
        out += [(form, candidate) for candidate in taken]
    return out


def verdicts_of(formulas: list[dict], budget: float) -> dict[str, dict]:
    """Verdict summaries of (form, prefix) formulas with the ``symbolic`` on the path: {prefix: summary}."""
    from symbolic.candidate import Candidate
    from symbolic.cpv.verify import verify

    out = {}
    for item in tqdm(formulas, desc="verifying", leave=False):
        verdict = verify(Candidate.parse(item["prefix"], item["form"]), time_budget=budget)
        out[item["prefix"]] = {"passed": verdict.passed, "failed": {p.name: p.detail for p in verdict.properties
                                                                    if p.required and p.status == "failed"}}
    return out


def measure(candidates, budget: float) -> list[dict]:
    """Verdicts with proofs and the proof time of each candidate (verify minus verify without proofs)."""
    from symbolic.cpv import verify

    rows = []
    for name, candidate in tqdm(candidates, desc="verifying", leave=False):
        start = time.perf_counter()
        verdict = verify(candidate, time_budget=budget)
        with_proofs = time.perf_counter() - start
        start = time.perf_counter()
        verify(candidate, time_budget=0.0)
        rows.append({"name": name, "form": candidate.form.name, "prefix": candidate.prefix(),
                     "infix": candidate.infix(), "verdict": verdict,
                     "proof_seconds": max(0.0, with_proofs - (time.perf_counter() - start))})
    return rows


def coverage_table(rows) -> list[str]:
    counts: dict = collections.defaultdict(collections.Counter)
    for row in rows:
        for p in row["verdict"].properties:
            if p.required:
                counts[(row["form"], p.name)][p.status] += 1
    lines = ["| form | property | proved | sampled | failed | proved of all |", "|---|---|---|---|---|---|"]
    for (form, name), c in sorted(counts.items()):
        total = sum(c.values())
        lines.append(f"| {form} | {name} | {c['proved']} | {c['sampled']} | {c['failed']} | "
                     f"{c['proved'] / total:.1%} |")
    return lines


def arguments_table(rows) -> list[str]:
    """Which argument decided the proofs, and how many monotonicity proofs hold for all real logits."""
    kinds: collections.Counter = collections.Counter()
    for row in rows:
        for p in row["verdict"].properties:
            if p.status != "proved":
                continue
            for kind, label in ARGUMENTS.items():
                if kind in p.argument:
                    kinds[(p.name, label)] += 1
            if p.name == "monotonicity" and "all real" in p.domain and "<=" not in p.domain and ">=" not in p.domain:
                kinds[(p.name, "over all real logits")] += 1
    lines = ["| property | argument (a proof can use several) | proofs |", "|---|---|---|"]
    lines += [f"| {name} | {kind} | {n} |" for (name, kind), n in sorted(kinds.items())]
    return lines


def changes(rows, baseline: dict) -> list[str]:
    """Every candidate whose verdict moved between passed and failed, with both verdicts' failures."""
    lines = []
    for row in rows:
        old = baseline.get(row["prefix"])
        if old is None or old["passed"] == row["verdict"].passed:
            continue
        new_failed = {p.name: p.detail for p in row["verdict"].properties if p.required and p.status == "failed"}
        before = "; ".join(f"{k}: {v}" for k, v in old["failed"].items()) or "passed"
        after = "; ".join(f"{k}: {v}" for k, v in new_failed.items()) or "passed"
        lines.append(f"| {row['name']} | `{row['infix']}` | {before} | {after} |")
    if not lines:
        return ["No verdict moved between passed and failed."]
    return ["| candidate | formula | before | now |", "|---|---|---|---|", *lines]


def report(zoo, sample, budget, zoo_budget, per_form, baseline, machine, command) -> str:
    proof_times = [row["proof_seconds"] for row in sample]
    target = [p for row in sample for p in row["verdict"].properties if p.name in TARGETS]
    proved = sum(p.status == "proved" for p in target)
    lines = [SECTION, "", f"Machine: {machine}; after the run {os.getloadavg()[0]:.1f} (other processes share the "
             f"cores). Command: `{command}`.", "",
             f"The zoo with verify's default proof budget, {zoo_budget:g} s per candidate (what `autoloss zoo` and "
             "`autoloss verify` use). Every property of every zoo loss except finiteness (sampled by nature: it is "
             "about the float32 numerics) should be proved:", "", *coverage_table(zoo), "",
             f"A seeded sample of {per_form} distinct survivors of the batched check per form, proof budget "
             f"{budget:g} s per candidate: "
             f"**{proved}/{len(target)} = {proved / max(1, len(target)):.1%}** of the monotonicity, convergence and "
             f"distance-consistency verdicts proved; median proof time per candidate "
             f"**{statistics.median(proof_times):.3f} s** (mean {statistics.fmean(proof_times):.3f} s, slowest "
             f"{max(proof_times):.2f} s).", "", *coverage_table(sample), "",
             "The arguments behind the proofs (zoo and sample):", "", *arguments_table(zoo + sample), ""]
    if baseline is not None:
        lines += ["Verdicts that moved between passed and failed against the earlier revision (zoo and sample):", "",
                  *changes(zoo + sample, baseline), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-form", type=int, default=200, help="distinct survivors per form")
    parser.add_argument("--budget", type=float, default=1.0, help="proof time budget per sampled candidate (s)")
    parser.add_argument("--zoo-budget", type=float, default=None,
                        help="proof time budget per zoo loss (s; default: verify's default)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="verdicts of an earlier revision (--verdicts-out)")
    parser.add_argument("--sample-out", type=Path, help="write the sample's formulas here (for --verdicts-of)")
    parser.add_argument("--sample-only", action="store_true", help="with --sample-out: write the sample and stop")
    parser.add_argument("--verdicts-of", type=Path, help="only verify these formulas (written by --sample-out)")
    parser.add_argument("--verdicts-out", type=Path, help="where --verdicts-of writes the verdicts")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.verdicts_of is not None:
        result = verdicts_of(json.loads(args.verdicts_of.read_text()), args.budget)
        args.verdicts_out.write_text(json.dumps(result, indent=1))
        return

    from benchmarks.results_file import command_line, machine_line, publish
    from symbolic.cpv import DEFAULT_TIME_BUDGET
    from symbolic.zoo import KNOWN_LOSSES

    machine = machine_line()
    zoo = [(name, loss.candidate) for name, loss in KNOWN_LOSSES.items()]
    sample = [(f"{form} #{k % args.per_form}", c) for k, (form, c) in
              enumerate(survivor_sample(args.per_form, args.seed))]
    if args.sample_out is not None:
        args.sample_out.write_text(json.dumps([{"form": c.form.name, "prefix": c.prefix()} for _, c in zoo + sample]))
        if args.sample_only:
            return
    zoo_budget = DEFAULT_TIME_BUDGET if args.zoo_budget is None else args.zoo_budget
    zoo, sample = measure(zoo, zoo_budget), measure(sample, args.budget)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    publish(report(zoo, sample, args.budget, zoo_budget, args.per_form, baseline, machine,
                   command_line("benchmarks.proof_coverage")), args.write)


if __name__ == "__main__":
    main()
