"""Reading one image file: its size from the header, or its pixels decoded and resized.

Every failure is a :class:`DatasetError` naming the file and what to do: a missing or unreadable file, a
truncated one, one whose header claims more pixels than Pillow's decompression-bomb limit, one whose
size differs from what its annotation says.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from detection.errors import DatasetError


def open_image(path: str, where: str) -> Image.Image:
    """Return the lazily opened image (header read, pixels not yet); DatasetError when it cannot be."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise DatasetError(f"missing image file {path} ({where}); check the image folder and file name") from None
    except Image.DecompressionBombError as error:
        raise DatasetError(f"image file {path} ({where}) claims too many pixels: {error}; replace the file, "
                           "or shrink it") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"unreadable image file {path} ({where}): {error}; replace or remove it") from None


def image_size(path: str, where: str) -> tuple[int, int]:
    """Return (height, width) of the image file from its header."""
    with open_image(path, where) as image:
        width, height = image.size
    if width > 0 and height > 0:
        return height, width
    raise DatasetError(f"image file {path} ({where}) has size {width}x{height}; replace or remove it")


def decode_resized(path: str, size: tuple[int, int], resized: tuple[int, int], where: str) -> np.ndarray:
    """Return the RGB pixels (uint8 [h', w', 3]) of the image at ``path`` resized to ``resized`` (h', w').

    ``size`` is the (height, width) the annotations give; a file of another size is an error, since the
    boxes would not fit it.
    """
    with open_image(path, where) as image:
        if (image.height, image.width) != tuple(size):
            raise DatasetError(
                f"image file {path} is {image.width}x{image.height}, but {where} says {size[1]}x{size[0]}; "
                "fix width/height in the annotations or replace the file"
            )
        new_height, new_width = resized
        try:
            if image.format == "JPEG" and new_width * 2 <= image.width:
                image.draft("RGB", (new_width, new_height))  # decode at a reduced DCT scale: faster, same rule
            image = image.convert("RGB")
            if image.size != (new_width, new_height):
                image = image.resize((new_width, new_height), Image.BILINEAR)
            return np.asarray(image)
        except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt pixel data
            raise DatasetError(f"unreadable image file {path} ({where}): {error}; replace or remove it") from None
