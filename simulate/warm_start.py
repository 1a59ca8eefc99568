"""The warm start and the verification set (one image per class): what every simulation of a search shares.

*Verification set* — "#class images" in the paper: for each class, ``images_per_class`` images
of the training split that contain it, drawn with a seeded generator, all distinct. The
simulation trains on them and scores AP on them with the project's COCO evaluation (the images'
own ground truth in the split's annotation file).

*Warm start* — a detector trained briefly with the baseline losses (the detector's defaults) on
the training split. It is computed once and cached on disk, keyed by everything it depends on:
the dataset spec, the detector config, the schedule, batch size, optimizer and seed. Processes
that need the same warm start at once (the workers of a search) take turns on a lock file: one
trains it, the others then read it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from detection.batching import BatchEntry, assemble_batch
from detection.checkpoints import write_atomically
from detection.dataset_index import DatasetIndex
from detection.detectors import detector_of
from detection.geometry import Geometry, geometry_of
from detection.optim import OptimizerConfig
from detection.pipeline import training_stream
from detection.pretrained import pretrained_params
from detection.shapes import default_cache_root
from detection.training import train

WARM_START_VERSION = 1  # bump when the warm-start recipe changes, so old caches are not reused


def verification_indices(data: DatasetIndex, images_per_class: int, seed: int,
                         geometry: Geometry | None = None) -> np.ndarray:
    """Indices of ``images_per_class`` distinct images per class that contain it, drawn with ``seed``.

    Classes are visited rarest first, so a rare class still gets its images. With a ``geometry`` of two
    canvases only landscape images are drawn, so the set is one batch. Raises ValueError when a class
    has too few images left, saying which.
    """
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be at least 1, got {images_per_class}")
    rng = np.random.default_rng([seed, 7])
    present = data.classes_present()
    if geometry is not None:
        present &= (geometry.canvas_number(data.sizes) == 0)[:, None]
    chosen: list[int] = []
    for cls in np.argsort(present.sum(axis=0), kind="stable"):
        pool = np.flatnonzero(present[:, cls] & ~np.isin(np.arange(len(data)), chosen))
        if len(pool) < images_per_class:
            raise ValueError(
                f"class {data.class_names[cls]!r} appears in only {len(pool)} unused training images; "
                f"the verification set needs {images_per_class} per class (lower images_per_class)"
            )
        chosen.extend(int(i) for i in rng.choice(pool, images_per_class, replace=False))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def verification_set(data: DatasetIndex, images_per_class: int, seed: int,
                     geometry: Geometry) -> tuple[DatasetIndex, dict]:
    """The verification images (their index, for evaluation) and their batch dict, decoded once and kept."""
    indices = verification_indices(data, images_per_class, seed, geometry)
    entry = BatchEntry(rows=indices, canvas=0, count=len(indices))
    return data.select(indices), assemble_batch(data, geometry, entry)


def warm_start_key(description: dict[str, Any]) -> str:
    """A short stable hash of a JSON-ready description of the warm start."""
    text = json.dumps({"version": WARM_START_VERSION, **description}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _file_identity(path: str | os.PathLike) -> dict:
    """The path, size and modification time of a file: a replaced weights file gives another warm start."""
    stat = Path(path).stat()
    return {"path": str(path), "size": stat.st_size, "mtime": int(stat.st_mtime)}


def warm_start(
    config,
    train_data: DatasetIndex,
    *,
    data_spec: str,
    steps: int,
    batch_size: int,
    optimizer: OptimizerConfig,
    seed: int,
    backbone_weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[Any, Path]:
    """Parameters of ``config``'s detector trained ``steps`` steps with its default losses; cached on disk.

    Training starts from ``backbone_weights`` (pretrained, :mod:`detection.pretrained`) when given.
    Returns (params, cache file). A cached file is reused when every input is the same.
    """
    description = {
        "data": data_spec,
        "config": dataclasses.asdict(config),
        "detector": type(config).__name__,
        "steps": steps,
        "batch_size": batch_size,
        "optimizer": dataclasses.asdict(optimizer),
        "seed": seed,
        "train_images": len(train_data),
        **({"backbone_weights": _file_identity(backbone_weights)} if backbone_weights else {}),
    }
    folder = Path(cache_dir) if cache_dir is not None else default_cache_root() / "warm-starts"
    path = folder / f"warm-start-{warm_start_key(description)}.msgpack"
    template = detector_of(config).init_params(config, jax.random.key(seed))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{path.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if path.is_file():
            try:
                return serialization.from_bytes(template, path.read_bytes()), path
            except (ValueError, KeyError, TypeError):
                pass  # a damaged cache file is recomputed and replaced
        params = pretrained_params(config, backbone_weights, seed) if backbone_weights else template
        if steps > 0:
            with training_stream(train_data, geometry_of(config), batch_size=batch_size, seed=seed,
                                 steps=steps) as batches:
                params = train(config, batches, steps=steps, optimizer=optimizer, seed=seed, progress=progress,
                               log_every=max(steps, 1), params=params if backbone_weights else None).params
        write_atomically(path, serialization.to_bytes(params))
        (folder / f"{path.stem}.json").write_text(json.dumps(description, indent=2, sort_keys=True, default=str))
    return params, path
