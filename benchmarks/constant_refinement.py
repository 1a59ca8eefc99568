"""Constant refinement quality: simulation (MOS) score and proxy AP before and after ``autoloss.refinement.refine``.

For each loss (by default ``cse_b_cls`` from the zoo and the focal loss, both sigmoid-form for FCOS;
``--losses`` picks zoo losses, ``--formula NAME=TEXT`` adds any other, e.g. a search's best) and each
CMA-ES seed, the constants are refined on the MOS of the preset's search settings; the table gives the
original's and the refined loss's MOS AP, the refined formula and the wall time. The MOS score is the one
the constants were tuned on (the verification images), so its gain is in-sample; with ``--proxy`` the
original (once) and every refined loss are also trained on the search's proxy task and scored on
``search_val``, the check ``autoloss refine --proxy`` makes.

Usage (from the repository root)::

    python -m benchmarks.constant_refinement [--preset quick|demo] [--seeds N] [--generations N]
        [--losses cse_b_cls,focal] [--formula NAME=TEXT ...] [--proxy] [--write]
"""

from __future__ import annotations

import argparse
import time

from autoloss.markdown import percent
from autoloss.refinement import RefineSettings, confirm_on_proxy, print_progress, refine
from autoloss.search_config import SearchConfig
from autoloss.training_tasks import make_simulator
from benchmarks.results_file import command_line, machine_line, publish
from benchmarks.search_efficiency import SMOKE_DATA
from symbolic.candidate import Candidate
from symbolic.constants import lift_constants
from symbolic.zoo import KNOWN_LOSSES

SECTION = "## Constant refinement (CMA-ES on the MOS score)"
LOSSES = {"cse_b_cls": (), "focal": (1,)}  # zoo name -> constants kept (focal's 1 is the one of 1 - y)
PRESETS = {
    "quick": {"data": SMOKE_DATA, "image_size": 64,
              "mos": {"warm_start_steps": 200, "warm_start_batch_size": 8, "steps": 20, "batch_size": 8}},
    "demo": {},
}


def study(config: SearchConfig, losses: dict[str, tuple[Candidate, tuple]], seeds: int, generations: int,
          population: int, progress: bool) -> list[dict]:
    """One row per (loss, seed): scores before and after, constants, wall time."""
    simulator = make_simulator(config, "cls", progress=progress)
    rows = []
    for name, (candidate, fixed) in losses.items():
        for seed in range(seeds):
            settings = RefineSettings(generations=generations, population=population, seed=seed, fixed=fixed)
            result = refine(candidate, simulator, settings, progress=print_progress if progress else None)
            best = result.refined or candidate
            rows.append({"loss": name, "seed": seed, "before": result.original_score,
                         "after": result.refined_score if result.refined else result.original_score,
                         "constants_before": lift_constants(candidate).values, "refined": result.refined is not None,
                         "infix": best.infix(), "simulated": result.simulated, "discarded": len(result.discarded),
                         "seconds": result.seconds})
    return rows


def add_proxy_aps(config: SearchConfig, losses: dict[str, tuple[Candidate, tuple]], rows: list[dict]) -> None:
    """Each row's proxy AP before (the original, trained once per loss) and after (its refined loss)."""
    for name, (candidate, _) in losses.items():
        [original] = confirm_on_proxy(config, "cls", [candidate])
        for row in (r for r in rows if r["loss"] == name):
            refined = Candidate.parse(row["infix"], "sigmoid") if row["refined"] else None
            row["proxy_before"] = original
            row["proxy_after"] = confirm_on_proxy(config, "cls", [refined])[0] if refined else original


def _ap(value) -> str:
    return "failed" if value is None else percent(value)


def render(rows: list[dict], args, command: str, minutes: float, config: SearchConfig) -> str:
    """The RESULTS.md section."""
    mos = {**config.mos}
    lines = [SECTION, "", f"Machine: {machine_line()}. Command: `{command}` ({minutes:.0f} min; the cores were shared "
             "with other work, so wall times are inflated). "
             f"Preset `{args.preset}`: data `{config.data}`, {config.image_size} px, "
             f"MOS settings {mos or 'of the demo'}; "
             f"CMA-ES {args.generations} generations x population {args.population}; the MOS score is AP on the "
             "verification images the constants are tuned on (in-sample)."
             + (f" Proxy AP: the search's proxy task ({config.proxy_steps} steps from the warm start, AP on "
                "`search_val`), the original trained once per loss." if args.proxy else ""), "",
             "| loss | seed | MOS AP before | MOS AP after | " + ("proxy AP before | proxy AP after | " if args.proxy
                                                                 else "")
             + "constants | refined loss | simulated | discarded (CPV) | wall time |",
             "|---|---|---|---|" + ("---|---|" if args.proxy else "") + "---|---|---|---|---|"]
    for r in rows:
        constants = ", ".join(f"{v:.3g}" for v in r["constants_before"])
        refined = f"`{r['infix']}`" if r["refined"] else "none better"
        proxy = f"{_ap(r['proxy_before'])} | {_ap(r['proxy_after'])} | " if args.proxy else ""
        lines.append(f"| {r['loss']} | {r['seed']} | {percent(r['before'])} | {percent(r['after'])} | {proxy}"
                     f"{constants} | {refined} | {r['simulated']} | {r['discarded']} | {r['seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def chosen_losses(parser, args) -> dict[str, tuple[Candidate, tuple]]:
    """The losses to refine: zoo names from --losses, then every --formula NAME=TEXT (parsed, never evaluated)."""
    losses = {}
    for name in filter(None, (n.strip() for n in args.losses.split(","))):
        if name not in KNOWN_LOSSES:
            parser.error(f"--losses: {name!r} is not a zoo loss (autoloss zoo lists them)")
        losses[name] = (KNOWN_LOSSES[name].candidate, LOSSES.get(name, ()))
    for item in args.formula:
        name, equals, text = item.partition("=")
        if not equals or not name or not text:
            parser.error(f"--formula takes NAME=FORMULA, got {item!r}")
        try:
            losses[name] = (Candidate.parse(text, "sigmoid"), ())
        except ValueError as error:
            parser.error(f"--formula {name}: {error}")
    if not losses:
        parser.error("no loss to refine: give --losses or --formula")
    return losses


def main(argv=None) -> str:
    """Run the study; print the section (and write it with --write); return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--losses", default=",".join(LOSSES), help="zoo losses, comma-separated")
    parser.add_argument("--formula", action="append", default=[], help="NAME=FORMULA, a further loss (repeatable)")
    parser.add_argument("--proxy", action="store_true", help="also train before and after on the proxy task")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    for name, low in (("seeds", 1), ("generations", 1), ("population", 2)):
        if getattr(args, name) < low:
            parser.error(f"--{name} must be at least {low}, got {getattr(args, name)}")
    losses = chosen_losses(parser, args)
    config = SearchConfig.preset("demo", **PRESETS[args.preset])
    started = time.perf_counter()
    rows = study(config, losses, args.seeds, args.generations, args.population, not args.quiet)
    if args.proxy:
        add_proxy_aps(config, losses, rows)
    section = render(rows, args, command_line("benchmarks.constant_refinement", argv),
                     (time.perf_counter() - started) / 60, config)
    return publish(section, args.write)


if __name__ == "__main__":
    main()
