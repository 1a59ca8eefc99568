"""Does the model optimization simulation predict the proxy task? Spearman's rho and top-k overlap.

Candidates (sigmoid form, FCOS classification branch): the zoo's, seeded mutations of them, and
seeded random candidates that pass CPV, deduplicated, ``--candidates`` in all. Each is simulated
with the default settings (its MOS score: AP on the verification images, a non-finite run
counting as -1) and trained on the search's proxy task (``autoloss.proxy``, the demo preset's
settings): FCOS for ``--proxy-steps`` steps on the train split with the candidate as
classification loss (alpha-balanced, GIoU regression), from the MOS warm start with the
classifier re-initialized (``--proxy-init warm``, the search's default) or from scratch; COCO AP
on the search-val split (0 when training fails).

Usage: ``python benchmarks/mos_predictiveness.py [--candidates 30] [--proxy-steps 150]
[--proxy-init warm|scratch] [--write]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoloss.proxy import train_and_evaluate  # noqa: E402
from autoloss.search_config import SearchConfig  # noqa: E402
from autoloss.training_tasks import default_losses, task_spec  # noqa: E402
from benchmarks.results_file import machine_line, publish  # noqa: E402
from simulate import SimulationConfig, Simulator  # noqa: E402
from symbolic import KNOWN_LOSSES, InvalidCandidate, random_candidate, verify  # noqa: E402
from symbolic.variation import mutate_candidate  # noqa: E402

SECTION = "## Does the simulation predict the proxy task?"


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


def proxy_ap(candidate, config: SearchConfig) -> float:
    """AP on search_val of the search's proxy task with the candidate as classification loss; 0 if it fails."""
    losses = {**default_losses(config), "cls": {"prefix": candidate.prefix(), "form": candidate.form.name}}
    result = train_and_evaluate(task_spec(config, losses, branch="cls"))
    return float(result["metrics"]["AP"]) if result["status"] == "ok" else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--proxy-steps", type=int, default=150)
    parser.add_argument("--proxy-init", choices=("warm", "scratch"), default="warm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    started = time.perf_counter()
    candidates = study_candidates(args.candidates, args.seed)
    simulator = Simulator(SimulationConfig(seed=args.seed), progress=True)
    simulated = simulator.simulate_many(candidates)
    mos = np.array([r.score if math.isfinite(r.score) else -1.0 for r in simulated])
    config = SearchConfig(proxy_steps=args.proxy_steps, proxy_init=args.proxy_init, seed=args.seed)
    proxy = np.array([proxy_ap(c, config) for c in tqdm(candidates, desc="proxy")])
    rho = spearmanr(mos, proxy).statistic
    top_proxy = set(np.argsort(-proxy, kind="stable")[:5].tolist())
    top_mos = set(np.argsort(-mos, kind="stable")[:10].tolist())
    passed = [r.passed for r in simulated]
    lines = [
        SECTION,
        "",
        f"Machine: {machine}. Command: "
        f"`python benchmarks/mos_predictiveness.py --candidates {args.candidates} --proxy-steps {args.proxy_steps} "
        f"--proxy-init {args.proxy_init}` ({(time.perf_counter() - started) / 60:.0f} min). {len(candidates)} "
        "sigmoid-form candidates (zoo, mutations, random CPV survivors); MOS with the default settings; proxy: the "
        f"search's proxy task, FCOS {args.proxy_steps} steps batch 16 on train "
        f"({'from the MOS warm start, classifier re-initialized' if args.proxy_init == 'warm' else 'from scratch'}), "
        "AP on search_val.",
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
    publish(text, args.write)


if __name__ == "__main__":
    main()
