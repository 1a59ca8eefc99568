"""Faster R-CNN on the built-in shapes dataset: training throughput and AP of loss pairs (standalone loop).

    python benchmarks/faster_rcnn_training.py [--steps N] [--batch-size B] [--pairs ce+giou,cse_a] [--seed S] [--write]

Trains the tiny default config at 128x128 with a plain jitted AdamW step over
``faster_rcnn_loss`` (the FCOS optimizer settings of ``detection.experiment``: AdamW 2e-3,
warmup, step decay, clipping), reports images/s after the compiling step, then evaluates on
final_val with ``predict`` + ``evaluate_detections``.

Loss pairs: ``ce+l1`` and ``ce+giou`` (the paper's baselines), and ``cse_a``, CSE-Autoloss-A
written out from its authors' string (DESIGN.md): cls ``-dot((1 + sin w) y, log softmax x)``,
reg ``(1 - i/u) + (1 - (i + 2)/e)``.

The reference numbers of these pairs come from the project's experiment path
(``detection.experiment.run_experiment``, what ``autoloss train --detector faster-rcnn`` runs), over
several seeds: rows of ``python -m benchmarks.loss_combination``. With ``--write`` this script
replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_file import machine_line, write_section  # noqa: E402
from detection.batching import iterate_batches, iterate_eval_batches  # noqa: E402
from detection.datasets import load_dataset  # noqa: E402
from detection.evaluation import evaluate_detections, format_ap_table  # noqa: E402
from detection.experiment import DEFAULT_OPTIMIZER  # noqa: E402
from detection.faster_rcnn import FasterRCNNConfig, init_params, predict  # noqa: E402
from detection.faster_rcnn_loss import faster_rcnn_loss  # noqa: E402
from detection.optim import make_optimizer  # noqa: E402

SECTION = "## Detector training (Faster R-CNN, built-in shapes)"
COLUMNS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "mAP50_voc")


def cse_a_cls(x, y, w):
    """CSE-Autoloss-A classification: ``-dot((1 + sin w) y, log softmax x)``."""
    return -jnp.sum((1.0 + jnp.sin(w)) * y * jax.nn.log_softmax(x, axis=-1), axis=-1)


def cse_a_reg(i, u, e):
    """CSE-Autoloss-A regression: ``(1 - i/u) + (1 - (i + 2)/e)``."""
    return (1.0 - i / u) + (1.0 - (i + 2.0) / e)


LOSS_PAIRS = {
    "ce+l1": ("cross_entropy", "l1"),
    "ce+giou": ("cross_entropy", "giou"),
    "cse_a": (cse_a_cls, cse_a_reg),
}


def train(config, data, *, cls_loss, reg_loss, steps, batch_size, seed):
    """Return trained params, images/s after the first step, and the first step's seconds."""
    transform = make_optimizer(DEFAULT_OPTIMIZER, steps)

    @jax.jit
    def step(params, opt_state, batch, key):
        loss = lambda p: faster_rcnn_loss(p, batch, key, config, cls_loss=cls_loss, reg_loss=reg_loss)
        (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = transform.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    init_key, key = jax.random.split(jax.random.key(seed))
    params = init_params(config, init_key)
    opt_state = transform.init(params)
    compile_seconds, timed_seconds, timed_images = 0.0, 0.0, 0
    for index, batch in enumerate(iterate_batches(data, batch_size, seed=seed, steps=steps)):
        started = time.perf_counter()
        params, opt_state, metrics = step(params, opt_state, batch, jax.random.fold_in(key, index))
        values = {k: float(v) for k, v in metrics.items()}
        elapsed = time.perf_counter() - started
        if index == 0:
            compile_seconds = elapsed
        else:
            timed_seconds, timed_images = timed_seconds + elapsed, timed_images + batch_size
        if not np.isfinite(values["loss"]):
            raise RuntimeError(f"training diverged at step {index + 1}: {values}")
        if (index + 1) % max(steps // 10, 1) == 0:
            print(f"step {index + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(values.items())), flush=True)
    return params, timed_images / max(timed_seconds, 1e-9), compile_seconds


def evaluate(params, config, data, batch_size=32) -> dict:
    """Return the COCO metrics of ``params`` on ``data``."""
    parts = []
    for batch, _, count in iterate_eval_batches(data, batch_size):
        found = jax.device_get(predict(params, batch["images"], config))
        parts.append(tuple(np.asarray(a)[:count] for a in found))
    arrays = [np.concatenate(p) for p in zip(*parts, strict=True)]
    return evaluate_detections(data, *arrays, max_per_image=config.max_detections)


def render(command: str, machine: str, runs: dict[str, dict]) -> str:
    """Return the RESULTS.md section: one row per loss pair with its speed and AP (percent)."""
    lines = [
        SECTION,
        "",
        f"Machine: {machine}. Command: `{command}` (tiny default config, 128x128, the FCOS default optimizer; "
        "trained on shapes train, evaluated on final_val).",
        "",
        "| loss pair | steps | images/s | train minutes | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, run in runs.items():
        cells = [f"{100 * run['metrics'][column]:.1f}" for column in COLUMNS]
        lines.append(f"| {name} | {run['steps']} | {run['images_per_second']:.1f} | {run['minutes']:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--pairs", default="ce+giou,cse_a", help=f"comma-separated, of {', '.join(LOSS_PAIRS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    machine = machine_line()
    command = "python benchmarks/faster_rcnn_training.py " + " ".join(sys.argv[1:])
    train_data = load_dataset("shapes", split="train", image_size=128)
    val_data = load_dataset("shapes", split="final_val", image_size=128)
    config = FasterRCNNConfig(num_classes=train_data.num_classes, image_size=128)
    rows, runs = {}, {}
    for name in args.pairs.split(","):
        cls_loss, reg_loss = LOSS_PAIRS[name]
        started = time.perf_counter()
        params, speed, compile_seconds = train(
            config,
            train_data,
            cls_loss=cls_loss,
            reg_loss=reg_loss,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
        )
        minutes = (time.perf_counter() - started) / 60
        print(f"{name}: {speed:.1f} images/s after compile ({compile_seconds:.1f} s), {minutes:.1f} min", flush=True)
        rows[name] = evaluate(params, config, val_data)
        runs[name] = {"metrics": rows[name], "steps": args.steps, "images_per_second": speed, "minutes": minutes}
        print(format_ap_table({name: rows[name]}), flush=True)
    print(format_ap_table(rows))
    if args.write:
        write_section(render(command.strip(), machine, runs))


if __name__ == "__main__":
    main()
