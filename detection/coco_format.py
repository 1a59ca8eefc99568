"""A COCO instances document checked and turned into a :class:`DatasetIndex` (no pixels are read).

Rules:
- Ids of images, categories and annotations are integers (a list or an object there is an error, not a
  crash); there is at least one category, and category names are distinct (they name the classes).
- Image ``file_name`` is a relative path inside the image folder: an absolute path or one that climbs out
  with ``..`` is refused unless the spec says ``allow_outside=yes``. A missing ``width``/``height`` is read
  from the file's header.
- Boxes with zero or negative width/height are skipped; boxes partly outside the image are clipped to it
  (skipped if nothing remains). Both are counted in one warning per load. Images without objects are kept.
- Crowd annotations (``iscrowd`` = 1, and VOC ``difficult`` objects, written as crowd) are not training
  targets; COCOeval ignores detections that match them instead of counting misses.
- Beyond ``max_boxes`` per image, the largest boxes are kept (counted in the same warning).
- Classes are the categories in id order; any ids work.
Anything else that is wrong raises :class:`DatasetError` naming the file, the record and how to fix it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from detection.dataset_index import DatasetIndex
from detection.errors import DatasetError
from detection.images import image_size


def read_json(path: Path) -> dict:
    """Return the parsed JSON file; DatasetError with line and column when it is malformed."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read annotation file {path}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}:{error.lineno}:{error.colno}: malformed JSON ({error.msg}); fix or regenerate the file"
        ) from error


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_records(doc, path: Path) -> None:
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: top level must be a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(f"{path}: missing list '{key}'; a COCO instances file needs images, annotations "
                               "and categories lists")
    if not doc["categories"]:
        raise DatasetError(f"{path}: the categories list is empty; a detector needs at least one class")
    for kind, required, ids in (
        ("images", ("id", "file_name"), ("id",)),
        ("categories", ("id",), ("id",)),
        ("annotations", ("id", "image_id", "category_id", "bbox"), ("id", "image_id", "category_id")),
    ):
        for index, record in enumerate(doc[kind]):
            missing = [key for key in required if not isinstance(record, dict) or key not in record]
            if missing:
                raise DatasetError(f"{path}: {kind}[{index}] lacks {', '.join(missing)}; add the field(s)")
            for key in ids:
                if not _is_id(record[key]):
                    raise DatasetError(
                        f"{path}: {kind}[{index}].{key} must be an integer (64-bit), got {record[key]!r}")


def _check_coco_schema(doc, path: Path) -> None:
    """Raise DatasetError unless ``doc`` has the parts of a COCO instances file that loading relies on."""
    _check_records(doc, path)
    for image in doc["images"]:
        where = f"{path}: image id {image['id']}"
        if not isinstance(image["file_name"], str) or not image["file_name"]:
            raise DatasetError(f"{where}: file_name must be a non-empty string path")
        for key in ("width", "height"):
            if key in image and not (_is_id(image[key]) and image[key] > 0):
                raise DatasetError(f"{where}: {key} must be a positive integer, got {image[key]!r}")
    names = [str(category.get("name", category["id"])) for category in doc["categories"]]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise DatasetError(f"{path}: category names {repeated} are used twice; class names must be distinct")
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
            raise DatasetError(f"{where}: category_id {ann['category_id']} is not in the categories list "
                               f"{sorted(category_ids)}; add the category or fix the id")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{where}: image_id {ann['image_id']} is not in the images list; fix the id")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise DatasetError(f"{where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")


def image_path(folder: Path, file_name: str, where: str, *, allow_outside: bool) -> str:
    """Return the path of ``file_name`` in ``folder``; DatasetError when it leads outside and that is not allowed."""
    if "\x00" in file_name:
        raise DatasetError(f"{where}: file name {file_name!r} holds a NUL character; fix the file name")
    relative = os.path.normpath(file_name)
    if not allow_outside and (os.path.isabs(relative) or relative == ".." or relative.startswith(".." + os.sep)):
        raise DatasetError(
            f"{where}: {file_name!r} leads outside {folder}; name files inside the dataset's folder, or add "
            "allow_outside=yes to the dataset spec (e.g. coco,allow_outside=yes:ANN.json:IMG_DIR) to allow it"
        )
    return str(folder / file_name)


class _SkipCounter:
    """Collects the annotation ids skipped, clipped or dropped during one load for a single warning."""

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
            warnings.warn(f"{'; '.join(parts)} in {path}", stacklevel=4)


def _image_boxes(annotations: list[dict], height: int, width: int, class_of: dict, counter: _SkipCounter,
                 max_boxes: int | None):
    boxes, labels, ids = [], [], []
    for ann in annotations:
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
    if max_boxes is not None and len(boxes) > max_boxes:
        areas = [-(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        kept = sorted(np.argsort(areas, kind="stable")[:max_boxes].tolist())  # the largest, in file order
        counter.truncated.extend(ids[j] for j in sorted(set(range(len(ids))) - set(kept)))
        boxes, labels = [boxes[j] for j in kept], [labels[j] for j in kept]
    return boxes, labels


def coco_index(doc, annotation_path: Path, image_dir: Path, *, name: str, allow_outside: bool = False,
               max_boxes: int | None = None) -> DatasetIndex:
    """Return the :class:`DatasetIndex` of a COCO instances document whose images lie in ``image_dir``."""
    _check_coco_schema(doc, annotation_path)
    categories = sorted(doc["categories"], key=lambda category: category["id"])
    class_of = {category["id"]: k for k, category in enumerate(categories)}
    by_image: dict[int, list[dict]] = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    counter = _SkipCounter()
    paths, sizes, counts, boxes, labels = [], [], [], [], []
    for record in doc["images"]:
        where = f"image id {record['id']} of {annotation_path}"
        path = image_path(image_dir, record["file_name"], where, allow_outside=allow_outside)
        size = (record["height"], record["width"]) if "width" in record and "height" in record else None
        size = size or image_size(path, where)
        found_boxes, found_labels = _image_boxes(by_image.get(record["id"], []), *size, class_of, counter, max_boxes)
        paths.append(path)
        sizes.append(size)
        counts.append(len(found_boxes))
        boxes.extend(found_boxes)
        labels.extend(found_labels)
    counter.warn(annotation_path)
    return DatasetIndex(
        name=name,
        paths=tuple(paths),
        image_ids=np.asarray([record["id"] for record in doc["images"]], dtype=np.int64),
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        box_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int32),
        class_names=tuple(str(category.get("name", category["id"])) for category in categories),
        category_ids=tuple(category["id"] for category in categories),
        annotation_file=str(annotation_path),
        max_boxes=max_boxes or max([*counts, 1]),
    )
