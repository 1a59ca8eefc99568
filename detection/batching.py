"""Which images make each batch, and how a batch is assembled from image files.

A batch is a dict of numpy arrays (the detection batch contract):

- ``images`` uint8 [B, H, W, 3], resized and zero-padded into one canvas (:mod:`detection.geometry`);
  the model divides by 255 on the device (``detection.backbone.normalize_images``),
- ``boxes``  float32 [B, M, 4] x1, y1, x2, y2 in pixels of the canvas, zeros where invalid,
- ``labels`` int32 [B, M], ``valid`` bool [B, M], with M = the index's ``max_boxes``,
- ``scales`` float32 [B] (resized = original * scale), which map predictions back to original pixels.

Training batch k is a pure function of (seed, k), so a stream resumes exactly from its position:
epoch e shuffles and flips with ``default_rng([seed, e])`` (and draws each image's shorter side there when
training is multi-scale); images are grouped by canvas, each group cut into full batches (the remainder
of a group waits for the next epoch's shuffle), and the epoch's batches follow the shuffled position of
their first image. With one canvas this is the plain shuffled order, cut into batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from detection.dataset_index import DatasetIndex
from detection.geometry import Geometry
from detection.images import decode_resized


def flip_horizontal(images: np.ndarray, boxes: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (images, boxes) mirrored left-right over the whole canvas width W: x1' = W - x2, x2' = W - x1.

    The zero padding on the right of a narrow image moves to the left; invalid boxes stay zeros.
    """
    width = images.shape[-2]
    flipped = np.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], axis=-1)
    return images[..., ::-1, :], np.where(valid[..., None], flipped, 0).astype(boxes.dtype)


@dataclasses.dataclass(frozen=True)
class BatchEntry:
    """The images of one batch: index rows (the first ``count`` real, the rest padding), flips, shorter sides."""

    rows: np.ndarray  # int64 [B]
    canvas: int  # canvas number (geometry.canvases)
    count: int  # real rows; the rest are padding (zero images, no boxes)
    flips: np.ndarray | None = None  # bool [B]
    short_sides: np.ndarray | None = None  # int [B] per-image shorter side (multi-scale), else None


def assemble_batch(index: DatasetIndex, geometry: Geometry, entry: BatchEntry) -> dict[str, np.ndarray]:
    """Read, resize, pad (and flip) the images of ``entry`` into one batch dict."""
    height, width = geometry.canvases[entry.canvas]
    size = len(entry.rows)
    batch = {
        "images": np.zeros((size, height, width, 3), np.uint8),
        "boxes": np.zeros((size, index.max_boxes, 4), np.float32),
        "labels": np.zeros((size, index.max_boxes), np.int32),
        "valid": np.zeros((size, index.max_boxes), bool),
        "scales": np.zeros(size, np.float32),
    }
    rows = entry.rows[: entry.count]
    scales = geometry.scales(index.sizes[rows], None if entry.short_sides is None else entry.short_sides[: entry.count])
    for slot, (row, scale, resized) in enumerate(zip(rows, scales, geometry.resized_sizes(index.sizes[rows], scales),
                                                     strict=True)):
        where = f"image id {index.image_ids[row]} of {index.annotation_file}"
        pixels = decode_resized(index.paths[row], tuple(index.sizes[row]), tuple(resized), where)
        batch["images"][slot, : resized[0], : resized[1]] = pixels
        boxes, labels = index.boxes_of(row)
        batch["boxes"][slot, : len(boxes)] = np.minimum(boxes * scale, [width, height, width, height])
        batch["labels"][slot, : len(labels)] = labels
        batch["valid"][slot, : len(labels)] = True
        batch["scales"][slot] = scale
    if entry.flips is not None and entry.flips.any():
        chosen = entry.flips
        batch["images"][chosen], batch["boxes"][chosen] = flip_horizontal(
            batch["images"][chosen], batch["boxes"][chosen], batch["valid"][chosen])
    return batch


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """Batch k of an endless shuffled, flipped training stream over an index (see the module docstring)."""

    canvas_of: np.ndarray  # canvas number of each image
    batch_size: int
    seed: int
    flip: bool = True
    short_side_choices: tuple[int, ...] = ()  # multi-scale: each image's shorter side drawn from these

    def __post_init__(self):
        counts = np.bincount(self.canvas_of, minlength=1)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if int((counts // self.batch_size).sum()) == 0:
            raise ValueError(f"batch_size {self.batch_size} needs at least that many images of one canvas; the data "
                             f"has {len(self.canvas_of)} image(s) ({', '.join(map(str, counts))} per canvas)")

    @property
    def batches_per_epoch(self) -> int:
        """Full batches in one epoch."""
        return int((np.bincount(self.canvas_of) // self.batch_size).sum())

    def epoch(self, number: int) -> list[BatchEntry]:
        """The batches of epoch ``number``."""
        rng = np.random.default_rng([self.seed, number])
        count = len(self.canvas_of)
        order = rng.permutation(count)
        flips = rng.random(count) < 0.5  # by position in the order
        sides = (np.asarray(self.short_side_choices)[rng.integers(len(self.short_side_choices), size=count)]
                 if self.short_side_choices else None)
        chunks = []
        for canvas in np.unique(self.canvas_of):
            positions = np.flatnonzero(self.canvas_of[order] == canvas)
            usable = len(positions) - len(positions) % self.batch_size
            chunks.extend((int(canvas), positions[start : start + self.batch_size])
                          for start in range(0, usable, self.batch_size))
        chunks.sort(key=lambda chunk: chunk[1][0])
        return [BatchEntry(rows=order[p], canvas=canvas, count=len(p), flips=flips[p] if self.flip else None,
                           short_sides=None if sides is None else sides[p]) for canvas, p in chunks]


def evaluation_entries(index: DatasetIndex, geometry: Geometry, batch_size: int) -> list[BatchEntry]:
    """Every image once, in index order within each canvas; a canvas's last batch is padded to ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    canvas_of = geometry.canvas_number(index.sizes)
    entries = []
    for canvas in np.unique(canvas_of):
        rows = np.flatnonzero(canvas_of == canvas)
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            padded = np.concatenate([chunk, np.full(batch_size - len(chunk), chunk[0])])
            entries.append(BatchEntry(rows=padded, canvas=int(canvas), count=len(chunk)))
    return entries
