"""Backbone benchmark: FCOS training throughput with ResNet-18/50 backbones in float32 and bfloat16, and the time
to import pretrained backbone weights.

    python -m benchmarks.backbone_throughput [--image-size 128] [--batch-size 8] [--steps 10]
        [--backbones resnet18,resnet50] [--precisions float32,bfloat16] [--write]

Throughput: the FCOS preset of each backbone with pretrained-backbone settings (frozen BatchNorm, frozen stem
and first stage), one jitted train step (forward, backward, AdamW update) on a fixed synthetic batch of
``--batch-size`` images of ``--image-size`` pixels; images/s over ``--steps`` steps after the compiling one.
On a CPU, bfloat16 is emulated and slower; the option is meant for GPUs and TPUs.

Weight import: a state dict in torchvision's layout with random values (no download) is written once as
``.npz``, ``.safetensors`` and, with torch installed, ``.pth``; the time of
:func:`detection.pretrained.load_backbone_params` (read the file, check names and shapes, transpose the kernels)
is the median of three reads.

The machine is shared: the section states the load average before the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import safetensors.numpy

from benchmarks.results_file import command_line, machine_line, publish
from detection.backbone import BACKBONES
from detection.detectors import detector_of
from detection.experiment_spec import ModelSpec
from detection.optim import OptimizerConfig
from detection.pretrained import PRETRAINED_BACKBONE, backbone_template, load_backbone_params, torchvision_names
from detection.training import create_train_state, data_parallel_mesh, make_train_step, replicate, shard_batch

SECTION = "## Backbone throughput (FCOS, ResNet-18/50, float32 and bfloat16)"
NUM_CLASSES = 8


def pretrained_model(backbone: str, precision: str = "float32") -> ModelSpec:
    """The FCOS preset of ``backbone`` as a pretrained backbone is trained (its weights are not needed here)."""
    return ModelSpec(preset=backbone, precision=precision, overrides=tuple(PRETRAINED_BACKBONE.items()))


def synthetic_batch(batch_size: int, size: int, seed: int = 0) -> dict:
    """A batch of random uint8 images with two boxes each (the detection batch contract)."""
    rng = np.random.default_rng(seed)
    boxes = np.tile(np.array([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.9]], np.float32) * size, (batch_size, 1, 1))
    return {
        "images": rng.integers(0, 256, (batch_size, size, size, 3), np.uint8),
        "boxes": boxes,
        "labels": rng.integers(0, NUM_CLASSES, (batch_size, 2)).astype(np.int32),
        "valid": np.ones((batch_size, 2), bool),
    }


def measure_step(backbone: str, precision: str, *, image_size: int, batch_size: int, steps: int) -> dict:
    """Images/s of one FCOS train step after compile, and the compile seconds."""
    config = pretrained_model(backbone, precision).config(NUM_CLASSES, image_size)
    optimizer = OptimizerConfig(learning_rate=1e-3, warmup_steps=0)
    detector = detector_of(config)
    mesh = data_parallel_mesh()
    state = replicate(create_train_state(config, optimizer, steps + 1, jax.random.key(0)), mesh)
    step = make_train_step(config, optimizer, steps + 1, detector.loss_options("focal", "giou"), mesh)
    batch, key = shard_batch(synthetic_batch(batch_size, image_size), mesh), jax.random.key(1)
    started = time.perf_counter()
    state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch, key)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - started
    return {
        "backbone": backbone,
        "precision": precision,
        "images_per_second": batch_size * steps / seconds,
        "compile_seconds": compile_seconds,
        "loss": float(metrics["loss"]),
    }


def random_state_dict(backbone: str) -> dict[str, np.ndarray]:
    """Random tensors under torchvision's names and shapes for ``backbone``, plus what torchvision adds."""
    config = pretrained_model(backbone).config(NUM_CLASSES, 64)
    leaves = {
        tuple(k.key for k in path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(backbone_template(config))
    }
    rng = np.random.default_rng(0)
    state = {}
    for name, path in torchvision_names(BACKBONES[backbone]).items():
        shape = leaves[path].shape
        shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape
        state[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    state["fc.weight"] = rng.normal(size=(1000, 2048 if BACKBONES[backbone].block == "bottleneck" else 512))
    state["fc.weight"] = state["fc.weight"].astype(np.float32)
    return state


def measure_import(backbone: str, folder: Path) -> list[dict]:
    """Median seconds of load_backbone_params per file format (.npz, .safetensors; .pth with torch installed)."""
    state = random_state_dict(backbone)
    config = pretrained_model(backbone).config(NUM_CLASSES, 64)
    files = [folder / f"{backbone}.npz", folder / f"{backbone}.safetensors"]
    np.savez(files[0], **state)
    safetensors.numpy.save_file(state, files[1])
    try:
        import torch

        files.append(folder / f"{backbone}.pth")
        torch.save({name: torch.from_numpy(value) for name, value in state.items()}, files[-1])
    except ImportError:
        pass
    rows = []
    for path in files:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            load_backbone_params(path, config)
            times.append(time.perf_counter() - started)
        rows.append(
            {
                "backbone": backbone,
                "format": path.suffix,
                "megabytes": path.stat().st_size / 2**20,
                "seconds": statistics.median(times),
            }
        )
    return rows


def render(args: argparse.Namespace, load: float, steps: list[dict], imports: list[dict]) -> str:
    """The RESULTS.md section."""
    lines = [
        SECTION,
        "",
        f"Machine: {machine_line()}. Command: `{command_line('benchmarks.backbone_throughput')}`",
        "",
        f"FCOS train step (frozen BatchNorm, frozen stem + stage 1, AdamW) at {args.image_size}x"
        f"{args.image_size}, batch {args.batch_size}, {args.steps} timed steps after the compiling one; "
        f"load average {load:.1f} before the run.",
        "",
        "| backbone | precision | images/s | compile s | loss |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['backbone']} | {r['precision']} | {r['images_per_second']:.1f} | {r['compile_seconds']:.1f} | "
        f"{r['loss']:.4f} |"
        for r in steps
    ]
    lines += [
        "",
        "Backbone weight import (read, check names and shapes, transpose kernels), median of 3:",
        "",
        "| backbone | file | MiB | seconds |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['backbone']} | {r['format']} | {r['megabytes']:.0f} | {r['seconds']:.3f} |" for r in imports]
    return "\n".join([*lines, ""])


def main(argv=None) -> None:
    """Measure and print the section (``--write`` also replaces it in benchmarks/RESULTS.md)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbones", default="resnet18,resnet50")
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    backbones, precisions = args.backbones.split(","), args.precisions.split(",")
    steps = [
        measure_step(backbone, precision, image_size=args.image_size, batch_size=args.batch_size, steps=args.steps)
        for backbone in backbones
        for precision in precisions
    ]
    with tempfile.TemporaryDirectory() as folder:
        imports = [row for backbone in backbones for row in measure_import(backbone, Path(folder))]
    publish(render(args, load, steps, imports), args.write)


if __name__ == "__main__":
    main()
