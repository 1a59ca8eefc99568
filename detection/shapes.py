"""The built-in "shapes" detection dataset: procedurally generated, deterministic, cached as COCO.

Each image holds 1-10 textured shapes (circle, square, triangle, star, ring, cross, ellipse, diamond,
hexagon, half disc) on a cluttered background. Generation has two steps so statistics can be checked
without drawing: `layout_image` samples the objects (class, box, colour, texture) and `render_image`
draws them with numpy masks evaluated on each object's pixel window.

Rules that shape the annotations:
- Object sizes: sqrt(box area) is log-uniform in `object_size_range` (fractions of the image side);
  the default (0.0625, 0.86) gives 8-110 px at 128x128, so COCO's absolute small (< 32^2), medium and
  large (> 96^2) bins are all populated. The range scales with `image_size`; at much smaller images
  the large bin empties, at much larger ones the small bin does.
- Boxes are integer, pixel-aligned and amodal: the full extent of the shape, also when partly hidden.
- Occlusion: objects are drawn largest first, so small ones lie on top. A placement that would
  cover more than half of an earlier object's box is re-drawn (up to 10 tries, then the object is
  left out). After drawing, an object with less than 30% of its own pixels visible loses its
  annotation (`MIN_VISIBLE_FRACTION`); the last drawn object is always fully visible, so every
  image keeps at least one annotation.
- Clutter (1 px lines, 1-2 px dots, a gradient and pixel noise) is never annotated.

Randomness: image k of a split comes from `np.random.default_rng([seed, split_code, k])`, so it is the
same whatever the number of images. The dataset is written once per configuration to a cache folder
(PNG + COCO instances JSON per split), atomically, so it is loaded through the same pycocotools path
as real data. A variant with other settings is named by the dataset spec ``shapes:KEY=VALUE,...``
(:mod:`detection.shapes_spec`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

GENERATOR_VERSION = 1
SPLITS = ("train", "search_val", "final_val")
_SPLIT_CODES = {"train": 0, "search_val": 1, "final_val": 2}
SHAPE_NAMES = (
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "ellipse",
    "diamond",
    "hexagon",
    "half_disc",
)
TEXTURES = ("solid", "stripes", "checker", "noise")
MIN_VISIBLE_FRACTION = 0.3
MAX_COVER_OF_EARLIER_BOX = 0.5
_PLACEMENT_TRIES = 10


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """Parameters of one shapes dataset; every field is part of the cache key."""

    seed: int = 0
    image_size: int = 128
    # 8000, not fewer: with 2000 the default FCOS overfits (after 6000 steps AP 64.7 on train, 42.8 on
    # final_val); with 8000 it reaches 50.0 on final_val in the same steps (benchmarks/RESULTS.md).
    num_train: int = 8000
    num_search_val: int = 200
    num_final_val: int = 500
    num_classes: int = 8
    object_size_range: tuple[float, float] = (0.0625, 0.86)
    max_objects: int = 10

    def __post_init__(self):
        if not 6 <= self.num_classes <= len(SHAPE_NAMES):
            raise ValueError(f"num_classes must be in [6, {len(SHAPE_NAMES)}], got {self.num_classes}")
        low, high = self.object_size_range
        if not 0 < low < high <= 1:
            raise ValueError(
                f"object_size_range must satisfy 0 < low < high <= 1, got {self.object_size_range}"
            )
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if not 1 <= self.max_objects <= 50:
            raise ValueError(f"max_objects must be in [1, 50], got {self.max_objects}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if min(self.num_train, self.num_search_val, self.num_final_val) < 0:
            raise ValueError("image counts must be non-negative")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The shape names of the classes, in category-id order."""
        return SHAPE_NAMES[: self.num_classes]

    def split_count(self, split: str) -> int:
        """Return the number of images of `split`."""
        return {"train": self.num_train, "search_val": self.num_search_val, "final_val": self.num_final_val}[
            split
        ]

    def cache_key(self) -> str:
        """Return the cache folder name: readable fields plus a hash of the whole configuration."""
        low, high = self.object_size_range
        digest = hashlib.sha1(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return (
            f"shapes-v{GENERATOR_VERSION}-s{self.seed}-{self.image_size}"
            f"-n{self.num_train}-{self.num_search_val}-{self.num_final_val}"
            f"-c{self.num_classes}-z{round(low * 1000)}-{round(high * 1000)}-o{self.max_objects}-{digest}"
        )


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One sampled object: class, integer box (x, y, w, h), orientation and appearance."""

    class_index: int
    box: tuple[int, int, int, int]
    flip_u: bool
    flip_v: bool
    color: tuple[int, int, int]
    second_color: tuple[int, int, int]
    texture: str
    pattern_period: float
    pattern_angle: float


# Width/height ratio each class is drawn with (before jitter); shapes are defined to touch all four
# edges of their box, so the box is tight.
_BASE_ASPECT = {"ellipse": 2.0, "half_disc": 2.0, "triangle": 1.0}
_STAR = [
    (np.sin(t) * r, -np.cos(t) * r) for t, r in zip(np.arange(10) * np.pi / 5, [1.0, 0.45] * 5, strict=True)
]
_HEXAGON = [(np.cos(t), np.sin(t)) for t in np.arange(6) * np.pi / 3]
_POLYGONS = {
    "triangle": [(-1.0, 1.0), (1.0, 1.0), (0.0, -1.0)],
    "star": _STAR,
    "hexagon": _HEXAGON,
}


def _rng_for(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def _random_color(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    for _ in range(20):
        color = rng.integers(0, 256, size=3)
        if avoid is None or np.abs(color - avoid).sum() > 150:
            break
    return color


def _sample_object_sizes(
    config: ShapesConfig, rng: np.random.Generator, count: int
) -> list[tuple[int, int, int]]:
    low, high = (fraction * config.image_size for fraction in config.object_size_range)
    sides = np.exp(rng.uniform(np.log(low), np.log(high), size=count))
    classes = rng.integers(0, config.num_classes, size=count)
    limit = config.image_size - 2
    sizes = []
    for side, class_index in zip(sides, classes, strict=True):
        aspect = _BASE_ASPECT.get(SHAPE_NAMES[class_index], 1.0) * np.exp(rng.uniform(-0.12, 0.12))
        if rng.random() < 0.5:
            aspect = 1.0 / aspect
        width = int(np.clip(round(side * np.sqrt(aspect)), 4, limit))
        height = int(np.clip(round(side / np.sqrt(aspect)), 4, limit))
        sizes.append((int(class_index), width, height))
    return sorted(sizes, key=lambda s: -s[1] * s[2])


def _covers_too_much(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x, y, w, h = box
    for px, py, pw, ph in placed:
        overlap_w = min(x + w, px + pw) - max(x, px)
        overlap_h = min(y + h, py + ph) - max(y, py)
        if overlap_w > 0 and overlap_h > 0 and overlap_w * overlap_h > MAX_COVER_OF_EARLIER_BOX * pw * ph:
            return True
    return False


def layout_image(config: ShapesConfig, split: str, index: int) -> tuple[dict, list[ShapeObject]]:
    """Return (background parameters, objects in drawing order) of one image, without drawing."""
    rng = _rng_for(config.seed, split, index)
    size = config.image_size
    background_color = rng.integers(30, 226, size=3)
    background = {
        "color": background_color,
        "gradient": rng.uniform(-40, 40, size=2),
        "noise_sigma": float(rng.uniform(0, 12)),
        "num_clutter": int(rng.integers(0, 9)),
        "clutter_seed": int(rng.integers(0, 2**31)),
    }
    objects: list[ShapeObject] = []
    placed: list[tuple[int, int, int, int]] = []
    for class_index, width, height in _sample_object_sizes(
        config, rng, int(rng.integers(1, config.max_objects + 1))
    ):
        for _ in range(_PLACEMENT_TRIES):
            box = (
                int(rng.integers(0, size - width + 1)),
                int(rng.integers(0, size - height + 1)),
                width,
                height,
            )
            if not _covers_too_much(box, placed):
                break
        else:
            continue
        placed.append(box)
        color = _random_color(rng, avoid=background_color)
        second = np.clip(color * rng.uniform(0.3, 0.7) + rng.uniform(0, 80), 0, 255).astype(int)
        objects.append(
            ShapeObject(
                class_index=class_index,
                box=box,
                flip_u=bool(rng.random() < 0.5),
                flip_v=bool(rng.random() < 0.5),
                color=tuple(int(c) for c in color),
                second_color=tuple(int(c) for c in second),
                texture=TEXTURES[int(rng.integers(0, len(TEXTURES)))],
                pattern_period=float(rng.uniform(3, 8)),
                pattern_angle=float(rng.uniform(0, np.pi)),
            )
        )
    return background, objects


def _polygon_mask(u: np.ndarray, v: np.ndarray, vertices: list[tuple[float, float]]) -> np.ndarray:
    points = np.asarray(vertices, dtype=np.float64)
    points = 2 * (points - points.min(0)) / (points.max(0) - points.min(0)) - 1  # touch the box edges
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (xi, yi), (xj, yj) in zip(points, np.roll(points, -1, axis=0), strict=True):
        if yi == yj:
            continue
        crosses = (yi > v) != (yj > v)
        inside ^= crosses & (u < (xj - xi) * (v - yi) / (yj - yi) + xi)
    return inside


def shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return the boolean mask of shape `name` at normalized box coordinates u, v in [-1, 1]."""
    if name in _POLYGONS:
        return _polygon_mask(u, v, _POLYGONS[name])
    radius2 = u**2 + v**2
    if name in ("circle", "ellipse"):
        return radius2 <= 1.0
    if name == "ring":
        return (radius2 <= 1.0) & (radius2 >= 0.55**2)
    if name == "square":
        return np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    if name == "cross":
        return (np.abs(u) <= 0.33) | (np.abs(v) <= 0.33)
    if name == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if name == "half_disc":
        return u**2 + ((v - 1.0) / 2.0) ** 2 <= 1.0
    raise ValueError(f"unknown shape {name!r}; known shapes: {', '.join(SHAPE_NAMES)}")


def _object_pixels(obj: ShapeObject, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y, w, h = obj.box
    u = ((np.arange(w) + 0.5) / w * 2 - 1)[None, :]
    v = ((np.arange(h) + 0.5) / h * 2 - 1)[:, None]
    mask = shape_mask(SHAPE_NAMES[obj.class_index], -u if obj.flip_u else u, -v if obj.flip_v else v)
    color = np.asarray(obj.color, dtype=np.float32)
    second = np.asarray(obj.second_color, dtype=np.float32)
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    if obj.texture == "stripes":
        phase = cols * np.cos(obj.pattern_angle) + rows * np.sin(obj.pattern_angle)
        pattern = (np.floor(phase / obj.pattern_period) % 2).astype(bool)
    elif obj.texture == "checker":
        period = obj.pattern_period
        pattern = ((np.floor(cols / period) + np.floor(rows / period)) % 2).astype(bool)
    else:
        pattern = np.zeros((h, w), dtype=bool)
    pixels = np.where(pattern[..., None], second, color)
    if obj.texture == "noise":
        pixels = pixels + rng.normal(0, 25, size=pixels.shape)
    return mask, pixels


def _draw_clutter(image: np.ndarray, rng: np.random.Generator, count: int) -> None:
    size = image.shape[0]
    for _ in range(count):
        color = rng.integers(0, 256, size=3)
        if rng.random() < 0.5:  # a 1 px line
            start, end = rng.uniform(0, size, size=2), rng.uniform(0, size, size=2)
            steps = np.linspace(0, 1, int(np.abs(end - start).max()) + 2)[:, None]
            points = np.clip(np.round(start + steps * (end - start)).astype(int), 0, size - 1)
            image[points[:, 1], points[:, 0]] = color
        else:  # a 1-2 px dot
            cx, cy = rng.integers(0, size - 2, size=2)
            extent = int(rng.integers(1, 3))
            image[cy : cy + extent, cx : cx + extent] = color


def render_image(config: ShapesConfig, split: str, index: int) -> tuple[np.ndarray, list[ShapeObject]]:
    """Return (uint8 image [S, S, 3], annotated objects) of one image; hidden objects are left out."""
    background, objects = layout_image(config, split, index)
    size = config.image_size
    rng = np.random.default_rng(background["clutter_seed"])
    ramp = np.arange(size, dtype=np.float32) / size - 0.5
    gradient = background["gradient"][0] * ramp[None, :] + background["gradient"][1] * ramp[:, None]
    image = background["color"].astype(np.float32) + gradient[..., None]
    image = image + rng.normal(0, background["noise_sigma"], size=image.shape)
    _draw_clutter(image, rng, background["num_clutter"])
    owner = np.full((size, size), -1, dtype=np.int32)
    own_pixels = np.zeros(len(objects), dtype=np.int64)
    for k, obj in enumerate(objects):
        mask, pixels = _object_pixels(obj, rng)
        x, y, w, h = obj.box
        image[y : y + h, x : x + w][mask] = pixels[mask]
        owner[y : y + h, x : x + w][mask] = k
        own_pixels[k] = mask.sum()
    visible = np.bincount(owner[owner >= 0], minlength=len(objects))
    enough_visible = visible >= MIN_VISIBLE_FRACTION * own_pixels
    kept = [obj for obj, keep in zip(objects, enough_visible, strict=True) if keep]
    image = image + rng.normal(0, 3, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), kept


def _coco_document(config: ShapesConfig, split: str, annotated: list[list[ShapeObject]]) -> dict:
    images, annotations = [], []
    for index, objects in enumerate(annotated):
        image_id = index + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id:06d}.png",
                "width": config.image_size,
                "height": config.image_size,
            }
        )
        for obj in objects:
            x, y, w, h = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": obj.class_index + 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(config.class_names)
    ]
    info = {"description": f"cse-autoloss shapes, split {split}", "generator": dataclasses.asdict(config)}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def write_split(config: ShapesConfig, split: str, folder: Path, bar: tqdm | None = None) -> tuple[Path, Path]:
    """Render one split into `folder` as PNGs plus a COCO JSON; return (annotation path, image dir).

    `bar` (a progress bar) advances by one per image written.
    """
    image_dir = folder / split
    image_dir.mkdir(parents=True, exist_ok=True)
    annotated = []
    for index in range(config.split_count(split)):
        image, objects = render_image(config, split, index)
        Image.fromarray(image).save(image_dir / f"{index + 1:06d}.png", compress_level=1)
        annotated.append(objects)
        if bar is not None:
            bar.update()
    annotation_path = folder / f"{split}.json"
    annotation_path.write_text(json.dumps(_coco_document(config, split, annotated)))
    return annotation_path, image_dir


def default_cache_root() -> Path:
    """Return the cache root: $AUTOLOSS_CACHE if set, else ~/.cache/cse-autoloss."""
    return Path(os.environ.get("AUTOLOSS_CACHE") or Path.home() / ".cache" / "cse-autoloss")


def _split_paths(folder: Path) -> dict[str, tuple[Path, Path]]:
    return {split: (folder / f"{split}.json", folder / split) for split in SPLITS}


def ensure_shapes_dataset(
    root: str | os.PathLike | None = None,
    *,
    seed: int = ShapesConfig.seed,
    image_size: int = ShapesConfig.image_size,
    num_train: int = ShapesConfig.num_train,
    num_search_val: int = ShapesConfig.num_search_val,
    num_final_val: int = ShapesConfig.num_final_val,
    num_classes: int = ShapesConfig.num_classes,
    object_size_range: tuple[float, float] = ShapesConfig.object_size_range,
    max_objects: int = ShapesConfig.max_objects,
    progress: bool = True,
) -> dict[str, tuple[Path, Path]]:
    """Generate the shapes dataset once into the cache; return {split: (annotation JSON, image dir)}.

    Generation (about two minutes for the default 8,700 images on two CPU cores) shows a progress bar
    on stderr unless `progress` is False.
    """
    config = ShapesConfig(
        seed=seed,
        image_size=image_size,
        num_train=num_train,
        num_search_val=num_search_val,
        num_final_val=num_final_val,
        num_classes=num_classes,
        object_size_range=tuple(object_size_range),
        max_objects=max_objects,
    )
    root = Path(root) if root is not None else default_cache_root()
    folder = root / config.cache_key()
    if folder.is_dir():
        return _split_paths(folder)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{config.cache_key()}-", dir=root))
    total = sum(config.split_count(split) for split in SPLITS)
    try:
        with tqdm(total=total, desc=f"generate {config.cache_key()[:24]}", unit="image", disable=not progress) as bar:
            for split in SPLITS:
                write_split(config, split, staging, bar)
        try:
            os.replace(staging, folder)  # atomic; fails if another process finished first
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _split_paths(folder)
