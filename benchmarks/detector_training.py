"""Detector training benchmark on the built-in shapes dataset: throughput and AP of each detector's loss pairs.

    python -m benchmarks.detector_training [--detector fcos|faster-rcnn] [--steps N] [--seeds 0,1]
        [--work-dir DIR] [--write]

For each detector (both by default), through the path ``autoloss train`` runs
(:func:`detection.experiment.run_experiment`):

1. Training throughput of the default (tiny) config at 128x128: images/s after the compiling step.
2. The detector's default schedule trained with each of its loss pairs, evaluated on final_val:
   FCOS with focal + GIoU and the CSE-Autoloss-B pair, Faster R-CNN with the paper's baselines
   CE + L1 and CE + GIoU and the CSE-Autoloss-A pair.
3. For FCOS, the COCOeval time on final_val (perfect detections, so every ground truth is matched).

Run folders go to ``--work-dir`` (a temporary folder by default); a folder that already holds a
finished run of the same settings is evaluated without training again. With ``--write`` each
detector's section of benchmarks/RESULTS.md is replaced (or appended).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from autoloss.loss_specs import losses_of, resolve_cls_loss, resolve_reg_loss
from autoloss.markdown import percent
from benchmarks.results_file import command_line, machine_line, publish
from detection.datasets import load_dataset
from detection.detectors import DETECTORS, get_detector
from detection.evaluation import evaluate_detections
from detection.experiment import make_config, run_experiment
from detection.experiment_spec import DEFAULT_BATCH_SIZE, ExperimentSpec, ModelSpec, Schedule
from detection.geometry import Geometry
from detection.pipeline import training_stream
from detection.training import train

SECTIONS = {
    "fcos": "## Detector training (FCOS, built-in shapes)",
    "faster-rcnn": "## Detector training (Faster R-CNN, built-in shapes)",
}
LOSS_PAIRS = {
    "fcos": (("focal", "giou"), ("cse_b_cls", "cse_b_reg")),
    "faster-rcnn": (("cross_entropy", "l1"), ("cross_entropy", "giou"), ("cse_a_cls", "cse_a_reg")),
}
COLUMNS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "mAP50_voc")


def measure_throughput(detector: str, batch_size: int, steps: int, seed: int) -> dict:
    """Return images/s after compile, compile seconds and batch size of ``detector``'s default config at 128x128."""
    data = load_dataset("shapes", split="train")
    config = make_config(data.num_classes, 128, detector=detector)
    optimizer = get_detector(detector).default_optimizer
    with training_stream(data, Geometry(128), batch_size=batch_size, seed=seed, steps=steps) as batches:
        result = train(config, batches, steps=steps, optimizer=optimizer, seed=seed, progress=False)
    return {
        "images_per_second": result.images_per_second,
        "compile_seconds": result.compile_seconds,
        "batch_size": batch_size,
        "steps": steps,
    }


def measure_cocoeval() -> dict:
    """Return the COCOeval seconds of perfect detections on the final_val split."""
    data = load_dataset("shapes", split="final_val")
    rows = np.repeat(np.arange(len(data)), np.diff(data.box_start))  # each box a detection of its own image
    boxes = np.zeros((len(data), data.max_boxes, 4), np.float32)
    labels = np.zeros((len(data), data.max_boxes), np.int32)
    valid = np.zeros((len(data), data.max_boxes), bool)
    slots = np.arange(len(rows)) - data.box_start[rows]
    boxes[rows, slots], labels[rows, slots], valid[rows, slots] = data.boxes, data.labels, True
    started = time.perf_counter()
    metrics = evaluate_detections(data, boxes, valid.astype("float32"), labels, valid)
    return {"images": len(data), "seconds": time.perf_counter() - started, "AP": metrics["AP"]}


def train_loss_pair(detector: str, cls_name: str, reg_name: str, *, steps: int, batch_size: int, seed: int,
                    out_dir: str) -> dict:
    """Return the result of ``detector``'s schedule trained with one (cls, reg) loss pair."""
    losses = losses_of(resolve_cls_loss(cls_name, get_detector(detector).cls_form), resolve_reg_loss(reg_name))
    spec = ExperimentSpec(model=ModelSpec(detector=detector), losses=losses,
                          schedule=Schedule(steps=steps, batch_size=batch_size, seed=seed))
    result = run_experiment(spec, out_dir)
    return {"pair": f"{cls_name} + {reg_name}", **result.to_dict()}


def render(detector: str, command: str, machine: str, throughput: dict, runs: list[dict],
           cocoeval: dict | None) -> str:
    """Return ``detector``'s RESULTS.md section as markdown."""
    lines = [
        SECTIONS[detector],
        "",
        f"Machine: {machine}. Command: `{command}`",
        "",
        f"* Training throughput, default config (tiny preset) at 128x128, batch {throughput['batch_size']}: "
        f"**{throughput['images_per_second']:.0f} images/s** after compile; "
        f"compile {throughput['compile_seconds']:.1f} s; {throughput['steps']} steps.",
    ]
    if cocoeval:
        lines.append(f"* COCOeval on final_val ({cocoeval['images']} images, perfect detections): "
                     f"**{cocoeval['seconds']:.2f} s**.")
    lines += [
        "",
        f"Default schedule ({describe_optimizer(get_detector(detector).default_optimizer)}) on shapes train, "
        "evaluated on final_val (AP in percent):",
        "",
        "| loss pair | seed | steps | batch | train minutes | images/s | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for run in runs:
        cells = [percent(run["metrics"].get(column)) for column in COLUMNS]
        lines.append(
            f"| {run['pair']} | {run['seed']} | {run['steps']} | {run['batch_size']} | "
            f"{run['train_seconds'] / 60:.1f} | {run['images_per_second']:.0f} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Minutes include compilation; evaluation (inference + COCOeval) is not included.", ""]
    return "\n".join(lines)


def describe_optimizer(optimizer) -> str:
    """One phrase for an optimizer config, e.g. ``AdamW 0.005, 200 warmup steps``."""
    name = {"adamw": "AdamW", "sgd": "SGD"}[optimizer.name]
    return f"{name} {optimizer.learning_rate:g}, {optimizer.warmup_steps} warmup steps"


def benchmark_detector(detector: str, args: argparse.Namespace, work_dir: str, command: str) -> str:
    """Run ``detector``'s part of the benchmark; return its section."""
    machine = machine_line()
    steps = args.steps or get_detector(detector).default_steps
    throughput = measure_throughput(detector, args.batch_size, args.throughput_steps, args.seeds[0])
    print(f"{detector} throughput: {throughput}", flush=True)
    cocoeval = measure_cocoeval() if detector == "fcos" else None
    runs = []
    for seed in args.seeds:
        for cls_name, reg_name in LOSS_PAIRS[detector]:
            out_dir = os.path.join(work_dir, f"{detector}-{cls_name}-{reg_name}-{steps}-seed{seed}")
            runs.append(train_loss_pair(detector, cls_name, reg_name, steps=steps, batch_size=args.batch_size,
                                        seed=seed, out_dir=out_dir))
            print(f"{detector} {runs[-1]['pair']} seed {seed}: {runs[-1]['metrics']}", flush=True)
    return render(detector, command, machine, throughput, runs, cocoeval)


def seed_list(text: str) -> list[int]:
    """The seeds of ``--seeds``: comma-separated non-negative integers."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds; write e.g. 0,1")
    return seeds


def main(argv: list[str] | None = None) -> list[str]:
    """Run the benchmark; print each section, write it into RESULTS.md with --write, and return the sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=sorted(DETECTORS), help="one detector (default: both)")
    parser.add_argument("--steps", type=int, help="training steps of the AP runs (default: the detector's schedule)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated seeds (default 0)")
    parser.add_argument("--throughput-steps", type=int, default=60)
    parser.add_argument("--work-dir", help="folder of the run folders (default: a temporary one)")
    parser.add_argument("--write", action="store_true", help="replace this benchmark's sections of RESULTS.md")
    args = parser.parse_args(argv)
    command = command_line("benchmarks.detector_training", argv)
    detectors = [args.detector] if args.detector else list(SECTIONS)
    with tempfile.TemporaryDirectory() as scratch:
        return [publish(benchmark_detector(detector, args, args.work_dir or scratch, command), args.write)
                for detector in detectors]


if __name__ == "__main__":
    main()
