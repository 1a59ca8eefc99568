"""Does the model optimization simulation predict the proxy task? Spearman's rho and top-k overlap.

Candidates (sigmoid form, FCOS classification branch): the zoo's, seeded mutations of them, and
seeded random candidates that pass CPV, deduplicated, ``--candidates`` in all. Each is simulated
with the default settings (its MOS score: AP on the verification images, a non-finite run
counting as -1) and trained on the proxy task: the FCOS detector from scratch for ``--proxy-steps``
steps on the train split with the candidate as classification loss (alpha-balanced, GIoU
regression), COCO AP on the search-val split (0 when training diverges).

Usage: ``python benchmarks/mos_predictiveness.py [--candidates 30] [--proxy-steps 300] [--write]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import tempfile
import time

import jax
import numpy as np
from scipy.stats import spearmanr

from detection.experiment import run_experiment
from detection.training import TrainingDiverged
from simulate import SimulationConfig, Simulator
from simulate.simulation import AUTHORS_ALPHA
from symbolic import KNOWN_LOSSES, InvalidCandidate, random_candidate, verify
from symbolic.variation import mutate_candidate


def study_candidates(count: int, seed: int) -> list:
    """Zoo sigmoid losses, mutations of them, then random CPV survivors; unique by key."""
    rng = random.Random(seed)
    zoo = [loss.candidate for loss in KNOWN_LOSSES.values() if loss.form == "sigmoid"]
    found = {c.key: c for c in zoo}
    while len(found) < min(count, len(zoo) + count // 2):
        child = mutate_candidate(rng, rng.choice(zoo))
        if verify(child, time_budget=0.2).passed:
            found.setdefault(child.key, child)
    while len(found) < count:
        try:
            child = random_candidate(rng, "sigmoid")
        except InvalidCandidate:
            continue
        if verify(child, time_budget=0.2).passed:
            found.setdefault(child.key, child)
    return list(found.values())[:count]


def proxy_ap(candidate, steps: int, seed: int) -> float:
    """AP on search_val after training FCOS from scratch with the candidate; 0 if training diverges."""
    with tempfile.TemporaryDirectory() as out_dir:
        try:
            result = run_experiment(cls_loss=candidate.to_jax(), alpha_balance=AUTHORS_ALPHA, steps=steps, seed=seed,
                                    out_dir=out_dir, eval_split="search_val", progress=False)
        except TrainingDiverged:
            return 0.0
    return float(result.metrics["AP"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--proxy-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    candidates = study_candidates(args.candidates, args.seed)
    simulator = Simulator(SimulationConfig(seed=args.seed), progress=True)
    simulated = simulator.simulate_many(candidates)
    mos = np.array([r.score if math.isfinite(r.score) else -1.0 for r in simulated])
    proxy = np.array([proxy_ap(c, args.proxy_steps, args.seed) for c in candidates])
    rho = spearmanr(mos, proxy).statistic
    top_proxy = set(np.argsort(-proxy, kind="stable")[:5].tolist())
    top_mos = set(np.argsort(-mos, kind="stable")[:10].tolist())
    passed = [r.passed for r in simulated]
    lines = [
        "",
        "## Does the simulation predict the proxy task?",
        "",
        f"Machine: {platform.machine()}, {jax.default_backend()}, jax {jax.__version__}. Command: "
        f"`python benchmarks/mos_predictiveness.py --candidates {args.candidates} --proxy-steps {args.proxy_steps}` "
        f"({(time.perf_counter() - started) / 60:.0f} min). {len(candidates)} sigmoid-form candidates (zoo, mutations, "
        f"random CPV survivors); MOS with the default settings; proxy: FCOS from scratch, {args.proxy_steps} steps "
        "batch 16 on train, AP on search_val.",
        "",
        f"* Spearman's rho (MOS score vs proxy AP): **{rho:.2f}**",
        f"* Proxy top-5 inside the MOS top-10: **{len(top_proxy & top_mos)} of 5**",
        f"* MOS passed {sum(passed)} of {len(candidates)}; mean proxy AP of passed "
        f"{100 * proxy[np.array(passed)].mean() if any(passed) else math.nan:.1f}, of rejected "
        f"{100 * proxy[~np.array(passed)].mean() if not all(passed) else math.nan:.1f}",
        "",
        "| candidate | MOS AP | MOS verdict | proxy AP |",
        "|---|---|---|---|",
    ]
    for index in np.argsort(-proxy, kind="stable"):
        result = simulated[index]
        verdict = "passed" if result.passed else f"rejected: {result.reason}"
        lines.append(f"| `{candidates[index].infix()[:70]}` | {100 * mos[index]:.1f} | {verdict} "
                     f"| {100 * proxy[index]:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open("benchmarks/RESULTS.md", "a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
