"""Proxy fidelity: does the search's proxy (and which cheaper or longer variant of it) rank losses like the trained
schedule? A resumable study of sigmoid-form (FCOS classification) candidates.

    python -m benchmarks.proxy_fidelity [--preset demo|smoke] [--work-dir DIR] [--hours H] [--seed S]
        [--report-only] [--write]

For each candidate (``benchmarks.fidelity_candidates``: the zoo's sigmoid losses, winners of earlier demo
searches, MOS-passed random candidates of the search's own generator) it measures its MOS score (the demo
search's simulator), proxy trainings (``benchmarks.fidelity_trainings``: the demo search's proxy task, and
variants of it: 2x and 4x the steps, other learning rates, a gradient-normalized loss, a later warm start)
and final trainings at the FCOS default schedule (6000 steps, AdamW 5e-3, GIoU, AP on final_val) and at a
shorter one (3000 steps) that stands in for it when it orders a subset of at least five the same way
(every pair it separates by more than one seed's noise).
``benchmarks.fidelity_report`` turns them into rank correlations, costs and the section of RESULTS.md.

Trainings run one at a time, most informative first (:func:`plan`); each writes a JSON record in the records
folder (a final training also its run folder with checkpoints in the work folder), which a rerun reuses, so an
interruption loses at most one proxy training, or the steps of a final one since its last checkpoint. The
records of the demo study are committed (``benchmarks/records/``): the study takes many CPU hours, and a
fresh clone continues it where it stopped.
``--hours`` stops starting trainings after that much wall time; the section then says what is left.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

from autoloss.search_config import SearchConfig
from autoloss.training_tasks import make_simulator
from benchmarks.fidelity_candidates import BASELINE, FOUND_BY_DEMO_SEARCHES, ZOO, StudyCandidate, study_candidates
from benchmarks.fidelity_trainings import Training, TrainingStore, run_training
from benchmarks.rank_agreement import common, same_order
from benchmarks.results_file import command_line, machine_line, publish
from detection.checkpoints import write_atomically
from detection.detectors import get_detector

CANDIDATES_FILE = "candidates.json"
RECORDS = "benchmarks/records/proxy_fidelity"  # the study's records, committed as it progresses


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """What the study trains; ``search`` overrides the demo preset of the search whose proxy is studied."""

    search: dict = dataclasses.field(default_factory=dict)
    zoo: tuple[str, ...] = ZOO
    found: tuple[tuple[str, str], ...] = FOUND_BY_DEMO_SEARCHES
    random_candidates: int = 5
    random_pool: int = 128  # generation-0 candidates simulated to draw them from
    # proxy lengths, in units of the search's proxy_steps; 8x (1200 steps) would cost more than the demo's 1000-step
    # final, which the study measures from scratch anyway
    step_multiples: tuple[int, ...] = (1, 2, 4)
    lr_scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # proxy learning rates, times the search's
    later_warm_start: int = 3000  # steps of the later warm start (0: not measured)
    reference_steps: int = 6000  # the trained schedule (FCOS default)
    reference_lr: float = get_detector("fcos").default_optimizer.learning_rate
    short_steps: int = 3000  # the shorter reference checked against it (0: none)
    subset: int = 5  # candidates trained at both, the baseline among them
    baseline_seeds: int = 3  # seeds of the baseline at the reference schedule (its seed spread)
    pool: int = 9  # candidates per pool of a search's pick (the demo search proxy-trains 3 x 3)


SMOKE_DATA = "shapes:train=32,search_val=8,final_val=8,image_size=64"
PRESETS = {
    # the proxy under study: the demo preset's as it was before this study moved it to 300 steps
    "demo": StudySettings(search={"proxy_steps": 150}),
    # checks that every stage runs, in minutes; its numbers mean nothing
    "smoke": StudySettings(
        search={"data": SMOKE_DATA, "image_size": 64, "proxy_steps": 2, "proxy_batch_size": 2,
                "final_batch_size": 2, "final_steps": 2,
                "mos": {"warm_start_steps": 2, "warm_start_batch_size": 2, "steps": 2, "batch_size": 4,
                        "min_relative_ap": 0.0}},
        zoo=("focal", "bce"), found=FOUND_BY_DEMO_SEARCHES[:1], random_candidates=1, random_pool=8,
        step_multiples=(1, 2),
        lr_scales=(1.0, 2.0), later_warm_start=4, reference_steps=4, short_steps=2, subset=3, baseline_seeds=2,
        pool=2),
}


class Study:
    """The study's settings, candidates and finished trainings in one work folder."""

    def __init__(self, settings: StudySettings, work_dir: Path, seed: int = 0, records: Path | None = None):
        self.settings, self.work_dir, self.seed = settings, Path(work_dir), seed
        self.records = Path(records) if records is not None else self.work_dir
        self.config = SearchConfig.preset("demo", seed=seed, **settings.search)
        self.store = TrainingStore(self.records)
        self.candidates: list[StudyCandidate] = []
        self.mos_cost: dict = {}

    # --- candidates and MOS ----------------------------------------------------------------------

    def load_candidates(self, simulator_factory=None) -> None:
        """Read the candidates and MOS outcomes, or choose and simulate them once (then written)."""
        path = self.records / CANDIDATES_FILE
        if path.is_file():
            stored = json.loads(path.read_text())
            self.candidates = [StudyCandidate.from_dict(c) for c in stored["candidates"]]
            self.mos_cost = stored["mos_cost"]
            return
        print("choosing the candidates and simulating them (MOS, the demo search's simulator)", flush=True)
        simulator = (simulator_factory or (lambda: make_simulator(self.config, "cls")))()
        s = self.settings
        self.candidates, self.mos_cost = study_candidates(self.config, simulator, zoo=s.zoo, found=s.found,
                                                          random_count=s.random_candidates,
                                                          random_pool_size=s.random_pool)
        text = json.dumps({"candidates": [c.to_dict() for c in self.candidates], "mos_cost": self.mos_cost},
                          indent=1)
        write_atomically(path, text.encode())
        for c in self.candidates:
            print(f"  {c.name}: MOS {'-' if c.mos_score is None else f'{100 * c.mos_score:.1f}'} "
                  f"({'passed' if c.mos_passed else 'rejected'}) {c.infix}", flush=True)

    @property
    def names(self) -> list[str]:
        """The candidates' names, in study order."""
        return [c.name for c in self.candidates]

    def candidate(self, name: str) -> StudyCandidate:
        """The candidate called ``name``."""
        return next(c for c in self.candidates if c.name == name)

    # --- trainings -------------------------------------------------------------------------------

    def proxy(self, name: str, multiple: int = 1, lr_scale: float = 1.0, **options) -> Training:
        """A proxy training of ``name``: ``multiple`` x the search's steps at ``lr_scale`` x its rate."""
        return Training(name, "proxy", self.config.proxy_steps * multiple, self.config.learning_rate * lr_scale,
                        self.seed, **options)

    def final(self, name: str, steps: int, seed: int | None = None, learning_rate: float | None = None) -> Training:
        """A final training of ``name`` (from scratch, final_val) at the reference learning rate by default."""
        return Training(name, "final", steps, learning_rate or self.settings.reference_lr,
                        self.seed if seed is None else seed)

    def demo_final(self, name: str) -> Training:
        """The demo search's own final training of ``name`` (its final_steps at its learning rate)."""
        return self.final(name, self.config.final_steps,
                          learning_rate=self.config.final_learning_rate or self.config.learning_rate)

    def quick_final(self, name: str) -> Training:
        """The demo search's final steps at the reference learning rate: a candidate final schedule of the search."""
        return self.final(name, self.config.final_steps)

    def record(self, training: Training) -> dict | None:
        """The stored result of ``training``, or None."""
        return self.store.get(training)

    def ap(self, training: Training) -> float | None:
        """AP of a finished training (a failed one scores 0, as the search ranks it last); None if not run."""
        record = self.record(training)
        if record is None:
            return None
        return record["ap"] if record["status"] == "ok" and record["ap"] is not None else 0.0

    def scores(self, make) -> dict[str, float]:
        """{candidate: AP} of the trainings ``make(name)`` that have finished."""
        values = {name: self.ap(make(name)) for name in self.names}
        return {name: value for name, value in values.items() if value is not None}

    def cpu(self, make) -> dict[str, float]:
        """{candidate: CPU seconds} of the finished trainings ``make(name)``."""
        records = {name: self.record(make(name)) for name in self.names}
        return {name: r["cpu_seconds"] for name, r in records.items() if r is not None}

    # --- the order of the work -------------------------------------------------------------------

    def reference_subset(self) -> list[str] | None:
        """The candidates trained at both final schedules: the baseline, the first found loss, and the
        others' proxy-best, proxy-worst and proxy-median; None until every candidate has its proxy AP."""
        proxy = self.scores(self.proxy)
        if len(proxy) < len(self.names):
            return None
        chosen = [BASELINE] + [name for name, _ in self.settings.found[:1]]
        rest = sorted((n for n in self.names if n not in chosen), key=lambda n: (-proxy[n], n))
        for index in (0, len(rest) - 1, (len(rest) - 1) // 2, 1, len(rest) - 2):
            if len(chosen) < self.settings.subset and 0 <= index < len(rest) and rest[index] not in chosen:
                chosen.append(rest[index])
        return chosen

    def baseline_finals(self, steps: int) -> list[Training]:
        """The baseline's final trainings at ``steps`` over its seeds (the study's seed first)."""
        return [self.final(BASELINE, steps, seed=self.seed + k) for k in range(self.settings.baseline_seeds)]

    def baseline_aps(self, steps: int) -> list[float]:
        """The baseline's final APs at ``steps`` over the seeds that finished."""
        values = [self.ap(training) for training in self.baseline_finals(steps)]
        return [v for v in values if v is not None]

    def seed_noise(self, steps: int) -> float:
        """The standard deviation of a one-seed AP difference at ``steps``: sqrt(2) times the baseline's seed
        standard deviation there (0 below two seeds)."""
        values = self.baseline_aps(steps)
        return math.sqrt(2) * statistics.stdev(values) if len(values) > 1 else 0.0

    def short_agrees(self) -> bool | None:
        """Whether the short final schedule ranks the subset as the reference does: every pair it separates by
        more than one seed's noise (:meth:`seed_noise`; closer pairs are ties at one seed) in the same order.
        None until both are in for the whole subset (or without a short schedule)."""
        subset, s = self.reference_subset(), self.settings
        if not s.short_steps or subset is None:
            return None
        short = self.scores(lambda n: self.final(n, s.short_steps))
        full = self.scores(lambda n: self.final(n, s.reference_steps))
        if len(common(short, full, {n: 0.0 for n in subset})) < len(subset):
            return None
        return len(subset) >= 5 and same_order({n: short[n] for n in subset}, {n: full[n] for n in subset},
                                               self.seed_noise(s.short_steps))

    def plan(self) -> list[Training]:
        """Every training of the study, most informative first (a later entry may depend on earlier results).

        The search's proxy for everyone; then candidate by candidate, the subset first, its final training
        at the short schedule, at the demo search's own final schedule (whose verdict the search reports) and at
        its steps with the reference learning rate (a cheaper final schedule the search could use), and
        the cheap proxy variants (2x steps, other learning rates, normalized loss, the later warm start), so
        that wherever the study stops every candidate with a trained AP has every cheap score; then the
        baseline's other seeds, the subset and the baseline's other seeds at the full schedule, the longer
        proxies, the later warm start of the others, and the full schedule for everyone if the short one disagrees.
        """
        s, names = self.settings, self.names
        order = [self.proxy(n) for n in names]
        subset = self.reference_subset()
        if subset is None:
            return order
        screen = s.short_steps or s.reference_steps
        for n in subset + [n for n in names if n not in subset]:
            order += [self.final(n, screen), self.demo_final(n), self.quick_final(n)]
            order += [self.proxy(n, 2)] if 2 in s.step_multiples else []
            order += [self.proxy(n, lr_scale=k) for k in s.lr_scales if k != 1]
            order.append(self.proxy(n, normalized=True))
            if s.later_warm_start:
                order.append(self.proxy(n, warm_start_steps=s.later_warm_start))
        order += self.baseline_finals(screen)[1:]
        if s.short_steps:
            order += [self.final(n, s.reference_steps) for n in subset]
            order += self.baseline_finals(s.reference_steps)[1:]
        order += [self.proxy(n, m) for m in s.step_multiples if m > 2 for n in names]
        if s.later_warm_start:
            order += [self.proxy(n, warm_start_steps=s.later_warm_start) for n in names]  # those not in yet
        if s.short_steps and self.short_agrees() is False:
            order += [self.final(n, s.reference_steps) for n in names if n not in subset]
        return list(dict.fromkeys(order))

    def missing(self) -> list[Training]:
        """The planned trainings not finished yet."""
        return [t for t in self.plan() if self.record(t) is None]

    def run(self, hours: float | None = None, trainer=run_training) -> bool:
        """Train what is missing, one at a time, until done or ``hours`` passed; True when everything is done."""
        started = time.perf_counter()
        while True:
            missing = self.missing()
            if not missing:
                return True
            if hours is not None and time.perf_counter() - started > 3600 * hours:
                print(f"stopping after {hours:g} h: {len(missing)} trainings left", flush=True)
                return False
            training = missing[0]
            done = len(self.plan()) - len(missing)
            print(f"[{done + 1}/{len(self.plan())}] {training.describe()} ...", flush=True)
            record = trainer(training, self.candidate(training.candidate).loss_entry(), self.config, self.work_dir)
            self.store.put(record)
            ap = "failed: " + str(record["reason"]) if record["status"] != "ok" else f"AP {100 * record['ap']:.1f}"
            print(f"    {ap}; CPU {record['cpu_seconds']:.0f} s, wall {record['wall_seconds']:.0f} s, load "
                  f"{record['load_before']:.1f} -> {record['load_after']:.1f}", flush=True)


def main(argv: list[str] | None = None) -> str:
    """Run (or continue) the study, then print its section; ``--write`` replaces it in RESULTS.md."""
    from benchmarks.fidelity_report import render

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--work-dir", default="runs/proxy-fidelity",
                        help="folder of the final trainings' run folders (checkpoints)")
    parser.add_argument("--records", help="folder of the candidates and one JSON record per finished training "
                        f"(default: {RECORDS}/PRESET-seedSEED, kept in the repository so that the study resumes "
                        "from a fresh clone)")
    parser.add_argument("--hours", type=_positive_hours, help="start no training after this many hours")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search settings, candidates and trainings")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report what the folder holds")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    machine, started = machine_line(), time.perf_counter()
    records = Path(args.records or f"{RECORDS}/{args.preset}-seed{args.seed}")
    study = Study(PRESETS[args.preset], Path(args.work_dir), args.seed, records)
    if args.report_only and not (records / CANDIDATES_FILE).is_file():
        parser.error(f"--report-only: {records} holds no study yet ({CANDIDATES_FILE} is missing)")
    study.load_candidates()
    if not args.report_only:
        study.run(args.hours)
    command = command_line("benchmarks.proxy_fidelity", argv)
    given = sys.argv[1:] if argv is None else argv
    resume = command_line("benchmarks.proxy_fidelity", [a for a in given if a not in ("--report-only", "--write")])
    section = render(study, machine=machine, command=command, resume=resume,
                     session_seconds=time.perf_counter() - started)
    return publish(section, args.write)


def _positive_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of hours; write e.g. 6 or 0.5")
    return value


if __name__ == "__main__":
    main()
