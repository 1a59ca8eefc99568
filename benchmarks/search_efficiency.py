"""Search efficiency (CSE-Autoloss Table 1 in miniature): random search, vanilla evolution, CPV-only and CSE-Autoloss.

Every method searches the classification branch of the one-stage detector with the same proxy
budget — ``generations`` x ``top_k`` proxy trainings of the same recipe (``autoloss.search``; the
methods differ only in what reaches the proxy: random trees, unchecked offspring, CPV-checked
offspring, or CPV + MOS-ranked offspring) — for each seed. Per method the table gives: candidates
generated, simulated by MOS, trained on the proxy, search wall time and proxy wall time, the best
proxy AP, the final-val AP of the best found loss after the final schedule (from scratch, beside
the baseline focal loss trained the same way), and the number of proxy evaluations each run needed
to first reach the proxy AP of the baseline loss (focal, trained by the same proxy recipe).

The paper's claim to test: CSE-Autoloss reaches the baseline with at least 10x fewer proxy
evaluations than vanilla evolution (paper: 50 vs 5x10^3 evaluated losses, 26 vs 5x10^2 GPU hours).

Usage (from the repository root)::

    python -m benchmarks.search_efficiency --preset smoke|demo|budget30|small|paper [--seeds N]
        [--methods random,vanilla,cpv-only,cse] [--work-dir DIR] [--records DIR [--report-only]] [--write]

Runs are kept under ``--work-dir`` (default ``runs/search-efficiency-PRESET``): a rerun resumes
unfinished searches and reuses finished ones and finished final trainings. With ``--records DIR`` each
finished (seed, method) — and each seed's baseline — is also kept as a small JSON file there (its
outcome and its proxy APs in evaluation order), which a later run on any machine reads instead of
searching again: the ``budget30`` study (10 generations x 3 proxy trainings = 30 proxy evaluations per
method and seed, 2 seeds; hours on two CPU cores) keeps its records in
``benchmarks/records/search_efficiency/budget30``; ``--report-only`` searches nothing and reports what the
records hold (a study in progress: each method over the seeds it has finished). With ``--write`` the best
proxy AP reached against
proxy evaluations is also drawn, per method (``benchmarks/figures/search_efficiency-PRESET.png``).
``paper`` is the paper's search on COCO (``SearchConfig.preset("paper")``); give it a Dask scheduler with
``--dask-scheduler tcp://HOST:PORT`` to spread its proxy and final trainings over a cluster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from autoloss.markdown import percent
from autoloss.plots_search import plot_best_so_far
from autoloss.proxy import train_and_evaluate
from autoloss.run_store import RunStore
from autoloss.search_config import METHODS, SearchConfig
from autoloss.search_driver import search
from autoloss.training_tasks import default_losses, task_spec
from benchmarks.results_file import RESULTS, command_line, machine_line, publish, records_folder
from detection.checkpoints import write_atomically

SECTION = "## Search efficiency (random, vanilla, CPV-only, CSE-Autoloss)"
SMOKE_DATA = "shapes:train=32,search_val=8,final_val=8,image_size=64"
PRESETS = {
    "smoke": {"base": "demo", "seeds": 1, "final_steps": 2, "search": {
        "data": SMOKE_DATA, "image_size": 64, "generations": 1, "population": 3, "top_k": 1, "parents": 1,
        "proxy_steps": 2, "proxy_batch_size": 2, "final_batch_size": 2, "workers": 1,
        "mos": {"warm_start_steps": 2, "warm_start_batch_size": 2, "steps": 2, "batch_size": 4,
                "min_relative_ap": 0.0}}},
    "demo": {"base": "demo", "seeds": 2, "final_steps": 1000, "search": {"generations": 2}},
    # a budget that can settle a 10x claim: 30 proxy evaluations per method and seed
    "budget30": {"base": "demo", "seeds": 2, "final_steps": 1000, "search": {"generations": 10, "top_k": 3}},
    "small": {"base": "small", "seeds": 3, "final_steps": 5000, "search": {}},
    "paper": {"base": "paper", "seeds": 3, "final_steps": 90_000, "search": {}},
}


def mean_std(values) -> str:
    """'mean ± std' of fractions in percent (mean alone for one value, '-' for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return percent(values[0])
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def proxy_curve(run_dir: Path) -> list[float | None]:
    """The proxy AP of every proxy evaluation of the run in ``run_dir`` (None where it failed), in log order."""
    return [event.get("ap") for event in RunStore(run_dir).read_log()
            if event.get("event") == "candidate" and event.get("stage") == "proxy"]


def evaluations_to_reach(curve: list[float | None], target: float) -> tuple[int | None, int]:
    """(1-based index of the first proxy evaluation with AP >= target, or None; evaluations in all)."""
    reached = next((index for index, ap in enumerate(curve, start=1) if ap is not None and ap >= target), None)
    return reached, len(curve)


def recorded(records: Path | None, preset: str, seed: int, name: str, make) -> dict | None:
    """``make()``'s outcome of ``name`` at ``seed``, read from (and kept in) the records folder when one is given;
    None when it is not recorded and ``make`` is None (a report of the records alone)."""
    if records is None:
        return make()
    path = records / f"seed{seed}" / f"{name}.json"
    if path.is_file():
        outcome = json.loads(path.read_text())
        if outcome.get("preset") != preset:
            raise ValueError(f"{path} records preset {outcome.get('preset')!r}, not {preset!r}: give this preset "
                             "its own --records folder")
        return outcome
    if make is None:
        return None
    outcome = {**make(), "preset": preset}
    write_atomically(path, json.dumps(outcome, indent=1, sort_keys=True).encode())
    return outcome


def finished_or_resumed(config: SearchConfig, run_dir: Path, progress: bool):
    """The search of ``config`` in ``run_dir``: run it, or resume/reuse what is there."""
    return search(config if not run_dir.exists() else None, run_dir=run_dir, resume=run_dir.exists(),
                  progress=progress)


def trained(spec: dict, what: str, progress: bool) -> dict:
    """The metrics of the training ``spec`` (run in this process), with a line before and after it."""
    started = time.perf_counter()
    if progress:
        print(f"{what}: training {spec['steps']} steps ...", file=sys.stderr, flush=True)
    result = train_and_evaluate(spec)
    if result["status"] != "ok":
        raise RuntimeError(f"{what} failed: {result.get('reason')}")
    if progress:
        print(f"{what}: AP {percent(result['metrics']['AP'])} in {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    return result["metrics"]


def final_ap(config: SearchConfig, losses: dict, out_dir: Path, what: str, progress: bool) -> dict:
    """Final-val metrics of ``losses`` after the final schedule from scratch (resumes/reuses ``out_dir``)."""
    return trained(task_spec(config, losses, final=True, out_dir=out_dir), f"{what}, final training in {out_dir}",
                   progress)


def run_seed(config: SearchConfig, methods, work_dir: Path, final_steps: int, progress: bool,
             records: Path | None = None, preset: str = "", search: bool = True) -> dict | None:
    """Every method's search on one seed, the baseline's proxy and final AP, and each winner's final AP (with
    ``search=False`` only what ``records`` holds: None without the seed's baseline, and the recorded methods)."""
    defaults = default_losses(config)
    final_config = config.replace(final_steps=final_steps)
    seed_dir = work_dir / f"seed{config.seed}"

    def baseline() -> dict:
        what = f"seed {config.seed}, baseline"
        proxy = trained(task_spec(config, defaults, branch="cls"), f"{what} proxy", progress)
        return {"baseline_proxy_ap": proxy["AP"],
                "baseline_final": final_ap(final_config, defaults, seed_dir / "final" / "baseline", what, progress)}

    recorded_baseline = recorded(records, preset, config.seed, "baseline", baseline if search else None)
    if recorded_baseline is None:
        return None
    outcome = {**recorded_baseline, "seed": config.seed, "methods": {}}
    target = outcome["baseline_proxy_ap"]

    def method_outcome(method: str) -> dict:
        started = time.perf_counter()
        result = finished_or_resumed(config.replace(method=method), seed_dir / method, progress)
        best = result.best
        found_final = None
        if best is not None:
            losses = {**defaults, "cls": {"prefix": best.prefix(), "form": best.form}}
            found_final = final_ap(final_config, losses, seed_dir / "final" / method,
                                   f"seed {config.seed}, {method}'s best", progress)
        return {"funnel": result.funnel, "seconds": result.seconds, "curve": proxy_curve(result.run_dir),
                "best": None if best is None else {"infix": best.infix(), "proxy_ap": best.proxy_ap},
                "final": found_final, "wall_seconds": time.perf_counter() - started}

    for method in methods:
        entry = recorded(records, preset, config.seed, method,
                         (lambda method=method: method_outcome(method)) if search else None)
        if entry is None:
            continue
        entry["reached"], entry["evaluations"] = evaluations_to_reach(entry["curve"], target)
        outcome["methods"][method] = entry
    return outcome


def render(preset: str, methods, outcomes: list[dict], command: str, minutes: float,
           figure: str | None = None) -> str:
    """The RESULTS.md section: settings, the per-method table, the claim checked, and each seed's winners."""
    studied = sum(entry["wall_seconds"] for outcome in outcomes for entry in outcome["methods"].values()) / 60
    lines = [SECTION, "", f"Machine: {machine_line()}. Command: `{command}` ({minutes:.0f} min this run; the "
             f"searches and their winners' final trainings took {studied:.0f} min when they ran). Preset "
             f"`{preset}`, seeds {', '.join(str(o['seed']) for o in outcomes)}; classification branch of the one-stage "
             "detector; every method trains the same number of candidates on the proxy task (generations x top_k) "
             "with the same recipe. Means over seeds (± std where several).", "",
             "| method | generated | MOS-simulated | proxy-trained | search min | proxy min | best proxy AP "
             "| final-val AP of the best | evaluations to reach the baseline's proxy AP |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        rows = [o["methods"][method] for o in outcomes if method in o["methods"]]
        if not rows:
            lines.append(f"| {method} | not yet searched |" + " |" * 7)
            continue
        label = method
        if len(rows) < len(outcomes):
            seeds = ", ".join(str(o["seed"]) for o in outcomes if method in o["methods"])
            label = f"{method} (seed {seeds} only)"
        reach = ", ".join(str(r["reached"]) if r["reached"] else f"not in {r['evaluations']}" for r in rows)
        simulated = [r["funnel"]["cpv"] if method == "cse" else 0 for r in rows]
        lines.append(
            f"| {label} | {statistics.mean(r['funnel']['generated'] for r in rows):,.0f} "
            f"| {statistics.mean(simulated):,.0f} | {statistics.mean(r['funnel']['proxy'] for r in rows):.0f} "
            f"| {statistics.mean(r['seconds'].get('total', 0.0) for r in rows) / 60:.1f} "
            f"| {statistics.mean(r['seconds'].get('proxy', 0.0) for r in rows) / 60:.1f} "
            f"| {mean_std(r['best'] and r['best']['proxy_ap'] for r in rows)} "
            f"| {mean_std(r['final'] and r['final']['AP'] for r in rows)} | {reach} |")
    lines += ["", f"Baseline (focal + GIoU): proxy AP {mean_std(o['baseline_proxy_ap'] for o in outcomes)}, "
              f"final-val AP {mean_std(o['baseline_final']['AP'] for o in outcomes)}.", "", claim(outcomes), ""]
    if figure is not None:
        lines += [f"![Best proxy AP reached against proxy evaluations, per method]({figure})", ""]
    for outcome in outcomes:
        winners = "; ".join(f"{m}: `{r['best']['infix']}`" if r["best"] else f"{m}: none"
                            for m, r in outcome["methods"].items())
        lines.append(f"* seed {outcome['seed']} winners — {winners or 'none searched yet'}")
    return "\n".join(lines) + "\n"


def claim(outcomes: list[dict]) -> str:
    """One sentence on the paper's claim: evaluations to reach the baseline, CSE vs vanilla."""
    outcomes = [o for o in outcomes if {"cse", "vanilla"} <= set(o["methods"])]
    if not outcomes:
        return "The claim (CSE-Autoloss vs vanilla evolution) needs both methods in the run."
    ratios = []
    for outcome in outcomes:
        cse, vanilla = outcome["methods"]["cse"], outcome["methods"]["vanilla"]
        if cse["reached"] is None:
            ratios.append(f"CSE-Autoloss did not reach the baseline in {cse['evaluations']} evaluations")
        elif vanilla["reached"] is None:
            ratios.append(f"vanilla did not reach it in {vanilla['evaluations']}, CSE-Autoloss did in "
                          f"{cse['reached']} (ratio > {vanilla['evaluations'] / cse['reached']:.1f}x)")
        else:
            ratios.append(f"vanilla {vanilla['reached']} vs CSE-Autoloss {cse['reached']} evaluations "
                          f"({vanilla['reached'] / cse['reached']:.1f}x)")
        ratios[-1] = f"seed {outcome['seed']}: {ratios[-1]}"
    return ("Claim (>= 10x fewer proxy evaluations than vanilla evolution to reach the baseline): "
            + "; ".join(ratios) + ".")


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, checked (methods and seeds name what is wrong)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="demo")
    parser.add_argument("--seeds", type=int, help="number of seeds (0, 1, ...); default: the preset's")
    parser.add_argument("--methods", default=",".join(reversed(METHODS)))  # the weakest filter first
    parser.add_argument("--work-dir", type=Path, help="where runs are kept (default runs/search-efficiency-PRESET)")
    parser.add_argument("--records", type=records_folder,
                        help="keep each finished (seed, method) here and read it instead of searching again")
    parser.add_argument("--report-only", action="store_true",
                        help="search nothing: the table of what --records holds (a study in progress)")
    parser.add_argument("--dask-scheduler", help="Dask scheduler address for the searches' trainings")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        parser.error(f"--methods: unknown method {unknown[0] if unknown else '(none)'}; choose from "
                     f"{', '.join(METHODS)}")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.report_only and args.records is None:
        parser.error("--report-only reads the finished searches of --records DIR; give that folder")
    return args


def main(argv=None) -> str:
    """Run the benchmark; print the section (and write it with --write); return it."""
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    seeds = list(range(args.seeds or preset["seeds"]))
    work_dir = args.work_dir or Path("runs") / f"search-efficiency-{args.preset}"
    overrides = {**preset["search"], "final_steps": 0}
    if args.dask_scheduler:
        overrides["dask_scheduler"] = args.dask_scheduler
    started = time.perf_counter()
    try:
        outcomes = [run_seed(SearchConfig.preset(preset["base"], **overrides, seed=seed), args.methods, work_dir,
                             preset["final_steps"], not args.quiet, args.records, args.preset,
                             search=not args.report_only) for seed in seeds]
    except ValueError as error:  # a record of another preset
        raise SystemExit(f"search_efficiency: error: --records {args.records}: {error}") from None
    outcomes = [outcome for outcome in outcomes if outcome is not None]
    if not outcomes:
        raise SystemExit(f"search_efficiency: error: --records {args.records} holds no finished seed of preset "
                         f"{args.preset!r} yet; run without --report-only to search")
    command = command_line("benchmarks.search_efficiency", argv)
    figure = None
    curves = {m: [o["methods"][m]["curve"] for o in outcomes if m in o["methods"]] for m in args.methods}
    if args.write and any(curves.values()):
        figure = f"figures/search_efficiency-{args.preset}.png"  # relative to the results file
        baseline = statistics.mean(o["baseline_proxy_ap"] for o in outcomes)
        (RESULTS.parent / figure).parent.mkdir(exist_ok=True)
        plot_best_so_far({m: runs for m, runs in curves.items() if runs}, baseline=baseline,
                         path=str(RESULTS.parent / figure))
    section = render(args.preset, args.methods, outcomes, command, (time.perf_counter() - started) / 60, figure)
    return publish(section, args.write)


if __name__ == "__main__":
    main()
