"""Pascal VOC-format folders (Annotations/*.xml, JPEGImages/, ImageSets/Main/*.txt) converted to COCO.

Any class names work: those the spec gives (``classes=a+b`` or a labels file, one name per line), else the
names found in every XML of the folder, in a stable order — the 20 Pascal VOC classes in their usual
order when all names are among them, otherwise sorted. What LabelImg, CVAT and other tools export as
"Pascal VOC" loads this way.

VOC corners are 1-based inclusive pixels; ``difficult`` objects become COCO crowd annotations, so
COCOeval ignores detections that match them instead of counting misses. Split lists name files by stem;
a stem with a path separator or ``..`` (which would read XML outside Annotations/) is refused unless the
spec says ``allow_outside=yes``, and so is an XML ``<filename>`` leading outside JPEGImages/.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tqdm.auto import tqdm

from detection.coco_format import image_path
from detection.errors import DatasetError
from detection.images import image_size

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _voc_number(element, tag: str, where: str) -> float:
    text = element.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: <{tag}> must be a number, got {text!r}; fix the XML") from None


def _read_xml(xml_path: Path):
    try:
        return ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        line, column = error.position
        raise DatasetError(
            f"{xml_path}:{line}:{column}: malformed XML ({error}); fix or regenerate the file"
        ) from error
    except OSError as error:
        raise DatasetError(f"cannot read {xml_path}: {error}; check the Annotations folder") from error


def _object_names(root) -> list[str]:
    return [(obj.findtext("name") or "").strip() for obj in root.iter("object")]


def _parse_voc_xml(xml_path: Path, image_dir: Path, stem: str, allow_outside: bool):
    root = _read_xml(xml_path)
    file_name = (root.findtext("filename") or f"{stem}.jpg").strip()
    path = image_path(image_dir, file_name, f"<filename> of {xml_path}", allow_outside=allow_outside)
    size = root.find("size")
    width = int(_voc_number(size, "width", f"{xml_path} <size>")) if size is not None else 0
    height = int(_voc_number(size, "height", f"{xml_path} <size>")) if size is not None else 0
    if width <= 0 or height <= 0:
        height, width = image_size(path, f"named by {xml_path}")
    objects = []
    for number, obj in enumerate(root.iter("object"), start=1):
        where = f"{xml_path}: object {number}"
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{where} ({name}) has no <bndbox>; add xmin, ymin, xmax, ymax")
        corners = [_voc_number(box, tag, f"{where} <bndbox>") for tag in ("xmin", "ymin", "xmax", "ymax")]
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((where, name, corners, difficult))
    return file_name, width, height, objects


def split_stems(voc_dir: Path, split: str, *, allow_outside: bool) -> list[str] | None:
    """Return the stems listed in ImageSets/Main/{split}.txt, or None when the folder has no such list."""
    split_file = voc_dir / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        return None
    stems = []
    for number, line in enumerate(split_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        stem = line.split()[0]
        if "\x00" in stem or not allow_outside and ("/" in stem or "\\" in stem or stem in (".", "..")
                                                  or os.path.isabs(stem)):
            raise DatasetError(
                f"{split_file}:{number}: {stem!r} is not a file stem inside Annotations/; list stems such as "
                "000005, or add allow_outside=yes to the dataset spec (voc,allow_outside=yes:DIR) to allow it"
            )
        stems.append(stem)
    return stems


def folder_classes(voc_dir: Path) -> tuple[str, ...]:
    """The class names of every XML in Annotations/: the 20 VOC classes if all are among them, else sorted."""
    names = set()
    for xml_path in sorted((voc_dir / "Annotations").glob("*.xml")):
        names.update(_object_names(_read_xml(xml_path)))
    if "" in names:
        raise DatasetError(f"an object in {voc_dir / 'Annotations'} has no <name>; name every object")
    return VOC_CLASSES if names <= set(VOC_CLASSES) else tuple(sorted(names))


def read_labels_file(path: Path) -> tuple[str, ...]:
    """The class names of a labels file, one per line (blank lines and # comments skipped)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read labels file {path}: {error}; give one class name per line") from None
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not names or len(set(names)) != len(names):
        raise DatasetError(f"labels file {path} must hold distinct class names, one per line; got {names}")
    return tuple(names)


def voc_to_coco(voc_dir, split: str, *, classes: tuple[str, ...] | None = None, allow_outside: bool = False,
                stems: list[str] | None = None, progress: bool = False) -> dict:
    """Return a COCO instances document converted from a Pascal VOC folder (difficult -> iscrowd).

    ``stems`` defaults to the split's list, or every XML in Annotations/ when there is none; ``classes`` to
    :func:`folder_classes`.
    """
    voc_dir = Path(voc_dir)
    annotations_dir, image_dir = voc_dir / "Annotations", voc_dir / "JPEGImages"
    if not annotations_dir.is_dir():
        raise DatasetError(f"{voc_dir} has no Annotations folder; point voc: at a VOC-format folder "
                           "(Annotations/, JPEGImages/, optionally ImageSets/Main/)")
    if stems is None:
        stems = sorted(path.stem for path in annotations_dir.glob("*.xml"))
    classes = classes or folder_classes(voc_dir)
    doc = {
        "info": {"description": f"converted from Pascal VOC-format {voc_dir.name} split {split}"},
        "images": [],
        "annotations": [],
        "categories": [{"id": k + 1, "name": name, "supercategory": "voc"} for k, name in enumerate(classes)],
    }
    for image_id, stem in enumerate(tqdm(stems, desc=f"read {voc_dir.name} {split}", disable=not progress,
                                         unit="xml"), start=1):
        xml_path = annotations_dir / f"{stem}.xml"
        if not xml_path.is_file():
            raise DatasetError(f"missing annotation file {xml_path} (listed for split {split}); fix the list")
        file_name, width, height, objects = _parse_voc_xml(xml_path, image_dir, stem, allow_outside)
        doc["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for where, name, (xmin, ymin, xmax, ymax), difficult in objects:
            if name not in classes:
                raise DatasetError(f"{where}: unknown class {name!r}; the classes are {', '.join(classes)} "
                                   "(fix the name, or list it in classes=... / the labels file)")
            # VOC corners are 1-based inclusive pixels: x1 = xmin - 1, width = xmax - xmin + 1.
            w, h = xmax - xmin + 1, ymax - ymin + 1
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": classes.index(name) + 1,
                "bbox": [xmin - 1, ymin - 1, w, h], "area": max(w, 0) * max(h, 0),
                "iscrowd": int(difficult), "difficult": int(difficult),
            })
    return doc
