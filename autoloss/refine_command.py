"""``autoloss refine EXPR|RUN_DIR``: tune a loss's numeric constants by CMA-ES on the simulation score.

A run directory gives its best found loss (``--branch``, ``--rank`` as for export) and its own search
settings; a formula or zoo name (``--form`` unless a zoo name) is refined with the settings of
``--preset``/``--config``, as ``autoloss search`` reads them. One progress line per generation goes to
stderr. With ``--proxy`` the original and the refined loss are also trained on the proxy task (minutes).
"""

from __future__ import annotations

import argparse
import os

from autoloss.cli_contract import UsageError
from autoloss.export import found_loss, resolve_candidate
from autoloss.refinement import RefineSettings, confirm_on_proxy, print_progress, refinable, refine
from autoloss.search_config import PRESETS, load_config
from autoloss.training_tasks import make_simulator
from symbolic.forms import FORMS


def run_refine(args: argparse.Namespace) -> dict:
    """Refine the constants of ``args.expr``; the refinement's report, with proxy APs when asked."""
    settings = RefineSettings(generations=args.generations, population=args.population, seed=args.seed,
                              spread=args.spread, fixed=_indices(args.fix))
    if os.path.isdir(args.expr):
        from autoloss.search_result import SearchResult

        config = SearchResult.load(args.expr).config
        loss = found_loss(args.expr, branch=args.branch, rank=args.rank, form=args.form)
        candidate, branch = loss.candidate, loss.branch
    else:
        candidate = resolve_candidate(args.expr, args.form, branch=args.branch, rank=args.rank)
        overrides = {} if args.detector is None else {"detector": args.detector}
        config = load_config(preset=args.preset, path=args.config, overrides=overrides)
        branch = "reg" if candidate.form.name == "reg" else "cls"
        if config.form_of(branch) != candidate.form.name:
            raise UsageError(f"the {config.detector} detector's {branch} branch takes {config.form_of(branch)}-form "
                             f"losses, not {candidate.form.name}", where="--detector",
                             hint="use --detector faster-rcnn for a softmax-form loss, fcos for a sigmoid-form one")
    refinable(candidate, settings)  # before the simulator's warm start, which can take minutes
    simulator = make_simulator(config, branch, progress=not args.json)
    refinement = refine(candidate, simulator, settings, progress=print_progress)
    report = {"branch": branch, "detector": config.detector, "seed": args.seed, **refinement.to_dict()}
    if args.proxy:
        losses = [refinement.original] + ([refinement.refined] if refinement.refined is not None else [])
        aps = confirm_on_proxy(config, branch, losses)
        report["proxy"] = {"original_ap": aps[0], "refined_ap": aps[1] if len(aps) > 1 else None}
    return report


def _indices(text: str | None) -> tuple[int, ...]:
    """The constant indices of ``--fix 0,2``."""
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--fix takes comma-separated constant indices, got {text!r}", where="--fix",
                         hint="give e.g. --fix 0,2 (autoloss refine --json lists the constants in order)") from None


def _ap(score) -> str:
    return "-" if score is None else f"{100 * score:.1f}"


def format_refine(report: dict) -> str:
    """Text report of ``refine``: the original and the refined loss with their scores and constants."""
    original, refined = report["original"], report["refined"]
    lines = [f"original  MOS AP {_ap(report['original_score']):>5}  {original['infix']}"]
    if refined is None:
        lines.append("refined   none: no CPV-passing setting of the constants beat the original's simulation score")
    else:
        verdict = report["refined_verdict"]
        proved = sum(p["status"] == "proved" for p in verdict["properties"] if p["required"])
        required = sum(p["required"] for p in verdict["properties"])
        lines += [f"refined   MOS AP {_ap(report['refined_score']):>5}  {refined['infix']}",
                  f"CPV       passed ({proved}/{required} proved)",
                  "constants " + ", ".join(f"{v:.4g}" for v in original["constants"]) + " -> "
                  + ", ".join(f"{v:.4g}" for v in refined["constants"])]
    if "proxy" in report:
        lines.append(f"proxy AP  {_ap(report['proxy']['original_ap'])} -> {_ap(report['proxy']['refined_ap'])}")
    lines.append(f"{report['simulated']} candidates simulated, {len(report['discarded'])} discarded for failing CPV, "
                 f"{report['seconds']:.0f} s")
    return "\n".join(lines)


REFINE_COMMANDS = {"refine": (run_refine, format_refine)}


def add_refine_parser(sub, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``refine`` subcommand to the CLI's subparsers."""
    parser = sub.add_parser("refine", parents=[json_flag], help="tune a loss's numeric constants by CMA-ES on the "
                            "simulation (MOS) score; the refined loss gets its own CPV verdict")
    parser.add_argument("expr", metavar="EXPR|RUN_DIR", help="a formula, a zoo name or a search run directory")
    parser.add_argument("--form", choices=sorted(FORMS), help="the loss form of a formula (not needed for a zoo "
                        "name or a run)")
    parser.add_argument("--branch", choices=("cls", "reg"), help="the branch of a run searched both")
    parser.add_argument("--rank", type=int, help="which found loss of a run (default 1, the best)")
    parser.add_argument("--generations", type=int, default=RefineSettings.generations, help="CMA-ES generations "
                        f"(default {RefineSettings.generations})")
    parser.add_argument("--population", type=int, default=RefineSettings.population, help="CMA-ES population, "
                        f"simulated together (default {RefineSettings.population})")
    parser.add_argument("--spread", type=float, default=RefineSettings.spread, help="initial step relative to "
                        f"max(|constant|, 1) (default {RefineSettings.spread})")
    parser.add_argument("--fix", metavar="K[,K...]", help="indices of constants to keep (in the order the report's "
                        "constants list them), e.g. the 1 of a label complement 1 - y")
    parser.add_argument("--seed", type=int, default=0, help="seed of the CMA-ES (default 0)")
    parser.add_argument("--preset", help=f"search settings for a formula: {', '.join(PRESETS)} (default demo)")
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of search settings for a formula")
    parser.add_argument("--detector", choices=("fcos", "faster-rcnn"), help="detector of a formula's branch")
    parser.add_argument("--proxy", action="store_true", help="also train the original and the refined loss on the "
                        "proxy task (minutes)")
