"""Filter effectiveness: what dedup, CPV and MOS remove from a stream of generated losses, and what they remove wrongly.

One fixed, seeded stream of ``--generated`` random classification losses of the one-stage detector
(the search's generation-0 breeding, ``Evolution.breeding``, after the preset's zoo seeds) goes
through the search's own filter funnel (``symbolic.funnel``): value-fingerprint dedup, the sampled CPV
screen, canonical dedup, gradient-equivalence dedup (``symbolic.gradient_equivalence``), the CPV
proofs; then model optimization simulation (``simulate.Simulator``); the funnel says how many each
layer removes. To measure false
rejections, a seeded random sample of each group — rejected by CPV, rejected by MOS, passed MOS — is
also trained on the proxy task (the search's own recipe, ``autoloss.proxy``), beside the baseline
focal loss. A candidate is *good* when its proxy AP reaches ``--good-fraction`` of the baseline's.
From each group's sample the number of good candidates in the whole group is estimated (good share
of the sample x group size); a filter's false-rejection share is the estimated good candidates it
removed over all estimated good candidates. The paper's claim: CPV and MOS together filter out more
than 99% of candidates.

Usage (from the repository root)::

    python -m benchmarks.filter_effectiveness --preset smoke|demo|small|paper [--generated N] [--sample N]
        [--good-fraction F] [--write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter

from autoloss.evolution import Evolution, EvolutionSettings
from autoloss.executors import TaskRunner, TrainingTask
from autoloss.markdown import percent
from autoloss.proxy import train_and_evaluate
from autoloss.search_config import SearchConfig
from autoloss.training_tasks import default_losses, make_simulator, task_spec
from benchmarks.results_file import command_line, machine_line, publish
from benchmarks.search_efficiency import SMOKE_DATA
from symbolic.candidate import Candidate
from symbolic.printers import to_prefix

SECTION = "## Filter effectiveness (dedup, CPV, MOS)"
GROUPS = ("rejected by CPV", "rejected by MOS", "passed MOS")
PRESETS = {
    "smoke": {"base": "demo", "generated": 1000, "sample": 1, "search": {
        "zoo_seeds": ("focal", "bce"), "data": SMOKE_DATA, "image_size": 64, "proxy_steps": 2,
        "proxy_batch_size": 2, "workers": 1,
        "mos": {"warm_start_steps": 2, "warm_start_batch_size": 2, "steps": 2, "batch_size": 4}}},
    "demo": {"base": "demo", "generated": 100_000, "sample": 6, "search": {}},
    "small": {"base": "small", "generated": 1_000_000, "sample": 20, "search": {}},
    "paper": {"base": "paper", "generated": 10_000_000, "sample": 50, "search": {}},
}


def generated_stream(config: SearchConfig, count: int) -> tuple[dict, list[str], list[Candidate]]:
    """Breed ``count`` raw candidates through the search's funnel: (counts per layer, CPV-rejected prefixes,
    CPV-passed candidates)."""
    settings = EvolutionSettings.from_config(config.replace(method="cse", population=1_000_000,
                                                            max_generated=count), "cls")
    machine = Evolution(settings)
    _, stream = machine.breeding(machine.init())
    layers, rejected, passed = Counter(), [], []
    for sifted in stream:
        layers[sifted.layer] += 1
        if sifted.layer == "sampled_cpv":
            rejected.append(to_prefix(sifted.tree, settings.form))
        elif sifted.layer == "cpv":
            rejected.append(sifted.candidate.prefix())
        elif sifted.passed:
            passed.append(sifted.candidate)
    duplicates = layers["value"] + layers["canonical"] + layers["gradient"]
    counts = {"generated": sum(layers.values()), "unique": sum(layers.values()) - duplicates,
              "duplicates": duplicates, "value_duplicates": layers["value"],
              "canonical_duplicates": layers["canonical"], "gradient_duplicates": layers["gradient"],
              "invalid": layers["invalid"], "rejected_by_cpv": len(rejected), "passed_cpv": len(passed)}
    return counts, rejected, passed


def proxy_aps(config: SearchConfig, prefixes: dict[str, str], progress: bool) -> dict[str, dict]:
    """{name: proxy result} of each classification loss (prefix, or None for the baseline) on the search's workers."""
    defaults = default_losses(config)
    tasks = {}
    for name, prefix in prefixes.items():
        losses = defaults if prefix is None else {**defaults, "cls": {"prefix": prefix, "form": config.form_of("cls")}}
        tasks[name] = TrainingTask(task_spec(config, losses, branch="cls"), config.proxy_time_limit, name)
    results: dict[str, dict] = {}
    runner = TaskRunner.local(config.workers)
    try:
        runner.run(train_and_evaluate, tasks, lambda name, result: results.__setitem__(name, result))
    finally:
        runner.close()
    if progress:
        print(f"trained {len(results)} candidates on the proxy task", file=sys.stderr)
    return results


def ap_of(result: dict) -> float | None:
    """The proxy AP of a result, None when the training failed."""
    return result["metrics"]["AP"] if result.get("status") == "ok" else None


def study(config: SearchConfig, generated: int, sample: int, good_fraction: float, progress: bool) -> dict:
    """Run the stream through the filters, proxy-train the samples; return counts and per-group outcomes."""
    counts, cpv_rejected, passed_cpv = generated_stream(config, generated)
    simulator = make_simulator(config, "cls", progress=progress)  # MOS after the funnel, as in the search
    simulated = simulator.simulate_many(passed_cpv)
    groups = {"rejected by CPV": cpv_rejected,
              "rejected by MOS": [c.prefix() for c, s in zip(passed_cpv, simulated, strict=True) if not s.passed],
              "passed MOS": [c.prefix() for c, s in zip(passed_cpv, simulated, strict=True) if s.passed]}
    counts["passed_mos"] = len(groups["passed MOS"])
    rng = random.Random(f"{config.seed}-filter-sample")
    samples = {group: rng.sample(members, min(sample, len(members))) for group, members in groups.items()}
    prefixes = {"baseline": None} | {f"{group}/{i}": p for group, chosen in samples.items()
                                     for i, p in enumerate(chosen)}
    results = proxy_aps(config, prefixes, progress)
    baseline = ap_of(results["baseline"])
    if baseline is None:
        raise RuntimeError(f"the baseline's proxy training failed: {results['baseline'].get('reason')}")
    threshold = good_fraction * baseline
    outcome = {"counts": counts, "baseline_ap": baseline, "threshold": threshold, "groups": {},
               "mos_baseline": simulator.baseline.score}
    for group, chosen in samples.items():
        aps = [ap_of(results[f"{group}/{i}"]) for i in range(len(chosen))]
        good = sum(ap is not None and ap >= threshold for ap in aps)
        outcome["groups"][group] = {
            "size": len(groups[group]), "trained": len(chosen), "failed": sum(ap is None for ap in aps),
            "mean_ap": statistics.mean([ap for ap in aps if ap is not None] or [0.0]) if chosen else None,
            "best_ap": max((ap for ap in aps if ap is not None), default=None), "good": good,
            "estimated_good": good / len(chosen) * len(groups[group]) if chosen else 0.0,
            "reasons": Counter(results[f"{group}/{i}"].get("reason", "")[:40] for i, ap in enumerate(aps)
                               if ap is None).most_common(2)}
    return outcome


def render(outcome: dict, preset: str, args, command: str, minutes: float) -> str:
    """The RESULTS.md section: the funnel of the stream and the false-rejection table."""
    c = outcome["counts"]
    filtered = 1 - c["passed_mos"] / c["generated"] if c["generated"] else 0.0
    lines = [SECTION, "", f"Machine: {machine_line()}. Command: `{command}` ({minutes:.0f} min). Preset `{preset}`: "
             f"{c['generated']:,} generated classification losses (seed {args.seed}); proxy samples of up to "
             f"{args.sample} per group; good = proxy AP >= {args.good_fraction:g} x the baseline's "
             f"({percent(outcome['baseline_ap'])} for focal, so >= {percent(outcome['threshold'])}).", "",
             "| generated | value duplicates | invalid | canonical duplicates | gradient duplicates | rejected by CPV "
             "| passed CPV | rejected by MOS | passed MOS | filtered before the proxy |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| {c['generated']:,} | {c['value_duplicates']:,} | {c['invalid']:,} | {c['canonical_duplicates']:,} "
             f"| {c['gradient_duplicates']:,} | {c['rejected_by_cpv']:,} | {c['passed_cpv']:,} "
             f"| {c['passed_cpv'] - c['passed_mos']:,} | {c['passed_mos']:,} | **{100 * filtered:.3f}%** |", "",
             "Each column removes from what the columns before it left, in the search's order, except that the "
             "sampled CPV screen runs before the canonical and gradient layers (rejected by CPV counts the screen and "
             "the proofs together).", "",
             "| group | size | proxy-trained | failed | mean proxy AP | best proxy AP | good in sample "
             "| estimated good in group | share of all good candidates |", "|---|---|---|---|---|---|---|---|---|"]
    total_good = sum(g["estimated_good"] for g in outcome["groups"].values())
    for group in GROUPS:
        g = outcome["groups"][group]
        share = "-" if total_good == 0 else f"{100 * g['estimated_good'] / total_good:.0f}%"
        lines.append(f"| {group} | {g['size']:,} | {g['trained']} | {g['failed']} | {percent(g['mean_ap'])} "
                     f"| {percent(g['best_ap'])} | {g['good']} | {g['estimated_good']:.1f} | {share} |")
    lines += ["", "The shares of the rejected groups are the filters' false rejections: good candidates a filter "
              "removed, as a share of all good candidates the stream held (estimated from the samples; small "
              "samples make them coarse)."]
    reasons = {group: g["reasons"] for group, g in outcome["groups"].items() if g["reasons"]}
    if reasons:
        lines += ["", "Failed proxy trainings, most common reasons: " + "; ".join(
            f"{group}: " + ", ".join(f"{reason!r} x{n}" for reason, n in common) for group, common in reasons.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    """Run the study; print the section (and write it with --write); return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="demo")
    parser.add_argument("--generated", type=int, help="raw candidates in the stream (default: the preset's)")
    parser.add_argument("--sample", type=int, help="proxy-trained candidates per group (default: the preset's)")
    parser.add_argument("--good-fraction", type=float, default=0.9,
                        help="a candidate is good when its proxy AP reaches this fraction of the baseline's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    args.generated = preset["generated"] if args.generated is None else args.generated
    args.sample = preset["sample"] if args.sample is None else args.sample
    checks = (("--generated", args.generated, 1), ("--sample", args.sample, 0), ("--seed", args.seed, 0))
    for name, value, low in checks:
        if value < low:
            parser.error(f"{name} must be at least {low}, got {value}")
    if not 0 < args.good_fraction <= 2:
        parser.error(f"--good-fraction must be in (0, 2], got {args.good_fraction}")
    config = SearchConfig.preset(preset["base"], **preset["search"], seed=args.seed)
    started = time.perf_counter()
    outcome = study(config, args.generated, args.sample, args.good_fraction, not args.quiet)
    command = command_line("benchmarks.filter_effectiveness", argv)
    section = render(outcome, args.preset, args, command, (time.perf_counter() - started) / 60)
    return publish(section, args.write)


if __name__ == "__main__":
    main()
