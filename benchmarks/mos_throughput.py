"""Throughput of the model optimization simulation: candidates per minute, compile time, peak memory.

Simulates the same candidates (zoo losses plus seeded random sigmoid-form candidates) with the
default settings in four ways, each with a freshly built simulator state but the cached warm start:

- ``linearized`` (the default): one shared compiled step; each batch compiles only its losses'
  values and derivatives (``simulate.linearized``);
- ``stacked``: batches of ``--batch-size`` candidates, each batch one compiled step with the
  lowered losses written in;
- ``interpreter``: the losses as data for the loss interpreter, compiled once per length class;
- ``one-at-a-time``: stacked with batch size 1, so every candidate gets a freshly jitted step.

Usage: ``python benchmarks/mos_throughput.py [--candidates 64] [--batch-size 16] [--write]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_file import machine_line, publish  # noqa: E402
from simulate import SimulationConfig, Simulator  # noqa: E402
from symbolic import KNOWN_LOSSES, InvalidCandidate, random_candidate  # noqa: E402

SECTION = "## Model optimization simulation throughput"


def sample_candidates(count: int, seed: int) -> list:
    """Zoo sigmoid losses, then seeded random sigmoid-form candidates."""
    rng = random.Random(seed)
    found = [loss.candidate for loss in KNOWN_LOSSES.values() if loss.form == "sigmoid"]
    while len(found) < count:
        try:
            found.append(random_candidate(rng, "sigmoid"))
        except InvalidCandidate:
            continue
    return found[:count]


def measure(config: SimulationConfig, candidates: list) -> dict:
    """Build a simulator (warm start cached) and time simulate_many twice: first call and a repeat."""
    simulator = Simulator(config, progress=False)
    started = time.perf_counter()
    results = simulator.simulate_many(candidates)
    first = time.perf_counter() - started
    started = time.perf_counter()
    simulator.simulate_many(candidates)
    repeat = time.perf_counter() - started
    first_steps = simulator.timings["first_step_seconds"]
    return {
        "first_step_seconds": first_steps,
        "evaluation_seconds": simulator.timings["evaluation_seconds"],
        "first_seconds": first,
        "repeat_seconds": repeat,
        "per_minute": 60 * len(candidates) / first,
        "per_minute_repeat": 60 * len(candidates) / repeat,
        "passed": sum(r.passed for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--one-at-a-time", type=int, default=8, help="candidates for the fresh-jit baseline")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    candidates = sample_candidates(args.candidates, args.seed)
    base = SimulationConfig(batch_size=args.batch_size)
    Simulator(base, progress=True)  # build and cache the warm start outside the timings
    rows = {batching: measure(dataclasses.replace(base, batching=batching), candidates)
            for batching in ("linearized", "stacked", "interpreter")}
    rows["one-at-a-time"] = measure(dataclasses.replace(base, batching="stacked", batch_size=1),
                                    candidates[: args.one_at_a_time])
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    lines = [
        SECTION,
        "",
        f"Machine: {machine}. Command: `python benchmarks/mos_throughput.py --candidates {args.candidates} "
        f"--batch-size {args.batch_size}`. Default settings ({base.steps} steps, {base.images_per_class} image per "
        f"class, heads on cached features); {args.candidates} candidates (zoo + seeded random), "
        f"{args.one_at_a_time} for one-at-a-time.",
        "",
        "| batching | first call s | repeat s | candidates/min (first) | candidates/min (repeat) "
        "| first steps (compile) s, both calls | COCO eval s, both calls | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['first_seconds']:.1f} | {row['repeat_seconds']:.1f} | {row['per_minute']:.0f} "
            f"| {row['per_minute_repeat']:.0f} | {row['first_step_seconds']:.1f} | {row['evaluation_seconds']:.1f} "
            f"| {row['passed']} |"
        )
    default = base.batching
    ratio = rows[default]["per_minute"] / rows["one-at-a-time"]["per_minute"]
    lines += ["", f"The default ({default}) vs one at a time with a freshly jitted step each: **{ratio:.1f}x** "
              f"(first calls). Peak resident memory of the process (all four simulators alive): {peak_gib:.2f} GiB.",
              ""]
    text = "\n".join(lines)
    publish(text, args.write)


if __name__ == "__main__":
    main()
