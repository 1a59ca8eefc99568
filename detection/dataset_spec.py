"""The text of a dataset spec, parsed by our own grammar (no ``eval``) into a typed :class:`DatasetSpec`.

Forms::

    shapes                                    the built-in generated dataset
    shapes:KEY=VALUE,...                      a generated variant (detection.shapes_spec)
    coco[,OPTION=VALUE...]:ANNOTATIONS.json:IMAGE_DIR
    voc[,OPTION=VALUE...]:VOC_DIR

Options of ``coco`` and ``voc`` come before the first ``:``, so everything after it is paths, which may
contain ``:`` and ``,``. The annotations path of ``coco`` ends at the first ``.json:``; an annotation file
of another name works when the rest holds no other ``:``.

- ``holdout=F`` (coco, voc): a fraction in [0, 1), or a count of images, kept back for evaluation when the
  data has no splits of its own (default 0.1); 0 trains on all of it (evaluation then needs other data).
- ``seed=N`` (coco, voc): seed of the held-out draw (default 0), independent of the training seed.
- ``classes=NAME+NAME+...`` (voc): the class names, in label order.
- ``labels=FILE`` (voc): a labels file, one class name per line (relative to VOC_DIR).
- ``allow_outside=yes`` (coco, voc): let file names and split lists name files outside the dataset's
  folders (default no).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from detection.errors import DatasetError
from detection.shapes_spec import KEYS as SHAPES_KEYS
from detection.shapes_spec import parse_shapes_options

DATASET_SPEC_FORMS = (
    f"'shapes', 'shapes:KEY=VALUE,...' (keys {', '.join(SHAPES_KEYS)}), "
    "'coco[,OPTION=VALUE...]:ANNOTATIONS.json:IMAGE_DIR' or 'voc[,OPTION=VALUE...]:VOC_DIR' "
    "(options holdout, seed, allow_outside; voc also classes=NAME+NAME or labels=FILE)"
)
DEFAULT_HOLDOUT = 0.1
_OPTIONS = {"coco": ("holdout", "seed", "allow_outside"), "voc": ("holdout", "seed", "allow_outside", "classes",
                                                                   "labels")}
_JSON_END = re.compile(r"\.json:", re.IGNORECASE)
_COUNT = re.compile(r"[0-9]{1,9}")
_FRACTION = re.compile(r"0?\.[0-9]+|0")
_BOOLEANS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One parsed dataset spec; ``text`` is what the user wrote (and what is stored with a model)."""

    kind: str  # shapes | coco | voc
    text: str
    shapes_options: tuple[tuple[str, Any], ...] = ()  # ShapesConfig fields of a variant
    annotations: Path | None = None  # coco: the annotation file
    folder: Path | None = None  # coco: the image folder; voc: the VOC year folder
    holdout: float = DEFAULT_HOLDOUT  # a fraction in [0, 1), or a count of images when >= 1
    seed: int = 0
    classes: tuple[str, ...] | None = None
    labels_file: Path | None = None
    allow_outside: bool = False

    def paths(self) -> list[Path]:
        """The files and folders the spec names (nothing for shapes)."""
        return [path for path in (self.annotations, self.folder, self.labels_file) if path is not None]


def _error(text: str, problem: str) -> DatasetError:
    return DatasetError(f"dataset spec {text!r}: {problem}; accepted forms: {DATASET_SPEC_FORMS}")


def _holdout(text: str, value: str) -> float:
    if _COUNT.fullmatch(value):
        return float(int(value))
    if _FRACTION.fullmatch(value):
        return float(value)
    raise _error(text, f"holdout={value!r} must be a fraction in [0, 1) such as 0.1, or a count of images such as 500")


def _options(text: str, kind: str, items: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in items:
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key or not value:
            raise _error(text, f"option {item.strip()!r} is not KEY=VALUE")
        if key not in _OPTIONS[kind]:
            raise _error(text, f"unknown {kind} option {key!r} (options: {', '.join(_OPTIONS[kind])})")
        if key in fields:
            raise _error(text, f"option {key} is given twice")
        if key == "holdout":
            fields[key] = _holdout(text, value)
        elif key == "seed":
            if not _COUNT.fullmatch(value):
                raise _error(text, f"seed={value!r} must be an integer >= 0")
            fields[key] = int(value)
        elif key == "allow_outside":
            if value.lower() not in _BOOLEANS:
                raise _error(text, f"allow_outside={value!r} must be yes or no")
            fields[key] = _BOOLEANS[value.lower()]
        elif key == "classes":
            names = tuple(name.strip() for name in value.split("+"))
            if not all(names) or len(set(names)) != len(names):
                raise _error(text, f"classes={value!r} must be distinct names joined by '+', e.g. classes=cat+dog")
            fields[key] = names
        else:
            fields["labels_file"] = value
    if "classes" in fields and "labels_file" in fields:
        raise _error(text, "give the class names either as classes=... or as labels=FILE, not both")
    return fields


def parse_dataset_spec(text: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` of ``text``; DatasetError naming the problem and the accepted forms."""
    if not isinstance(text, str) or not text.strip():
        raise _error(str(text), "the spec is empty")
    head, colon, body = text.partition(":")
    kind, *option_items = head.split(",")
    kind = kind.strip()
    if kind == "shapes":
        if option_items or (colon and not body):
            raise _error(text, "shapes takes its options after the colon: shapes:KEY=VALUE,...")
        options = parse_shapes_options(body) if colon else {}
        return DatasetSpec(kind="shapes", text=text, shapes_options=tuple(sorted(options.items())))
    if kind not in _OPTIONS:
        raise _error(text, f"unknown dataset kind {kind!r}")
    fields = _options(text, kind, option_items)
    if not body:
        paths = "ANNOTATIONS.json:IMAGE_DIR" if kind == "coco" else "VOC_DIR"
        raise _error(text, f"{kind} needs {paths} after the colon")
    if kind == "voc":
        folder = Path(body)
        labels = fields.pop("labels_file", None)
        return DatasetSpec(kind="voc", text=text, folder=folder,
                           labels_file=None if labels is None else folder / labels, **fields)
    match = _JSON_END.search(body)
    if match:
        annotations, images = body[: match.end() - 1], body[match.end():]
    elif body.count(":") == 1:
        annotations, images = body.split(":")
    else:
        raise _error(text, "cannot tell where the annotation path ends: name the annotation file *.json, or "
                     "keep ':' out of its path")
    if not annotations or not images:
        raise _error(text, "coco needs both ANNOTATIONS.json and IMAGE_DIR")
    return DatasetSpec(kind="coco", text=text, annotations=Path(annotations), folder=Path(images), **fields)
