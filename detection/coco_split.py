"""Carve a held-out search-validation split out of a COCO training annotation file.

The paper held out 10k training images for the search's validation and trained the proxy on the rest
(CSE-Autoloss, Sec. 4.1), so a proxy training never sees an image it is scored on. :func:`split_coco` draws the
images with a seeded generator and writes two COCO files with the source's categories, info and licenses: the
remaining training images (``search_train.json``) and the search-validation ones (``search_val.json``), each
with its images' annotations.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from detection.checkpoints import write_atomically
from detection.coco_format import read_json
from detection.errors import DatasetError

TRAIN_FILE = "search_train.json"
VAL_FILE = "search_val.json"
DEFAULT_SEARCH_VAL = 10_000  # the paper's held-out images


@dataclasses.dataclass(frozen=True)
class CocoSplit:
    """What :func:`split_coco` wrote: the two files and their image and annotation counts."""

    train_file: str
    val_file: str
    train_images: int
    val_images: int
    train_annotations: int
    val_annotations: int
    seed: int

    def to_dict(self) -> dict:
        """Return the split as a JSON-ready dict."""
        return dataclasses.asdict(self)


def split_coco(
    annotations: str | Path,
    out_dir: str | Path,
    *,
    search_val: int = DEFAULT_SEARCH_VAL,
    seed: int = 0,
    final: str | Path | None = None,
) -> CocoSplit:
    """Write ``search_train.json`` and ``search_val.json`` into ``out_dir``: ``search_val`` images drawn with ``seed``.

    Raises DatasetError when ``search_val`` is not below the number of images, when ``final`` (the final
    evaluation's annotation file) shares images with ``annotations`` (by ``file_name``), or when a file to write
    exists already.
    """
    annotations, out_dir = Path(annotations), Path(out_dir)
    doc = read_json(annotations)
    if not isinstance(doc, dict) or not all(isinstance(doc.get(key), list) for key in ("images", "annotations")):
        raise DatasetError(f"{annotations}: not a COCO instances file (needs lists 'images' and 'annotations')")
    images = doc["images"]
    if not 1 <= search_val < len(images):
        raise DatasetError(
            f"--search-val {search_val} must be at least 1 and below the {len(images)} images of "
            f"{annotations}, so that some remain for training"
        )
    if final is not None:
        _check_disjoint(annotations, images, Path(final))
    targets = [out_dir / TRAIN_FILE, out_dir / VAL_FILE]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise DatasetError(f"{', '.join(existing)} exists already; choose another --out (nothing was written)")
    chosen = set(np.random.default_rng(seed).permutation(len(images))[:search_val].tolist())
    parts = {}
    for name, held_out in (("train", False), ("val", True)):
        kept = [image for position, image in enumerate(images) if (position in chosen) == held_out]
        kept_ids = {image.get("id") for image in kept}
        kept_annotations = [a for a in doc["annotations"] if a.get("image_id") in kept_ids]
        parts[name] = {**doc, "images": kept, "annotations": kept_annotations}
    for path, part in zip(targets, (parts["train"], parts["val"]), strict=True):
        write_atomically(path, json.dumps(part).encode())
    return CocoSplit(
        str(targets[0]),
        str(targets[1]),
        len(parts["train"]["images"]),
        len(parts["val"]["images"]),
        len(parts["train"]["annotations"]),
        len(parts["val"]["annotations"]),
        seed,
    )


def _check_disjoint(annotations: Path, images: list[dict], final: Path) -> None:
    """DatasetError naming shared images when the final split's file names any image of the training file."""
    final_doc = read_json(final)
    if not isinstance(final_doc, dict) or not isinstance(final_doc.get("images"), list):
        raise DatasetError(f"{final}: not a COCO instances file (needs a list 'images')")
    names = {image.get("file_name") for image in images}
    shared = sorted(str(image.get("file_name")) for image in final_doc["images"] if image.get("file_name") in names)
    if shared:
        raise DatasetError(
            f"{len(shared)} images of the final split {final} are also in {annotations} (e.g. "
            f"{', '.join(shared[:3])}); the final evaluation must use images the search never sees"
        )
