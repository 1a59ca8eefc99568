"""Detector training benchmark on the built-in shapes dataset: throughput, AP of two loss pairs, COCOeval time.

    python benchmarks/detector_training.py [--steps N] [--batch-size B] [--seed S] [--write]

1. Training throughput of the default FCOS config at 128x128 (images/s after the compiling step).
2. The default schedule trained with focal + GIoU and with the CSE-Autoloss-B pair, evaluated on final_val.
3. COCOeval time on final_val (perfect detections, so every ground truth is matched).

With ``--write`` the section "## Detector training (FCOS, built-in shapes)" of benchmarks/RESULTS.md is
replaced (or appended); other sections are left as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoloss.loss_specs import resolve_cls_loss, resolve_reg_loss  # noqa: E402
from autoloss.markdown import percent  # noqa: E402
from benchmarks.results_file import command_line, machine_line, publish  # noqa: E402
from detection.batching import iterate_batches  # noqa: E402
from detection.datasets import load_dataset  # noqa: E402
from detection.evaluation import evaluate_detections  # noqa: E402
from detection.experiment import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_OPTIMIZER,
    DEFAULT_STEPS,
    make_config,
    run_experiment,
)
from detection.training import train  # noqa: E402

SECTION = "## Detector training (FCOS, built-in shapes)"
LOSS_PAIRS = (("focal", "giou"), ("cse_b_cls", "cse_b_reg"))
COLUMNS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "mAP50_voc")


def measure_throughput(batch_size: int, steps: int, seed: int) -> dict:
    """Return images/s after compile, compile seconds and batch size of the default config at 128x128."""
    data = load_dataset("shapes", split="train", image_size=128)
    config = make_config(data.num_classes, 128)
    batches = iterate_batches(data, batch_size, seed=seed, steps=steps)
    result = train(config, batches, steps=steps, optimizer=DEFAULT_OPTIMIZER, seed=seed, progress=False)
    return {
        "images_per_second": result.images_per_second,
        "compile_seconds": result.compile_seconds,
        "batch_size": batch_size,
        "steps": steps,
    }


def measure_cocoeval() -> dict:
    """Return the COCOeval seconds of perfect detections on the final_val split."""
    data = load_dataset("shapes", split="final_val", image_size=128)
    classes = data.labels
    started = time.perf_counter()
    metrics = evaluate_detections(data, data.boxes, data.valid.astype("float32"), classes, data.valid)
    return {"images": len(data), "seconds": time.perf_counter() - started, "AP": metrics["AP"]}


def train_loss_pair(cls_name: str, reg_name: str, *, steps: int, batch_size: int, seed: int, out_dir: str) -> dict:
    """Return the result of the default schedule trained with one (cls, reg) loss pair."""
    cls_spec, reg_spec = resolve_cls_loss(cls_name), resolve_reg_loss(reg_name)
    result = run_experiment(
        cls_loss=cls_spec.fn,
        reg_loss=reg_spec.fn,
        alpha_balance=cls_spec.alpha_balance,
        loss_descriptions={"cls": cls_spec.description, "reg": reg_spec.description},
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        out_dir=out_dir,
    )
    return {"pair": f"{cls_name} + {reg_name}", **result.to_dict()}


def render(command: str, machine: str, throughput: dict, runs: list[dict], cocoeval: dict) -> str:
    """Return the RESULTS.md section as markdown."""
    lines = [
        SECTION,
        "",
        f"Machine: {machine}. Command: `{command}`",
        "",
        f"* Training throughput, default config (tiny preset) at 128x128, batch {throughput['batch_size']}: "
        f"**{throughput['images_per_second']:.0f} images/s** after compile (target >= 100); "
        f"compile {throughput['compile_seconds']:.1f} s; {throughput['steps']} steps.",
        f"* COCOeval on final_val ({cocoeval['images']} images, perfect detections): "
        f"**{cocoeval['seconds']:.2f} s**.",
        "",
        "Default schedule on shapes train, evaluated on final_val (AP in percent):",
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


def main() -> None:
    """Run the benchmark; print the section, and write it into RESULTS.md with --write."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps of the AP runs")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throughput-steps", type=int, default=60)
    parser.add_argument("--write", action="store_true", help="replace this benchmark's section of RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    command = command_line("benchmarks.detector_training")
    throughput = measure_throughput(args.batch_size, args.throughput_steps, args.seed)
    print(f"throughput: {throughput}", flush=True)
    cocoeval = measure_cocoeval()
    print(f"cocoeval: {cocoeval}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for cls_name, reg_name in LOSS_PAIRS:
            out_dir = os.path.join(scratch, f"{cls_name}-{reg_name}")
            runs.append(train_loss_pair(cls_name, reg_name, steps=args.steps, batch_size=args.batch_size,
                                        seed=args.seed, out_dir=out_dir))  # fmt: skip
            print(f"{runs[-1]['pair']}: {runs[-1]['metrics']}", flush=True)
    publish(render(command, machine, throughput, runs, cocoeval), args.write)


if __name__ == "__main__":
    main()
