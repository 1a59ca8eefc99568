"""Synthetic detection batches for tests: grey images with coloured rectangles."""

import numpy as np

COLORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)


def synthetic_batch(num_images, size, seed, max_boxes=3):
    """Return a batch of grey images with 1..max_boxes coloured rectangles (colour = class)."""
    rng = np.random.default_rng(seed)
    images = np.full((num_images, size, size, 3), 0.5, np.float32)
    boxes = np.zeros((num_images, max_boxes, 4), np.float32)
    labels = np.zeros((num_images, max_boxes), np.int32)
    valid = np.zeros((num_images, max_boxes), bool)
    for n in range(num_images):
        for m in range(rng.integers(1, max_boxes + 1)):
            w, h = rng.integers(size // 6, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            label = rng.integers(0, len(COLORS))
            images[n, y : y + h, x : x + w] = COLORS[label]
            boxes[n, m], labels[n, m], valid[n, m] = (x, y, x + w, y + h), label, True
    return {"images": images, "boxes": boxes, "labels": labels, "valid": valid}
