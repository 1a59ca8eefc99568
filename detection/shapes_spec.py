"""The dataset spec of a generated shapes variant: ``shapes:KEY=VALUE,KEY=VALUE`` -> generator settings.

``shapes`` alone is the built-in dataset (the defaults of :class:`detection.shapes.ShapesConfig`).
With options, another dataset of the same generator is made, for instance one with other statistics
to test whether a loss transfers: ``shapes:seed=1,classes=6,sizes=0.15-0.8,max_objects=4``.

| key          | value                           | meaning                                           |
|--------------|---------------------------------|---------------------------------------------------|
| `seed`       | integer >= 0                    | seed family of every image                        |
| `classes`    | integer 6-10                    | number of shape classes                           |
| `sizes`      | `LOW-HIGH`, 0 < LOW < HIGH <= 1 | range of sqrt(box area), in fractions of the side |
| `max_objects`| integer 1-50                    | at most this many objects per image               |
| `image_size` | integer 16-2048                 | side of the generated images in pixels (loading   |
|              |                                 | then resizes them to the detector's input size)   |
| `train`, `search_val`, `final_val` | integer 1-100000 | images of each split                    |

Options left out keep their default, so ``shapes:seed=0`` is the same dataset (and cache folder) as
``shapes``. The text is parsed by :func:`parse_shapes_options` alone (no ``eval``); an unknown key,
a repeated key or a bad value is a ValueError naming the key, the value, the allowed range and the
accepted form.
"""

from __future__ import annotations

import re
from typing import Any

from detection.shapes import SHAPE_NAMES

SPEC_FORM = "shapes:KEY=VALUE,KEY=VALUE (e.g. shapes:seed=1,classes=6,sizes=0.15-0.8)"
_INTEGER = re.compile(r"[0-9]+")
_FRACTION = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SIZE_RANGE = re.compile(rf"({_FRACTION})-({_FRACTION})")
_MAX_IMAGES = 100_000
_MAX_SEED = 2**32 - 1

# key -> (ShapesConfig field, smallest, largest) of the integer options
_INTEGER_OPTIONS: dict[str, tuple[str, int, int]] = {
    "seed": ("seed", 0, _MAX_SEED),
    "classes": ("num_classes", 6, len(SHAPE_NAMES)),
    "max_objects": ("max_objects", 1, 50),
    "image_size": ("image_size", 16, 2048),
    "train": ("num_train", 1, _MAX_IMAGES),
    "search_val": ("num_search_val", 1, _MAX_IMAGES),
    "final_val": ("num_final_val", 1, _MAX_IMAGES),
}
KEYS = (*_INTEGER_OPTIONS, "sizes")


def _error(key: str, value: str, allowed: str) -> ValueError:
    return ValueError(f"shapes option {key}={value!r}: {key} must be {allowed}; accepted form: {SPEC_FORM}")


def _integer(key: str, value: str) -> int:
    _, low, high = _INTEGER_OPTIONS[key]
    allowed = f"an integer in [{low}, {high}]"
    if not _INTEGER.fullmatch(value) or len(value) > 12 or not low <= int(value) <= high:
        raise _error(key, value, allowed)
    return int(value)


def _size_range(value: str) -> tuple[float, float]:
    allowed = "LOW-HIGH with 0 < LOW < HIGH <= 1 (sqrt of box area over image side), e.g. 0.03-0.5"
    match = _SIZE_RANGE.fullmatch(value)
    if not match:
        raise _error("sizes", value, allowed)
    low, high = float(match[1]), float(match[2])
    if not 0 < low < high <= 1:
        raise _error("sizes", value, allowed)
    return low, high


def parse_shapes_options(options: str) -> dict[str, Any]:
    """Return the ShapesConfig fields set by the options text after ``shapes:`` (``KEY=VALUE,...``)."""
    fields: dict[str, Any] = {}
    seen: set[str] = set()
    for item in options.split(","):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ValueError(f"shapes option {item.strip()!r} is not KEY=VALUE (keys: {', '.join(KEYS)}); "
                             f"accepted form: {SPEC_FORM}")
        if key not in KEYS:
            raise ValueError(f"unknown shapes option {key}={value!r}; keys: {', '.join(KEYS)}; "
                             f"accepted form: {SPEC_FORM}")
        if key in seen:
            raise ValueError(f"shapes option {key} is given twice; give each key once; accepted form: {SPEC_FORM}")
        seen.add(key)
        if key == "sizes":
            fields["object_size_range"] = _size_range(value)
        else:
            fields[_INTEGER_OPTIONS[key][0]] = _integer(key, value)
    return fields

