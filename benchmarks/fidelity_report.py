"""The proxy-fidelity study's scores (one per proxy variant, with its CPU cost) and its RESULTS.md section.

A *variant* is a way to score candidates before the trained schedule: the MOS score, the search's proxy,
longer proxies, other learning rates and the best of them, the trend of two proxy lengths, the
gradient-normalized loss, a later warm start, successive halving over the proxy lengths, and shorter final
schedules. Each is compared with the *reference*: the FCOS default schedule (6000 steps), or the shorter
final schedule where it ranks the study's subset exactly as the 6000-step one does.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

from autoloss.markdown import code, percent, table
from autoloss.search_config import SearchConfig
from benchmarks.fidelity_candidates import BASELINE
from benchmarks.rank_agreement import (
    agreement,
    best_of,
    common,
    kendall_gain,
    picks,
    seeds_needed,
    successive_halving,
    trend,
)

SECTION = "## Proxy fidelity: does the proxy rank losses like the trained schedule?"
CURRENT = "proxy (the studied search's)"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to score candidates: {candidate: score} and {candidate: CPU seconds it cost}."""

    name: str
    scores: dict[str, float]
    cpu: dict[str, float]

    @property
    def cpu_minutes(self) -> float:
        """Mean CPU minutes per scored candidate."""
        values = [self.cpu[n] for n in self.scores if n in self.cpu]
        return statistics.mean(values) / 60 if values else math.nan


def summed(*costs: dict[str, float]) -> dict[str, float]:
    """{candidate: total} over the cost dicts, for the candidates all of them have."""
    return {n: sum(c[n] for c in costs) for n in common(*costs)}


def variants(study) -> list[Variant]:
    """Every variant the study's finished trainings can score, the search's proxy second (after MOS)."""
    s, config = study.settings, study.config
    mos_cpu = study.mos_cost["cpu_seconds"] / max(study.mos_cost["candidates"], 1)
    rows = [Variant("MOS (the search's simulation)", {c.name: c.mos_rank_score for c in study.candidates},
                    {c.name: mos_cpu for c in study.candidates})]
    ladder = {m: (study.scores(lambda n, m=m: study.proxy(n, m)), study.cpu(lambda n, m=m: study.proxy(n, m)))
              for m in s.step_multiples}
    for m, (scores, cpu) in ladder.items():
        rows.append(Variant(CURRENT if m == 1 else f"proxy {m}x steps ({m * config.proxy_steps})", scores, cpu))
    rates = {k: (study.scores(lambda n, k=k: study.proxy(n, lr_scale=k)),
                 study.cpu(lambda n, k=k: study.proxy(n, lr_scale=k))) for k in s.lr_scales}
    rows += [Variant(f"proxy, lr x{k:g}", *rates[k]) for k in s.lr_scales if k != 1]
    if len(rates) > 1:
        rows.append(Variant("proxy, best of lr x" + "/".join(f"{k:g}" for k in s.lr_scales),
                            best_of(*(v[0] for v in rates.values())), summed(*(v[1] for v in rates.values()))))
    for short, long in zip(s.step_multiples, s.step_multiples[1:3], strict=False):
        rows.append(Variant(f"trend of proxy {short}x -> {long}x (2 AP_{long}x - AP_{short}x)",
                            trend(ladder[short][0], ladder[long][0]), summed(ladder[short][1], ladder[long][1])))
    rows.append(Variant("proxy, gradient-normalized loss", study.scores(lambda n: study.proxy(n, normalized=True)),
                        study.cpu(lambda n: study.proxy(n, normalized=True))))
    if s.later_warm_start:
        later = lambda n: study.proxy(n, warm_start_steps=s.later_warm_start)  # noqa: E731
        rows.append(Variant(f"proxy from a {s.later_warm_start}-step warm start", study.scores(later),
                            study.cpu(later)))
    for rungs in range(len(s.step_multiples), 1, -1):  # the most rungs whose results are in
        multiples = s.step_multiples[:rungs]
        halving = successive_halving([ladder[m][0] for m in multiples], [ladder[m][1] for m in multiples])
        if halving is not None:
            scores, total = halving
            rows.append(Variant("successive halving " + " -> ".join(f"{m}x" for m in multiples) + " (eta 2)",
                                scores, {n: total / len(scores) for n in scores}))
            break
    rows.append(Variant(f"final, the demo search's ({config.final_steps} steps, lr {config.learning_rate:g})",
                        study.scores(study.demo_final), study.cpu(study.demo_final)))
    rows.append(Variant(f"final, {config.final_steps} steps at lr {s.reference_lr:g}",
                        study.scores(study.quick_final), study.cpu(study.quick_final)))
    if s.short_steps:
        short = lambda n: study.final(n, s.short_steps)  # noqa: E731
        rows.append(Variant(f"final, {s.short_steps} steps", study.scores(short), study.cpu(short)))
    return rows


def reference(study) -> tuple[int, dict[str, float], str]:
    """(steps, {candidate: AP}, why) of the trained reference the variants are ranked against."""
    s = study.settings
    full = study.scores(lambda n: study.final(n, s.reference_steps))
    if not s.short_steps:
        return s.reference_steps, full, "the FCOS default schedule"
    agrees = study.short_agrees()
    short = study.scores(lambda n: study.final(n, s.short_steps))
    noise = study.seed_noise(s.short_steps)
    pairs = (f"every pair of the subset it separates by more than one seed's noise ({100 * noise:.1f} AP, sqrt(2) "
             "times focal's seed standard deviation)" if noise else "every pair of the subset")
    if agrees:
        return s.short_steps, short, f"it orders {pairs} as {s.reference_steps} steps do, so it stands in for them"
    if agrees is None:
        return s.short_steps, short, (f"provisional: {s.reference_steps}-step results are in for {len(full)} of "
                                      f"the {s.subset} subset candidates, not yet enough to check it")
    return s.reference_steps, full, f"{s.short_steps} steps do not order {pairs} as {s.reference_steps} steps do"


def _tau(agreed) -> str:
    if math.isnan(agreed.kendall):
        return "-"
    interval = "" if math.isnan(agreed.kendall_low) else f" [{agreed.kendall_low:+.2f}, {agreed.kendall_high:+.2f}]"
    return f"{agreed.kendall:+.2f}{interval}"


def _number(value: float, digits: int = 2, sign: bool = True) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:{'+' if sign else ''}.{digits}f}"


def verdicts(scores: dict[str, float], trained: dict[str, float]) -> tuple[int, int]:
    """(agreeing, compared): candidates the score puts on the same side of the baseline as the trained AP does."""
    names = [n for n in common(scores, trained) if n != BASELINE]
    if BASELINE not in common(scores, trained):
        return 0, 0
    agree = sum((scores[n] > scores[BASELINE]) == (trained[n] > trained[BASELINE]) for n in names)
    return agree, len(names)


def _load_line(records: list[dict]) -> str:
    """How loaded the machine was while the trainings ran (their 1-minute load averages before and after)."""
    loads = [r[k] for r in records for k in ("load_before", "load_after") if r.get(k) is not None]
    if not loads:
        return ""
    return (f"1-minute load average around the trainings: median {statistics.median(loads):.1f}, highest "
            f"{max(loads):.1f} (other jobs shared the cores at times, so wall times vary; CPU seconds of the "
            "training process are the cost measure).")


def render(study, *, machine: str, command: str, resume: str, session_seconds: float) -> str:
    """The study's RESULTS.md section (what it holds so far, and what is left)."""
    s, config = study.settings, study.config
    records = [r for r in (study.record(t) for t in study.plan()) if r is not None]
    steps, trained, why = reference(study)
    label = f"final {steps}"
    rows = variants(study)
    current = next(v for v in rows if v.name == CURRENT)
    focal = study.baseline_aps(steps)
    focal_mean = statistics.mean(focal) if focal else math.nan
    rendered = f", this section rendered by `{command}`" if command != resume else ""
    lines = [
        SECTION, "",
        f"Machine: {machine}. Command: `{resume}`{rendered}. {_load_line(records)} "
        f"Trainings finished: {len(records)}, {sum(r['cpu_seconds'] for r in records) / 3600:.1f} CPU hours and "
        f"{sum(r['wall_seconds'] for r in records) / 3600:.1f} wall hours in all (this session "
        f"{session_seconds / 3600:.1f} h); MOS of {study.mos_cost['candidates']} candidates "
        f"{study.mos_cost['cpu_seconds'] / 60:.1f} CPU min.", "",
        f"Search settings: the demo preset (seed {study.seed}) as it was before this study (the demo search now "
        f"proxy-trains {SearchConfig.preset('demo').proxy_steps} steps): proxy {config.proxy_steps} steps of AdamW "
        f"{config.learning_rate:g}, batch {config.proxy_batch_size}, from the MOS warm start with the classifier "
        "re-initialized, AP on search_val; final trainings from scratch at batch "
        f"{config.final_batch_size}, AP on final_val; the reference is the FCOS default schedule "
        f"({s.reference_steps} steps, AdamW {s.reference_lr:g}, GIoU). Seeds: {study.seed} for every training, "
        f"{', '.join(str(study.seed + k) for k in range(s.baseline_seeds))} for the baseline's spread. "
        "AP in percent.", "",
    ]
    lines += candidate_table(study)
    lines += ["", f"Agreement with the trained schedules (n candidates; Kendall tau with its 95% bootstrap "
              f"interval). Reference for the last columns: **{label}** ({why}); focal there "
              f"{_mean_std(focal)}; a pick is the variant's best of {s.pool}-candidate pools of the other "
              "candidates (all such pools).", ""]
    full = study.scores(lambda n: study.final(n, s.reference_steps))
    header = ["score", "CPU min per candidate", f"n, rho, tau vs final {s.reference_steps}", f"n, rho, tau vs {label}",
              f"tau gain over the search's proxy vs {label}", "gain per extra CPU min",
              f"verdicts vs focal agree with {label}", "pick beats focal", "pick's AP (regret)"]
    body = []
    for variant in rows:
        versus_full, versus_ref = agreement(variant.scores, full), agreement(variant.scores, trained)
        n, gain, low, high = kendall_gain(current.scores, variant.scores, trained)
        extra = variant.cpu_minutes - current.cpu_minutes
        chosen = picks(variant.scores, trained, focal_mean, s.pool, exclude=(BASELINE,))
        body.append([
            variant.name, _number(variant.cpu_minutes, 2, sign=False),
            f"{versus_full.n}, {_number(versus_full.spearman)}, {_tau(versus_full)}",
            f"{versus_ref.n}, {_number(versus_ref.spearman)}, {_tau(versus_ref)}",
            "-" if variant is current or math.isnan(gain) else
            f"{gain:+.2f} [{_number(low)}, {_number(high)}] (n {n})",
            "-" if variant is current or math.isnan(gain) or not extra > 0 else _number(gain / extra, 3),
            "{} of {}".format(*verdicts(variant.scores, trained)),
            "-" if chosen is None else f"{100 * chosen.beats_baseline:.0f}% of {chosen.pools}",
            "-" if chosen is None else f"{percent(chosen.mean_trained)} ({percent(chosen.mean_regret)})",
        ])
    lines += table(header, body, text_columns=(0,))
    mos = agreement(rows[0].scores, current.scores)
    lines += ["", f"* MOS against the search's proxy: n {mos.n}, rho {_number(mos.spearman)}, tau {_tau(mos)}.",
              "* Verdicts vs focal: for each other trained candidate, whether the score puts it on the same side of "
              f"focal as {label} (seed {study.seed}) does.",
              *seed_lines(study, focal), *status_lines(study, resume)]
    return "\n".join(lines) + "\n"


def candidate_table(study) -> list[str]:
    """The per-candidate table: MOS, every proxy variant and every final schedule."""
    s = study.settings
    columns = [("MOS", None)]
    columns += [(f"proxy {m}x", lambda n, m=m: study.proxy(n, m)) for m in s.step_multiples]
    columns += [(f"lr x{k:g}", lambda n, k=k: study.proxy(n, lr_scale=k)) for k in s.lr_scales if k != 1]
    columns += [("normalized (scale)", lambda n: study.proxy(n, normalized=True))]
    if s.later_warm_start:
        columns += [(f"warm {s.later_warm_start}", lambda n: study.proxy(n, warm_start_steps=s.later_warm_start))]
    columns += [(f"final {study.config.final_steps} (demo)", study.demo_final),
                (f"final {study.config.final_steps} lr {s.reference_lr:g}", study.quick_final)]
    columns += [(f"final {steps}", lambda n, steps=steps: study.final(n, steps))
                for steps in (s.short_steps, s.reference_steps) if steps]
    body = []
    for candidate in study.candidates:
        cells = [candidate.name, code(candidate.infix)]
        for _, make in columns:
            if make is None:
                cells.append(percent(candidate.mos_score) + ("" if candidate.mos_passed else " (rejected)"))
                continue
            record = study.record(make(candidate.name))
            cell = "-" if record is None else percent(record["ap"]) if record["status"] == "ok" else "failed"
            if record is not None and "loss_scale" in record:
                cell += f" ({record['loss_scale']:.2g})"
            cells.append(cell)
        body.append(cells)
    origins = [f"{c.name}: {c.origin}" for c in study.candidates if c.origin.startswith("random")]
    return [*table(["candidate", "formula", *(name for name, _ in columns)], body, text_columns=(0, 1)), "",
            *(f"* {line}" for line in origins)]


def _mean_std(values: list[float]) -> str:
    if not values:
        return "not trained yet"
    if len(values) == 1:
        return f"{percent(values[0])} (1 seed)"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} ({len(values)} seeds)"


def seed_lines(study, focal: list[float]) -> list[str]:
    """The baseline's seed spread at each final schedule and the seeds a verdict needs."""
    s = study.settings
    lines = []
    for steps in sorted({s.short_steps, s.reference_steps} - {0}):
        values = study.baseline_aps(steps)
        lines.append(f"* Focal's seed spread at {steps} steps: {_mean_std(values)}.")
        if len(values) > 1:
            spread = statistics.stdev(values)
            needs = ", ".join(f"{d} AP: {seeds_needed(spread, d / 100)}" for d in (0.5, 1, 2))
            lines.append(f"  Seeds per loss for a difference to be two standard errors ({needs}).")
    return lines


def status_lines(study, command: str) -> list[str]:
    """Whether the study is complete, and what is left with the command that continues it."""
    missing = study.missing()
    if not missing:
        return ["* The study is complete."]
    kinds: dict[str, int] = {}
    for training in missing:
        key = f"{training.kind} {training.steps} steps"
        kinds[key] = kinds.get(key, 0) + 1
    left = ", ".join(f"{count} x {key}" for key, count in kinds.items())
    return [f"* Not finished: {len(missing)} planned trainings are left ({left}; "
            f"{sum(t.steps for t in missing):,} steps). `{command}` continues it where it stopped."]
