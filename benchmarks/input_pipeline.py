"""Input pipeline benchmark: memory and throughput of the streaming pipeline on a large COCO-format set, its
cost on the built-in shapes data, and the AP of a training through it against another checkout.

    python -m benchmarks.input_pipeline [--images N] [--work-dir DIR] [--memory-steps S] [--write]
    python -m benchmarks.input_pipeline --parts ap --previous DIR [--ap-steps 1500] [--seeds 0,1] [--write]
    python -m benchmarks.input_pipeline --parts search --previous DIR [--write]

``large`` (default): writes once (then reuses, in ``--work-dir``) a COCO instances set of ``--images``
JPEG images, four in five 683x512 and one in five 512x683, each with 1-6 boxes of 5 classes. At
``--image-size 512`` (the tiny detector fitting the longer side into 512x512) it measures, side by side:
the pipeline's images/s with background threads and with 1 and 2 worker processes (after they started),
the tiny FCOS training step's consumption (images/s on preloaded batches of 16, after compile), and the
peak resident memory of ``autoloss train --data coco:... --image-size 512 --data-workers 2`` (the
summed RSS of the process and its workers, sampled every 0.2 s, evaluation on the held-out part included).

``shapes`` (default): on the built-in dataset at 128 px, what the data costs the search: decoding the
whole train split into memory, as each process did before the pipeline, against loading its index; and
the tiny FCOS training throughput on preloaded batches against the stream of the same batches.

``ap``: ``autoloss train --steps N --seed S`` on the built-in dataset with this checkout and with the
project checkout at ``--previous`` (e.g. an export of the commit before the pipeline), per seed, so the
streaming path's AP can be compared with the in-memory path's within seed noise.

``search``: the default ``autoloss search`` with ``--previous`` and with this checkout, one after the
other, each in a fresh cache holding only the generated dataset (so each run trains its warm start and
compiles as a first run does): wall time and peak summed resident memory of the search and its workers.

The machine is shared: every timing states the load average, and goals are ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from benchmarks.detector_training import seed_list
from benchmarks.results_file import command_line, machine_line, publish
from detection.datasets import load_dataset
from detection.experiment import make_config
from detection.geometry import Geometry
from detection.optim import OptimizerConfig
from detection.pipeline import training_stream
from detection.shapes import ensure_shapes_dataset
from detection.training import train

SECTIONS = {"large": "## Input pipeline: memory and throughput on 20,000 images",
            "shapes": "## Input pipeline: the built-in dataset",
            "ap": "## Input pipeline: AP through the stream and through the in-memory path",
            "search": "## Input pipeline: the default search before and after"}
CLASSES = ("box", "disc", "bar", "ring", "cross")
REPO = Path(__file__).resolve().parents[1]


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def _draw_image(task: tuple[int, Path]) -> list[dict]:
    """Write image ``number`` of the set (seeded by its number); return its annotations without ids."""
    number, folder = task
    rng = np.random.default_rng([7, number])
    width, height = (512, 683) if number % 5 == 4 else (683, 512)
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(-60, 60, 3)
    pixels = np.clip(rng.uniform(40, 200, 3) + ramp + np.zeros((height, 1, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 7))):
        w, h = (int(v) for v in rng.integers(24, 300, 2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        label = int(rng.integers(len(CLASSES)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if label in (0, 2) else draw.ellipse)([x, y, x + w, y + h], fill=colour)
        objects.append({"category_id": label + 1, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    image.save(folder / f"{number:06d}.jpg", quality=90)
    return objects


def write_coco_set(folder: Path, count: int) -> tuple[Path, Path]:
    """The annotation file and image folder of the generated set, written once (with a progress bar)."""
    annotation_path, image_dir = folder / f"instances-{count}.json", folder / "images"
    if annotation_path.is_file():
        return annotation_path, image_dir
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    tasks = [(number, image_dir) for number in range(count)]
    pool = multiprocessing.get_context("spawn").Pool(os.cpu_count()) if count > 256 else None  # JAX runs here: no fork
    drawn = pool.imap(_draw_image, tasks, chunksize=64) if pool else map(_draw_image, tasks)
    for number, objects in enumerate(tqdm(drawn, total=count, desc="write JPEG images", unit="image")):
        width, height = (512, 683) if number % 5 == 4 else (683, 512)
        images.append({"id": number + 1, "file_name": f"{number:06d}.jpg", "width": width, "height": height})
        annotations.extend({"id": len(annotations) + 1, "image_id": number + 1, **obj} for obj in objects)
    if pool:
        pool.close()
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    annotation_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return annotation_path, image_dir


def stream_rate(index, geometry: Geometry, workers: int, batches: int, batch_size: int = 16) -> dict:
    """Images/s the stream delivers with ``workers`` (0: threads), timed after its first batch."""
    started = time.perf_counter()
    with training_stream(index, geometry, batch_size=batch_size, seed=0, steps=batches + 1, workers=workers) as stream:
        next(stream)
        ready = time.perf_counter()
        for _ in range(batches):
            next(stream)
        seconds = time.perf_counter() - ready
    return {"workers": workers, "images_per_second": batches * batch_size / seconds,
            "start_seconds": ready - started, "load": _load()}


def training_rate(index, geometry: Geometry, steps: int, batch_size: int = 16) -> dict:
    """Images/s the tiny FCOS's training step consumes on preloaded batches (after the compiling step)."""
    with training_stream(index, geometry, batch_size=batch_size, seed=0, steps=min(steps, 4)) as stream:
        preloaded = list(stream)
    config = make_config(index.num_classes, geometry.canvases[0])
    result = train(config, lambda step: preloaded[step % len(preloaded)], steps=steps,
                   optimizer=OptimizerConfig(learning_rate=2e-3, warmup_steps=0), progress=False)
    return {"images_per_second": result.images_per_second, "compile_seconds": result.compile_seconds,
            "load": _load()}


def peak_memory(command: list[str], **popen) -> dict:
    """Run ``command`` (``popen``: more arguments of Popen); the peaks of the summed RSS and PSS (bytes) of it and
    all its descendants, sampled every 0.2 s. RSS counts the pages the processes share (Python, JAX's libraries)
    once per process; PSS splits them."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    peak = {"bytes": 0, "pss_bytes": 0, "processes": 0}

    def sample():
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                family = [root, *root.children(recursive=True)]
                memory = [member.memory_full_info() for member in family]
            except psutil.Error:
                continue
            total, shared_split = sum(m.rss for m in memory), sum(m.pss for m in memory)
            if total > peak["bytes"]:
                peak.update(bytes=total, processes=len(family))
            peak["pss_bytes"] = max(peak["pss_bytes"], shared_split)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    watcher.start()
    out, err = process.communicate()
    watcher.join()
    if process.returncode != 0:
        tail = "\n".join(err.replace("\r", "\n").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
    return {**peak, "seconds": time.perf_counter() - started, "report": json.loads(out), "load": _load()}


def benchmark_large(args, command: str) -> str:
    """The section measured on the generated 20,000-image set."""
    machine = machine_line()
    work = Path(args.work_dir)
    annotation_path, image_dir = write_coco_set(work, args.images)
    spec = f"coco:{annotation_path}:{image_dir}"
    index = load_dataset(spec, split="train")
    geometry = Geometry(512)
    rates = [stream_rate(index, geometry, workers, args.batches) for workers in (0, 1, 2)]
    for rate in rates:
        print(f"pipeline: {rate}", flush=True)
    consumed = training_rate(index, geometry, args.train_steps)
    print(f"training: {consumed}", flush=True)
    run_dir = tempfile.mkdtemp(prefix="pipeline-memory-", dir=work)
    memory = peak_memory([sys.executable, "-m", "autoloss", "train", "--data", spec, "--image-size", "512",
                          "--steps", str(args.memory_steps), "--data-workers", "2", "--out", run_dir, "--json"])
    print(f"memory: {memory['bytes'] / 2**30:.2f} GiB over {memory['processes']} processes", flush=True)
    in_memory = len(index) * 512 * 683 * 3 / 2**30
    datasets = memory["report"]["datasets"]
    lines = [
        SECTIONS["large"], "",
        f"Machine: {machine}. Command: `{command}`", "",
        f"A generated COCO-format set of {args.images:,} JPEG images (four in five 683x512, one in five 512x683; "
        f"1-6 boxes of 5 classes), {sum(f.stat().st_size for f in image_dir.iterdir()) / 2**20:.0f} MB on disk; "
        f"its training split ({len(index):,} images, a seeded 10% held out) at `--image-size 512` (the tiny "
        "detector's square canvas), batches of 16. The machine is shared: the load average is given per line.", "",
        "| what | images/s | ratio to the training step | start (s) | load |",
        "|---|---|---|---|---|",
    ]
    for rate in rates:
        name = "pipeline, background threads" if rate["workers"] == 0 else \
            f"pipeline, {rate['workers']} worker process{'es' if rate['workers'] > 1 else ''}"
        lines.append(f"| {name} | {rate['images_per_second']:.0f} | "
                     f"**{rate['images_per_second'] / consumed['images_per_second']:.1f}x** | "
                     f"{rate['start_seconds']:.1f} | {rate['load']} |")
    lines += [
        f"| tiny FCOS training step (preloaded batches) | {consumed['images_per_second']:.1f} | 1.0x | "
        f"{consumed['compile_seconds']:.0f} (compile) | {consumed['load']} |", "",
        f"Peak resident memory of `autoloss train --data coco:... --image-size 512 --steps {args.memory_steps} "
        f"--data-workers 2` and its {memory['processes'] - 1} child processes (the workers and multiprocessing's "
        f"resource tracker), summed: **{memory['bytes'] / 2**30:.2f} GiB** resident (RSS; "
        f"{memory['pss_bytes'] / 2**30:.2f} GiB proportional, PSS, which counts shared libraries once) "
        f"({memory['seconds']:.0f} s, {memory['load']}; "
        "training on "
        f"{datasets['train_images']:,} images, evaluation on the {datasets['eval_images']:,} held-out "
        f"`final_val` images included). The decoded images alone would take {in_memory:.1f} GiB in memory "
        "as 683x512 pixels (the in-memory form before the pipeline), and again in every proxy worker.", "",
    ]
    return "\n".join(lines)


def decode_all(index) -> tuple[float, int]:
    """Seconds and bytes of decoding every image of ``index`` into one array, as the loader before the pipeline did."""
    started = time.perf_counter()
    height, width = (int(v) for v in index.sizes.max(axis=0))
    pixels = np.zeros((len(index), height, width, 3), np.uint8)
    for row, path in enumerate(index.paths):
        with Image.open(path) as image:
            pixels[row, : image.height, : image.width] = np.asarray(image.convert("RGB"))
    return time.perf_counter() - started, pixels.nbytes


def benchmark_shapes(args, command: str) -> str:
    """The section measured on the built-in dataset: what the data costs the search's processes."""
    machine = machine_line()
    started = time.perf_counter()
    index = load_dataset("shapes", split="train")
    index_seconds = time.perf_counter() - started
    decode_seconds, decoded_bytes = decode_all(index)
    geometry, steps = Geometry(128), args.shapes_steps
    with training_stream(index, geometry, batch_size=16, seed=0, steps=steps) as stream:
        preloaded = list(stream)
    config = make_config(index.num_classes, 128)
    optimizer = OptimizerConfig(learning_rate=5e-3, warmup_steps=0)
    results = {}
    for name in ("preloaded", "stream", "preloaded again"):  # compile first, then alternate to share the load
        if name.startswith("preloaded"):
            results[name] = train(config, lambda step: preloaded[step], steps=steps, optimizer=optimizer,
                                  progress=False)
        else:
            with training_stream(index, geometry, batch_size=16, seed=0, steps=steps) as stream:
                results[name] = train(config, stream, steps=steps, optimizer=optimizer, progress=False)
        print(f"{name}: {results[name].images_per_second:.0f} images/s ({_load()})", flush=True)
    in_memory = (results["preloaded"].images_per_second + results["preloaded again"].images_per_second) / 2
    lines = [
        SECTIONS["shapes"], "",
        f"Machine: {machine}. Command: `{command}`", "",
        f"The built-in `shapes` train split ({len(index):,} PNG images, 128x128), as the search's processes "
        "(MOS warm start, each proxy worker, each final training) read it:", "",
        f"* Before the pipeline each process decoded the whole split into memory: {decode_seconds:.1f} s and "
        f"{decoded_bytes / 2**20:.0f} MB per process. Now it loads the index: {index_seconds:.1f} s, no pixels.",
        f"* Tiny FCOS training, batch 16, {steps} steps of the same batches: "
        f"{in_memory:.0f} images/s from batches preloaded in memory (mean of a run before and after), "
        f"{results['stream'].images_per_second:.0f} images/s from the stream (background threads decoding "
        f"beside the step): **{results['stream'].images_per_second / in_memory:.2f}x**. The search's 200-image "
        "`search_val` is decoded once per process and kept (`detection.pipeline.CACHE_BYTES`).",
        f"* {_load()} at the end.", "",
    ]
    return "\n".join(lines)


def checkout_cli(checkout: Path, *args: str, **env: str) -> tuple[list[str], dict]:
    """The command line and environment of ``autoloss ARGS`` run with the project at ``checkout`` (``env`` added)."""
    code = "import sys; from autoloss.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *args], {**os.environ, "PYTHONPATH": str(checkout), **env}


def train_ap(checkout: Path, seed: int, steps: int, out_dir: Path) -> dict:
    """The JSON report of ``autoloss train --steps steps --seed seed`` run with the project at ``checkout``."""
    command, env = checkout_cli(checkout, "train", "--steps", str(steps), "--seed", str(seed), "--out", str(out_dir),
                                "--json")
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"training at {checkout} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def benchmark_ap(args, command: str) -> str:
    """The section comparing the AP of one training through this checkout and through ``--previous``."""
    machine = machine_line()
    previous = Path(args.previous).resolve()
    rows = []
    for seed in args.seeds:
        for name, label, checkout in (("in memory (previous checkout)", "previous", previous),
                                      ("streaming (this checkout)", "stream", REPO)):
            report = train_ap(checkout, seed, args.ap_steps, Path(args.work_dir) / f"ap-{label}-{seed}-{args.ap_steps}")
            rows.append((name, seed, report))
            print(f"{name} seed {seed}: AP {report['metrics']['AP']:.4f} ({_load()})", flush=True)
    lines = [
        SECTIONS["ap"], "",
        f"Machine: {machine}. Command: `{command}`", "",
        f"`autoloss train --steps {args.ap_steps} --seed S` (tiny FCOS, focal + GIoU, built-in shapes, AP on "
        "`final_val` in percent) with this checkout and with the project before the pipeline "
        "(`--previous`, an export of the parent commit):", "",
        "| path | seed | AP | AP50 | AP75 | final loss | train minutes |", "|---|---|---|---|---|---|---|",
    ]
    for name, seed, report in rows:
        metrics = report["metrics"]
        lines.append(f"| {name} | {seed} | {100 * metrics['AP']:.2f} | {100 * metrics['AP50']:.2f} | "
                     f"{100 * metrics['AP75']:.2f} | {report['final_loss']:.4f} | {report['train_seconds'] / 60:.1f} |")
    aps = {name: [100 * report["metrics"]["AP"] for row_name, _, report in rows if row_name == name]
           for name, _, _ in rows}
    summary = "; ".join(f"{name}: mean AP {statistics.fmean(values):.2f}, seed spread (max - min) "
                        f"{max(values) - min(values):.2f}" for name, values in aps.items())
    lines += ["", f"Over the seeds: {summary}.", ""]
    return "\n".join(lines)


def timed_search(checkout: Path, label: str, work: Path) -> dict:
    """Wall time and peak memory of the default ``autoloss search`` of ``checkout`` in a fresh cache under ``work``."""
    dataset = ensure_shapes_dataset(None)["train"][0].parent
    cache = work / f"search-cache-{label}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(dataset, cache / dataset.name)
    run_dir = work / f"search-{label}"
    shutil.rmtree(run_dir, ignore_errors=True)
    command, env = checkout_cli(checkout, "search", "--out", str(run_dir), "--json", AUTOLOSS_CACHE=str(cache))
    return peak_memory(command, cwd=checkout, env=env)


def benchmark_search(args, command: str) -> str:
    """The section timing the default search with ``--previous`` and with this checkout."""
    machine = machine_line()
    runs = {}
    for label, checkout in (("previous", Path(args.previous).resolve()), ("this", REPO)):
        runs[label] = timed_search(checkout, label, Path(args.work_dir).resolve())
        print(f"{label}: {runs[label]['seconds'] / 60:.1f} min, {runs[label]['bytes'] / 2**30:.2f} GiB "
              f"({runs[label]['load']})", flush=True)
    lines = [
        SECTIONS["search"], "",
        f"Machine: {machine}. Command: `{command}`", "",
        "The default `autoloss search` (demo preset) with the project before the pipeline (`--previous`, where each "
        "process decoded its splits into memory) and with this checkout (the stream), one after the other, each a "
        "first run: a fresh cache holding only the generated dataset, so both train their MOS warm start and "
        "compile. Memory is the peak of the summed RSS of the search and its worker processes.", "",
        "| path | wall minutes | peak RSS (GiB) | peak PSS (GiB) | load at the end |", "|---|---|---|---|---|",
    ]
    for label, name in (("previous", "in memory (previous checkout)"), ("this", "streaming (this checkout)")):
        run = runs[label]
        lines.append(f"| {name} | {run['seconds'] / 60:.1f} | {run['bytes'] / 2**30:.2f} | "
                     f"{run['pss_bytes'] / 2**30:.2f} | {run['load']} |")
    ratio = runs["this"]["seconds"] / runs["previous"]["seconds"]
    lines += ["", f"Wall time of the streaming search over the in-memory one: **{ratio:.2f}x**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[str]:
    """Run the chosen parts; print each section, write it into RESULTS.md with --write, and return the sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="large,shapes", help="comma-separated: large, shapes, ap, search")
    parser.add_argument("--images", type=int, default=20_000, help="images of the generated set (default 20000)")
    parser.add_argument("--work-dir", default="runs/input-pipeline", help="folder of the generated set and runs")
    parser.add_argument("--batches", type=int, default=30, help="batches timed per pipeline setting")
    parser.add_argument("--train-steps", type=int, default=8, help="training steps timed at 512 px")
    parser.add_argument("--memory-steps", type=int, default=30, help="steps of the training whose memory is taken")
    parser.add_argument("--shapes-steps", type=int, default=100, help="training steps timed on shapes")
    parser.add_argument("--previous", help="another checkout of the project, for --parts ap and search")
    parser.add_argument("--ap-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=seed_list, default=[0, 1], help="seeds of --parts ap (default 0,1)")
    parser.add_argument("--write", action="store_true", help="replace this benchmark's sections of RESULTS.md")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",")]
    unknown = sorted(set(parts) - set(SECTIONS))
    if unknown or ({"ap", "search"} & set(parts) and not args.previous):
        parser.error(f"unknown part(s) {unknown}" if unknown else "--parts ap and search need --previous CHECKOUT")
    command = command_line("benchmarks.input_pipeline", argv)
    runners = {"large": benchmark_large, "shapes": benchmark_shapes, "ap": benchmark_ap, "search": benchmark_search}
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    return [publish(runners[part](args, command), args.write) for part in parts]


if __name__ == "__main__":
    main()
