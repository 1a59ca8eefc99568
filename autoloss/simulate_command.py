"""``autoloss simulate EXPR... --form F``: the model optimization simulation of formulas, from the command line.

Each formula is parsed with the project's grammar and simulated against a cached warm start with
the branch's default loss as the baseline (:mod:`simulate`); the report is one line per formula:
passed or rejected with the reason, the AP on the verification images and the loss at the first
and last step.
"""

from __future__ import annotations

import argparse
import math

from autoloss.cli_contract import UsageError
from simulate import SimulationConfig, Simulator
from symbolic.candidate import Candidate
from symbolic.forms import FORMS
from symbolic.zoo import KNOWN_LOSSES


def run_simulate(args: argparse.Namespace) -> dict:
    """Simulate the formulas of ``args.exprs``; return the config, the baseline and one result per formula."""
    branch = "reg" if args.form == "reg" else "cls"
    settings = {"detector": args.detector, "data": args.data, "data_root": args.data_root, "branch": branch,
                "image_size": args.image_size, "seed": args.seed}
    for name in ("steps", "warm_start_steps", "batch_size", "images_per_class", "learning_rate", "batching"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    try:
        config = SimulationConfig(**settings)
    except ValueError as error:  # SimulationConfig checks each setting's range
        raise UsageError(str(error), hint="see autoloss simulate --help") from None
    if config.form != args.form:
        raise UsageError(f"the {args.detector} detector's {branch} branch takes {config.form}-form losses, "
                         f"not {args.form}", where="--form", hint=f"use --form {config.form} or another --detector")
    candidates = [_candidate(text, args.form) for text in args.exprs]
    simulator = Simulator(config, progress=not args.json)
    results = simulator.simulate_many(candidates)
    return {
        "config": {**config.__dict__},
        "baseline": simulator.baseline.to_dict(),
        "results": [result.to_dict() for result in results],
        "warm_start": str(simulator.warm_start_file),
    }


def _candidate(text: str, form: str) -> Candidate:
    """A zoo loss by name, or the formula parsed with the project's grammar."""
    known = KNOWN_LOSSES.get(text.strip())
    if known is None:
        return Candidate.parse(text, form)
    if known.form != form:
        raise UsageError(f"{text.strip()!r} is a {known.form}-form loss, not {form}", where="EXPR",
                         hint=f"simulate it with --form {known.form}, or give a {form}-form loss")
    return known.candidate


def _line(result: dict) -> str:
    verdict = "passed  " if result["passed"] else "rejected"
    score = "-" if result["score"] is None else f"{100 * result['score']:.1f}"
    curve = [v for v in result["loss_curve"] if v is not None]
    losses = f"loss {curve[0]:.4g} -> {curve[-1]:.4g}" if curve else "loss -"
    reason = f"  ({result['reason']})" if result["reason"] else ""
    return f"{verdict}  AP {score:>5}  {losses}  {result['infix']}{reason}"


def format_simulate(report: dict) -> str:
    """Text report of ``simulate``: the baseline, then one line per formula."""
    baseline = report["baseline"]
    score = baseline["score"] if baseline["score"] is not None else math.nan
    lines = [f"baseline {baseline['infix']}: AP {100 * score:.1f} on the verification images",
             *(_line(result) for result in report["results"])]
    return "\n".join(lines)


SIMULATE_COMMANDS = {"simulate": (run_simulate, format_simulate)}


def add_simulate_parser(sub, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` subcommand to the CLI's subparsers."""
    simulate = sub.add_parser("simulate", parents=[json_flag], help="model optimization simulation (MOS) of formulas: "
                              "a short training on one image per class, scored by AP")
    simulate.add_argument("exprs", nargs="+", metavar="EXPR",
                          help="zoo names or formulas, infix or the authors' prefix format")
    simulate.add_argument("--form", required=True, choices=sorted(FORMS),
                          help="sigmoid (FCOS classification), softmax (Faster R-CNN classification) or reg")
    simulate.add_argument("--detector", default="fcos", choices=("fcos", "faster-rcnn"))
    simulate.add_argument("--data", default="shapes", help="dataset spec (default: the built-in shapes)")
    simulate.add_argument("--data-root", default=None, help="cache root of the built-in dataset")
    simulate.add_argument("--image-size", type=int, default=128)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--steps", type=int, help="optimizer steps per candidate (default 40)")
    simulate.add_argument("--warm-start-steps", type=int, help="training steps of the cached warm start (default 1000)")
    simulate.add_argument("--batch-size", type=int, help="candidates simulated together (default 16)")
    simulate.add_argument("--images-per-class", type=int, help="verification images per class (default 1)")
    simulate.add_argument("--learning-rate", type=float, help="AdamW rate of the simulation (default 1e-2)")
    simulate.add_argument("--batching", choices=("stacked", "interpreter"), help="how a batch is compiled")
