"""COCO and Pascal VOC detection data loaded into one static-shape, in-memory form (`DetectionData`).

Both formats end as a COCO instances JSON on disk (VOC is converted and written to the cache), so the
ground truth that evaluation reads through pycocotools is the same for every source.

Loading rules:
- Images are resized keeping the aspect ratio to fit (H, W) and padded bottom/right with zeros;
  boxes are scaled with them (`scales[i]` maps original pixels to resized pixels).
- Boxes with zero or negative width/height are skipped; boxes partly outside the image are clipped
  to it (skipped if nothing remains). Both are counted in one warning per load. Images without
  objects are kept, with no valid boxes.
- Crowd annotations (`iscrowd` = 1, and VOC `difficult` objects, which are written as crowd) are not
  training targets; COCOeval ignores detections that match them instead of counting misses.
- Pascal VOC folders are converted by `detection.voc`.
- Anything else that is wrong (missing or unreadable image, malformed JSON/XML, schema violations,
  unknown category) raises `DatasetError` naming the file and annotation, and how to fix it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from detection.errors import DatasetError
from detection.shapes import SPLITS, default_cache_root, ensure_shapes_dataset
from detection.shapes_spec import KEYS as SHAPES_KEYS
from detection.shapes_spec import parse_shapes_options
from detection.voc import voc_to_coco

DATASET_SPEC_FORMS = (
    f"'shapes', 'shapes:KEY=VALUE,...' (keys {', '.join(SHAPES_KEYS)}), "
    "'coco:ANNOTATIONS.json:IMAGE_DIR' or 'voc:VOC_DIR'"
)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compare and hash by identity
class DetectionData:
    """Images and padded ground truth of one split, with what evaluation needs to map back."""

    images: np.ndarray  # uint8 [N, H, W, 3]
    boxes: np.ndarray  # float32 [N, M, 4] x1, y1, x2, y2 in resized pixels; zeros where invalid
    labels: np.ndarray  # int32 [N, M] contiguous class 0..C-1; 0 where invalid
    valid: np.ndarray  # bool [N, M]
    image_ids: np.ndarray  # int64 [N] ids in the annotation file
    scales: np.ndarray  # float32 [N] resized = original * scale
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]  # annotation-file category id of each contiguous class
    annotation_file: str  # COCO JSON holding the ground truth

    @property
    def num_classes(self) -> int:
        """The number of contiguous classes C."""
        return len(self.class_names)

    def __len__(self) -> int:
        """The number of images N."""
        return int(self.images.shape[0])

    def select(self, indices) -> DetectionData:
        """Return the images at `indices` (evaluation then scores only their image ids)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            images=self.images[indices],
            boxes=self.boxes[indices],
            labels=self.labels[indices],
            valid=self.valid[indices],
            image_ids=self.image_ids[indices],
            scales=self.scales[indices],
        )


def _image_size_pair(image_size) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as error:
        raise DatasetError(f"cannot read annotation file {path}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}:{error.lineno}:{error.colno}: malformed JSON ({error.msg}); fix or regenerate the file"
        ) from error


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_coco_schema(doc, path: Path) -> None:
    """Raise DatasetError unless `doc` has the parts of a COCO instances file that loading relies on."""
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: top level must be a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(
                f"{path}: missing list '{key}'; a COCO instances file needs images, annotations "
                "and categories lists"
            )
    for kind, required in (
        ("images", ("id", "file_name")),
        ("categories", ("id",)),
        ("annotations", ("id", "image_id", "category_id", "bbox")),
    ):
        for index, record in enumerate(doc[kind]):
            missing = [key for key in required if not isinstance(record, dict) or key not in record]
            if missing:
                raise DatasetError(f"{path}: {kind}[{index}] lacks {', '.join(missing)}; add the field(s)")
    for image in doc["images"]:
        if not isinstance(image["file_name"], str):
            raise DatasetError(f"{path}: image id {image['id']}: file_name must be a string path")
    image_ids = {image["id"] for image in doc["images"]}
    category_ids = {category["id"] for category in doc["categories"]}
    if len(image_ids) != len(doc["images"]) or len(category_ids) != len(doc["categories"]):
        raise DatasetError(f"{path}: duplicate image or category ids; ids must be unique")
    for ann in doc["annotations"]:
        where = f"{path}: annotation id {ann['id']}"
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise DatasetError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}")
        if ann["category_id"] not in category_ids:
            raise DatasetError(
                f"{where}: category_id {ann['category_id']} is not in the categories list "
                f"{sorted(category_ids)}; add the category or fix the id"
            )
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{where}: image_id {ann['image_id']} is not in the images list; fix the id")


def _open_image(path: Path, image_id, annotation_path: Path) -> Image.Image:
    where = f"image id {image_id} of {annotation_path}"
    if not path.is_file():
        raise DatasetError(f"missing image file {path} ({where}); check the image folder and file_name")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(
            f"unreadable image file {path} ({where}): {error}; replace or remove it"
        ) from error
    return image.convert("RGB")


def _resize_into_canvas(image: Image.Image, height: int, width: int) -> tuple[np.ndarray, float]:
    scale = min(height / image.height, width / image.width)
    new_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, Image.BILINEAR)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[: new_size[1], : new_size[0]] = np.asarray(image)
    return canvas, scale


class _SkipCounter:
    """Collects the annotation ids skipped or clipped during one load for a single warning."""

    def __init__(self):
        self.skipped, self.clipped, self.truncated = [], [], []

    def warn(self, path: Path) -> None:
        parts = [
            f"{label} {len(ids)} {what} (annotation ids {', '.join(map(str, ids[:10]))}"
            f"{', ...' if len(ids) > 10 else ''})"
            for label, what, ids in (
                ("skipped", "degenerate boxes (zero/negative size or outside the image)", self.skipped),
                ("clipped", "boxes partly outside the image", self.clipped),
                ("dropped", "boxes beyond max_boxes", self.truncated),
            )
            if ids
        ]
        if parts:
            warnings.warn(f"{'; '.join(parts)} in {path}", stacklevel=3)


def _image_boxes(coco: COCO, image_id, width: int, height: int, class_of, counter: _SkipCounter):
    boxes, labels, ids = [], [], []
    for ann in coco.imgToAnns.get(image_id, []):
        if ann.get("iscrowd", 0):
            continue
        x, y, w, h = ann["bbox"]
        x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
        if w <= 0 or h <= 0 or x2 <= x1 or y2 <= y1:
            counter.skipped.append(ann["id"])
            continue
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            counter.clipped.append(ann["id"])
        boxes.append((x1, y1, x2, y2))
        labels.append(class_of[ann["category_id"]])
        ids.append(ann["id"])
    return boxes, labels, ids


def _load_coco_document(doc: dict, annotation_path: Path, image_dir: Path, image_size, max_boxes):
    _check_coco_schema(doc, annotation_path)
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    height, width = _image_size_pair(image_size)
    categories = sorted(doc["categories"], key=lambda category: category["id"])
    class_of = {category["id"]: k for k, category in enumerate(categories)}
    counter = _SkipCounter()
    images, per_image, scales, image_ids = [], [], [], []
    for record in doc["images"]:
        image = _open_image(image_dir / record["file_name"], record["id"], annotation_path)
        stated = (record.get("width", image.width), record.get("height", image.height))
        if stated != image.size:
            raise DatasetError(
                f"{annotation_path}: image id {record['id']} says {stated[0]}x{stated[1]} but "
                f"{image_dir / record['file_name']} is {image.width}x{image.height}; fix width/height"
            )
        per_image.append(_image_boxes(coco, record["id"], image.width, image.height, class_of, counter))
        canvas, scale = _resize_into_canvas(image, height, width)
        images.append(canvas)
        scales.append(scale)
        image_ids.append(record["id"])
    num_slots = max_boxes or max([len(found[0]) for found in per_image] + [1])
    boxes = np.zeros((len(images), num_slots, 4), dtype=np.float32)
    labels = np.zeros((len(images), num_slots), dtype=np.int32)
    valid = np.zeros((len(images), num_slots), dtype=bool)
    for i, (image_boxes, image_labels, ids) in enumerate(per_image):
        # Beyond max_boxes, the largest boxes are kept, in file order.
        areas = [-(b[2] - b[0]) * (b[3] - b[1]) for b in image_boxes]
        kept = sorted(np.argsort(areas, kind="stable")[:num_slots].tolist())
        counter.truncated.extend(ids[j] for j in sorted(set(range(len(ids))) - set(kept)))
        for slot, j in enumerate(kept):
            boxes[i, slot] = np.asarray(image_boxes[j]) * scales[i]
            labels[i, slot] = image_labels[j]
            valid[i, slot] = True
    counter.warn(annotation_path)
    return DetectionData(
        images=np.stack(images) if images else np.zeros((0, height, width, 3), dtype=np.uint8),
        boxes=boxes,
        labels=labels,
        valid=valid,
        image_ids=np.asarray(image_ids, dtype=np.int64),
        scales=np.asarray(scales, dtype=np.float32),
        class_names=tuple(str(category.get("name", category["id"])) for category in categories),
        category_ids=tuple(category["id"] for category in categories),
        annotation_file=str(annotation_path),
    )


def load_coco(
    annotation_json, image_dir, *, image_size=(128, 128), max_boxes: int | None = None
) -> DetectionData:
    """Load a COCO instances JSON and its images into `DetectionData` (image_size is (H, W))."""
    annotation_path = Path(annotation_json)
    return _load_coco_document(
        _read_json(annotation_path), annotation_path, Path(image_dir), image_size, max_boxes
    )


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def load_voc(
    voc_dir, *, split: str = "val", image_size=(128, 128), max_boxes: int | None = None, root=None
) -> DetectionData:
    """Load a Pascal VOC split; its COCO conversion is written under `root` (the cache) for evaluation."""
    voc_dir = Path(voc_dir)
    text = json.dumps(voc_to_coco(voc_dir, split))
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    cache = Path(root) if root is not None else default_cache_root()
    annotation_path = cache / "voc" / f"{voc_dir.resolve().name}-{split}-{digest}.json"
    if not annotation_path.is_file():
        _write_atomically(annotation_path, text)
    return _load_coco_document(
        json.loads(text), annotation_path, voc_dir / "JPEGImages", image_size, max_boxes
    )


_VOC_SPLIT_OF = {"train": "train", "search_val": "val", "final_val": "val"}


def load_dataset(spec: str, *, split: str, image_size=(128, 128), root=None) -> DetectionData:
    """Load `spec`: 'shapes[:KEY=VALUE,...]' (split train/search_val/final_val), 'coco:ANN.json:IMG_DIR' or 'voc:DIR'.

    'shapes' with options is a generated variant (detection.shapes_spec), made in the cache on first use.
    A coco spec names one file, so `split` is not used. For voc, ImageSets/Main/{split}.txt is used when
    it exists; otherwise search_val and final_val both read VOC's 'val' list and train reads 'train'.
    """
    kind, colon, rest = spec.partition(":")
    if kind == "shapes" and (rest or not colon):
        options = parse_shapes_options(rest) if rest else {}
        if split not in SPLITS:
            raise ValueError(f"shapes has splits {', '.join(SPLITS)}; got split {split!r}")
        annotation_path, image_dir = ensure_shapes_dataset(root, **options)[split]
        return load_coco(annotation_path, image_dir, image_size=image_size)
    if kind == "coco" and rest.count(":") >= 1:
        annotation_path, _, image_dir = rest.partition(":")
        if annotation_path and image_dir:
            return load_coco(annotation_path, image_dir, image_size=image_size)
    if kind == "voc" and rest:
        has_own_list = (Path(rest) / "ImageSets" / "Main" / f"{split}.txt").is_file()
        voc_split = split if has_own_list else _VOC_SPLIT_OF.get(split, split)
        return load_voc(rest, split=voc_split, image_size=image_size, root=root)
    raise ValueError(f"unknown dataset spec {spec!r}; accepted forms: {DATASET_SPEC_FORMS}")
