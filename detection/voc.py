"""Pascal VOC annotations (Annotations/*.xml, JPEGImages/, ImageSets/Main/*.txt) converted to COCO.

VOC corners are 1-based inclusive pixels; `difficult` objects become COCO crowd annotations, so
COCOeval ignores detections that match them instead of counting misses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from PIL import Image

from detection.errors import DatasetError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _voc_number(element, tag: str, where: str) -> float:
    text = element.findtext(tag)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: <{tag}> must be a number, got {text!r}; fix the XML") from None


def _parse_voc_xml(xml_path: Path, image_dir: Path, stem: str):
    try:
        tree = ElementTree.parse(xml_path)
    except ElementTree.ParseError as error:
        line, column = error.position
        raise DatasetError(
            f"{xml_path}:{line}:{column}: malformed XML ({error}); fix or regenerate the file"
        ) from error
    except OSError as error:
        raise DatasetError(f"cannot read {xml_path}: {error}; check the Annotations folder") from error
    root = tree.getroot()
    file_name = (root.findtext("filename") or f"{stem}.jpg").strip()
    size = root.find("size")
    width = int(_voc_number(size, "width", f"{xml_path} <size>")) if size is not None else 0
    height = int(_voc_number(size, "height", f"{xml_path} <size>")) if size is not None else 0
    if width <= 0 or height <= 0:
        image_path = image_dir / file_name
        if not image_path.is_file():
            raise DatasetError(f"missing image file {image_path} (named by {xml_path}); check JPEGImages")
        with Image.open(image_path) as image:
            width, height = image.size
    objects = []
    for number, obj in enumerate(root.iter("object"), start=1):
        where = f"{xml_path}: object {number}"
        name = (obj.findtext("name") or "").strip().lower()
        if name not in VOC_CLASSES:
            raise DatasetError(f"{where}: unknown class {name!r}; VOC classes are {', '.join(VOC_CLASSES)}")
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{where} ({name}) has no <bndbox>; add xmin, ymin, xmax, ymax")
        corners = [_voc_number(box, tag, f"{where} <bndbox>") for tag in ("xmin", "ymin", "xmax", "ymax")]
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append((name, corners, difficult))
    return file_name, width, height, objects


def voc_to_coco(voc_dir, split: str = "val") -> dict:
    """Return a COCO instances document converted from a Pascal VOC folder (difficult -> iscrowd)."""
    voc_dir = Path(voc_dir)
    annotations_dir, image_dir = voc_dir / "Annotations", voc_dir / "JPEGImages"
    if not annotations_dir.is_dir():
        raise DatasetError(f"{voc_dir} has no Annotations folder; point voc: at a VOC year folder (VOC2007)")
    split_file = voc_dir / "ImageSets" / "Main" / f"{split}.txt"
    if split_file.is_file():
        stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
    else:
        stems = sorted(path.stem for path in annotations_dir.glob("*.xml"))
    doc = {
        "info": {"description": f"converted from Pascal VOC {voc_dir.name} split {split}"},
        "images": [],
        "annotations": [],
        "categories": [
            {"id": k + 1, "name": name, "supercategory": "voc"} for k, name in enumerate(VOC_CLASSES)
        ],
    }
    for image_id, stem in enumerate(stems, start=1):
        xml_path = annotations_dir / f"{stem}.xml"
        if not xml_path.is_file():
            raise DatasetError(f"missing annotation file {xml_path} (listed in {split_file}); fix the list")
        file_name, width, height, objects = _parse_voc_xml(xml_path, image_dir, stem)
        doc["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for name, (xmin, ymin, xmax, ymax), difficult in objects:
            # VOC corners are 1-based inclusive pixels: x1 = xmin - 1, width = xmax - xmin + 1.
            w, h = xmax - xmin + 1, ymax - ymin + 1
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": VOC_CLASSES.index(name) + 1,
                    "bbox": [xmin - 1, ymin - 1, w, h],
                    "area": max(w, 0) * max(h, 0),
                    "iscrowd": int(difficult),
                    "difficult": int(difficult),
                }
            )
    return doc
