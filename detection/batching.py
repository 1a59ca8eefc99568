"""Static-shape batches of `DetectionData` for training (seeded shuffle and flip) and evaluation (padded).

A batch is a dict of numpy arrays:
- `images`  float32 [B, H, W, 3], pixel values divided by 255 (range [0, 1]; the model normalizes),
- `boxes`   float32 [B, M, 4] x1, y1, x2, y2 in pixels of the (padded) canvas, zeros where invalid,
- `labels`  int32 [B, M], `valid` bool [B, M].

Every batch of one iterator has the same shapes, so a jitted step compiles once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from detection.datasets import DetectionData


def flip_horizontal(
    images: np.ndarray, boxes: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (images, boxes) mirrored left-right over the whole canvas width W: x1' = W - x2, x2' = W - x1.

    The zero padding on the right of a narrow image moves to the left; invalid boxes stay zeros.
    """
    width = images.shape[-2]
    flipped = np.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], axis=-1)
    return images[..., ::-1, :], np.where(valid[..., None], flipped, 0).astype(boxes.dtype)


def gather_batch(data: DetectionData, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Return the batch dict of the images at `indices` (pixels scaled to [0, 1])."""
    return {
        "images": data.images[indices].astype(np.float32) / 255.0,
        "boxes": data.boxes[indices],
        "labels": data.labels[indices],
        "valid": data.valid[indices],
    }


def _epoch_batches(data, batch_size, rng, *, shuffle, flip, drop_last) -> Iterator[dict[str, np.ndarray]]:
    count = len(data)
    order = rng.permutation(count) if shuffle else np.arange(count)
    flips = rng.random(count) < 0.5
    if not drop_last and count % batch_size:
        # Keep shapes static: fill the last batch with the first images of this epoch's order.
        order = np.concatenate([order, np.resize(order, batch_size - count % batch_size)])
        flips = np.concatenate([flips, np.resize(flips, batch_size - count % batch_size)])
    for start in range(0, len(order) - batch_size + 1, batch_size):
        indices = order[start : start + batch_size]
        batch = gather_batch(data, indices)
        if flip:
            chosen = flips[start : start + batch_size]
            images, boxes = flip_horizontal(
                batch["images"][chosen], batch["boxes"][chosen], batch["valid"][chosen]
            )
            batch["images"][chosen] = images
            batch["boxes"][chosen] = boxes
        yield batch


def iterate_batches(
    data: DetectionData,
    batch_size: int,
    *,
    seed: int,
    epochs: int | None = None,
    steps: int | None = None,
    shuffle: bool = True,
    flip: bool = True,
    drop_last: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield training batches: epoch e shuffles and flips with `default_rng([seed, e])`.

    Stops after `epochs` passes or `steps` batches, whichever comes first; endless when both are None.
    With drop_last=False the last batch of an epoch is filled up with images from its start.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(data) == 0 or (drop_last and batch_size > len(data)):
        raise ValueError(f"batch_size {batch_size} needs at least that many images; the data has {len(data)}")
    epoch_numbers = range(epochs) if epochs is not None else itertools.count()
    batches = (
        batch
        for epoch in epoch_numbers
        for batch in _epoch_batches(
            data,
            batch_size,
            np.random.default_rng([seed, epoch]),
            shuffle=shuffle,
            flip=flip,
            drop_last=drop_last,
        )
    )
    return itertools.islice(batches, steps)


def iterate_eval_batches(
    data: DetectionData, batch_size: int
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, int]]:
    """Yield (batch, data indices of its first `count` rows, count) in order, the last batch zero-padded.

    Padded rows have zero images and no valid boxes; drop them with `outputs[:count]`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    for start in range(0, len(data), batch_size):
        indices = np.arange(start, min(start + batch_size, len(data)))
        batch = gather_batch(data, indices)
        count = len(indices)
        if count < batch_size:
            batch = {key: _pad_rows(value, batch_size) for key, value in batch.items()}
        yield batch, indices, count


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    padded = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    padded[: len(array)] = array
    return padded
