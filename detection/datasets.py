"""Dataset specs resolved to the :class:`DatasetIndex` of one split: shapes, COCO or VOC, any classes.

Every dataset has the splits ``train``, ``search_val`` and ``final_val``:

- ``shapes`` (and its variants) generates them (:mod:`detection.shapes`), into the cache on first use;
- ``voc:`` reads ImageSets/Main/{split}.txt, else VOC's own names (train; val for both evaluation splits);
- a ``coco:`` file, and a VOC folder without split lists, is one set of images: a seeded ``holdout``
  part (option, default 10%) is kept back for evaluation — its first half is ``search_val``, its second
  ``final_val`` — and ``train`` is the rest, so the evaluation never sees a training image. ``holdout=0``
  trains on all of it, and then evaluation needs separate data.

A spec given as *separate* evaluation data is read whole (split ``all``) when it has no splits of its
own (:func:`evaluation_split`). Both formats end as a COCO instances JSON on disk (VOC is converted and
written to the cache), so the ground truth that evaluation reads through pycocotools is the same for
every source. Loading reads annotations only and checks that every image file of the split exists.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from detection.checkpoints import write_atomically
from detection.coco_format import coco_index, read_json
from detection.dataset_index import DatasetIndex, held_out_rows
from detection.dataset_spec import DATASET_SPEC_FORMS, DatasetSpec, parse_dataset_spec
from detection.errors import DatasetError
from detection.shapes import SPLITS, default_cache_root, ensure_shapes_dataset
from detection.voc import folder_classes, read_labels_file, split_stems, voc_to_coco

__all__ = ["DATASET_SPEC_FORMS", "SPLITS", "DatasetIndex", "evaluation_split", "load_coco", "load_dataset",
           "load_voc"]
ALL = "all"  # the whole of a dataset without splits of its own
_VOC_SPLIT_OF = {"train": "train", "search_val": "val", "final_val": "val"}
_VOC_LISTS = ("train", "val", "trainval", "test")


def load_coco(annotation_json, image_dir, *, name: str | None = None, allow_outside: bool = False,
              max_boxes: int | None = None) -> DatasetIndex:
    """Return the index of every image of a COCO instances JSON whose images lie in ``image_dir``."""
    path = Path(annotation_json)
    return coco_index(read_json(path), path, Path(image_dir), name=name or str(path),
                      allow_outside=allow_outside, max_boxes=max_boxes)


def load_voc(voc_dir, *, split: str = "val", classes=None, allow_outside: bool = False, root=None,
             max_boxes: int | None = None, progress: bool = False) -> DatasetIndex:
    """Return the index of a VOC split (its list, or every XML when there is none), converted to COCO in the cache."""
    voc_dir = Path(voc_dir)
    stems = split_stems(voc_dir, split, allow_outside=allow_outside)
    doc = voc_to_coco(voc_dir, split, classes=classes, allow_outside=allow_outside, stems=stems, progress=progress)
    text = json.dumps(doc)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    cache = Path(root) if root is not None else default_cache_root()
    annotation_path = cache / "voc" / f"{voc_dir.resolve().name}-{split}-{digest}.json"
    if not annotation_path.is_file():
        write_atomically(annotation_path, text.encode())
    return coco_index(doc, annotation_path, voc_dir / "JPEGImages", name=f"{voc_dir} {split}",
                      allow_outside=allow_outside, max_boxes=max_boxes)


def _voc_classes(spec: DatasetSpec) -> tuple[str, ...]:
    if spec.classes:
        return spec.classes
    if spec.labels_file is not None:
        return read_labels_file(spec.labels_file)
    return folder_classes(spec.folder)


def _voc_list_split(spec: DatasetSpec, split: str) -> str | None:
    """The VOC list a split reads (its own, else VOC's name for it), or None when the folder has neither."""
    lists = spec.folder / "ImageSets" / "Main"
    for name in (split, _VOC_SPLIT_OF.get(split)):
        if name and (lists / f"{name}.txt").is_file():
            return name
    return None


def evaluation_split(spec: str | DatasetSpec, split: str) -> str:
    """The split that separate evaluation data ``spec`` is read with: ``split`` where it has one, else ``all``."""
    spec = spec if isinstance(spec, DatasetSpec) else parse_dataset_spec(spec)
    if spec.kind == "shapes" or (spec.kind == "voc" and _voc_list_split(spec, split)):
        return split
    return ALL


def _held_out_split(index: DatasetIndex, spec: DatasetSpec, split: str) -> DatasetIndex:
    if split == ALL:
        return index
    if spec.holdout == 0:
        if split == "train":
            return index
        raise DatasetError(f"{spec.text} with holdout=0 keeps no images back for {split}; give separate "
                           "evaluation data (--eval-data), or hold out part of it (e.g. holdout=0.1)")
    held = held_out_rows(index.image_ids, spec.holdout, spec.seed, spec.text)
    half = (len(held) + 1) // 2
    rows, part = {"train": (sorted(set(range(len(index))) - set(held.tolist())), "all but the held-out"),
                  "search_val": (np.sort(held[:half]), "first half of the held-out"),
                  "final_val": (np.sort(held[half:]), "second half of the held-out")}[split]
    return index.select(rows, name=f"{spec.text} {split} ({part} {spec.holdout:g}, seed {spec.seed})")


def load_dataset(spec: str | DatasetSpec, *, split: str, root=None, progress: bool = True) -> DatasetIndex:
    """Return the index of ``split`` of ``spec`` (see the module docstring), with every image file checked to exist.

    ``split`` is train, search_val, final_val, or ``all`` for a dataset without splits of its own. The
    shapes dataset is generated into ``root`` (default the cache) when missing, with a progress bar.
    """
    spec = spec if isinstance(spec, DatasetSpec) else parse_dataset_spec(spec)
    if split not in (*SPLITS, ALL):
        raise DatasetError(f"unknown split {split!r}; splits are {', '.join(SPLITS)} (and {ALL} for coco)")
    if spec.kind == "shapes":
        if split not in SPLITS:
            raise DatasetError(f"shapes has splits {', '.join(SPLITS)}; got split {split!r}")
        annotation_path, image_dir = ensure_shapes_dataset(root, progress=progress,
                                                           **dict(spec.shapes_options))[split]
        index = load_coco(annotation_path, image_dir, name=f"{spec.text} {split}")
    elif spec.kind == "coco":
        index = _held_out_split(load_coco(spec.annotations, spec.folder, name=spec.text,
                                          allow_outside=spec.allow_outside), spec, split)
    else:
        list_split = _voc_list_split(spec, split) if split != ALL else None
        lists = spec.folder / "ImageSets" / "Main"
        if list_split is None and split != ALL and any((lists / f"{name}.txt").is_file() for name in _VOC_LISTS):
            raise DatasetError(f"{lists} has split lists but none for {split} ({split}.txt or "
                               f"{_VOC_SPLIT_OF.get(split, split)}.txt); add it, or give separate evaluation data")
        index = load_voc(spec.folder, split=list_split or ALL, classes=_voc_classes(spec),
                         allow_outside=spec.allow_outside, root=root, progress=progress)
        if list_split is None:
            index = _held_out_split(index, spec, split)
    index.check_files()
    return index
