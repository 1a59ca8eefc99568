"""Detection-standard image geometry: keep the aspect ratio, shorter side S, longer side at most L, pad.

An image of (h, w) is scaled by ``min(S / min(h, w), L / max(h, w))`` (the paper's S = 800, L = 1333, as
in Detectron and MMDetection; the tiny preset's S = L = 128 fits the longer side to 128) and padded
bottom/right with zeros into its *canvas*: (S, L) for a landscape or square image, (L, S) for a portrait
one. So there are at most two canvases, each a static shape a jitted step compiles once for; batches
never mix them. With S = L there is one square canvas.

Multi-scale training draws each training image's shorter side from ``train_short_sides`` (all at most S,
so every draw fits the same canvases); evaluation always uses S. Boxes scale with the image, and
predictions divide by the same scale to return to original pixels for COCOeval.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Geometry:
    """How images are resized and padded for the detector."""

    short_side: int = 128  # S
    max_size: int | None = None  # L, the longer side at most; None: L = S (a square canvas)
    train_short_sides: tuple[int, ...] = ()  # multi-scale training: S drawn per image from these; () is (S,)

    def __post_init__(self):
        if self.max_size is None:
            object.__setattr__(self, "max_size", self.short_side)
        object.__setattr__(self, "train_short_sides", tuple(int(s) for s in self.train_short_sides))
        if not 16 <= self.short_side <= self.max_size:
            raise ValueError(f"image sizes need 16 <= shorter side ({self.short_side}) <= longer side "
                             f"({self.max_size}); raise the longer side or lower the shorter one")
        if any(not 16 <= side <= self.short_side for side in self.train_short_sides):
            raise ValueError(f"multi-scale shorter sides {self.train_short_sides} must lie in [16, {self.short_side}] "
                             "(the evaluation shorter side), so every draw fits the canvas")

    @property
    def canvases(self) -> tuple[tuple[int, int], ...]:
        """The (height, width) canvases: landscape first, then portrait when S < L."""
        landscape = (self.short_side, self.max_size)
        return (landscape,) if self.short_side == self.max_size else (landscape, landscape[::-1])

    def canvas_number(self, sizes: np.ndarray) -> np.ndarray:
        """Return the canvas of each original (height, width) row: 0 landscape or square, 1 portrait."""
        sizes = np.asarray(sizes).reshape(-1, 2)
        return ((sizes[:, 0] > sizes[:, 1]) & (len(self.canvases) > 1)).astype(np.int64)

    def scales(self, sizes: np.ndarray, short_sides=None) -> np.ndarray:
        """Return the resize factor of each original (height, width) row (float64 [N]).

        ``short_sides`` (one per row, default S) is the shorter side each image is resized to.
        """
        sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
        short = np.full(len(sizes), float(self.short_side)) if short_sides is None else np.asarray(short_sides, float)
        return np.minimum(short / sizes.min(axis=1), self.max_size / sizes.max(axis=1))

    def resized_sizes(self, sizes: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """Return the (height, width) of each image after resizing (int64 [N, 2]), never beyond its canvas."""
        sizes = np.asarray(sizes).reshape(-1, 2)
        canvases = np.asarray(self.canvases)[self.canvas_number(sizes)]
        resized = np.maximum(np.round(sizes * np.asarray(scales)[:, None]), 1).astype(np.int64)
        return np.minimum(resized, canvases)

    def describe(self) -> str:
        """A short description, e.g. 'shorter side 800, longer side at most 1333'."""
        text = (f"fit into {self.short_side}x{self.short_side}" if self.short_side == self.max_size
                else f"shorter side {self.short_side}, longer side at most {self.max_size}")
        if self.train_short_sides:
            text += f"; training shorter side from {', '.join(map(str, self.train_short_sides))}"
        return text

    def to_dict(self) -> dict:
        """The JSON-ready fields (stored with a trained model)."""
        return {"short_side": self.short_side, "max_size": self.max_size,
                "train_short_sides": list(self.train_short_sides)}


def geometry_of(config) -> Geometry:
    """The evaluation geometry of a detector config, whose ``image_size`` is its landscape canvas (S, L)."""
    height, width = config.image_size
    return Geometry(short_side=min(height, width), max_size=max(height, width))


def config_for_canvas(config, canvas: tuple[int, int]):
    """``config`` with ``image_size`` set to ``canvas`` (the same object when it already is)."""
    canvas = tuple(int(side) for side in canvas)
    return config if tuple(config.image_size) == canvas else dataclasses.replace(config, image_size=canvas)


def to_original_pixels(boxes: np.ndarray, scales: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Return boxes [..., N, K, 4] of resized images in their original pixels: divided by each image's
    scale [N] and clipped to its original (height, width) [N, 2]."""
    sizes = np.asarray(sizes, dtype=np.float32)
    limits = np.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], axis=-1)[:, None, :]
    return np.clip(np.asarray(boxes) / np.asarray(scales, np.float32)[:, None, None], 0, limits)
