"""A dataset split as an index: image files, sizes and boxes in columns, never its pixels.

Memory grows with the number of annotations, not with image pixels: for COCO train2017 (118k images,
860k boxes) the columns take about 14 MB of boxes and 10 MB of paths. Images are read, decoded and
resized only when a batch needs them (:mod:`detection.pipeline`). Every batch row holds ``max_boxes`` box
slots, fixed for the index and every subset of it, so batch shapes stay static.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from detection.errors import DatasetError


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: compare and hash by identity
class DatasetIndex:
    """Image files, sizes and ground truth of one split, plus what evaluation needs to map back."""

    name: str  # spec and split, for messages and cache keys
    paths: tuple[str, ...]  # image file of each image
    image_ids: np.ndarray  # int64 [N] ids in the annotation file
    sizes: np.ndarray  # int64 [N, 2] original (height, width)
    box_start: np.ndarray  # int64 [N + 1]: the boxes of image i are rows box_start[i]:box_start[i + 1]
    boxes: np.ndarray  # float32 [A, 4] x1, y1, x2, y2 in original pixels (training targets only: no crowd)
    labels: np.ndarray  # int32 [A] contiguous class 0..C-1
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]  # annotation-file category id of each contiguous class
    annotation_file: str  # COCO JSON holding the ground truth
    max_boxes: int  # box slots of a batch row

    @property
    def num_classes(self) -> int:
        """The number of contiguous classes C."""
        return len(self.class_names)

    def __len__(self) -> int:
        """The number of images N."""
        return len(self.paths)

    def boxes_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (boxes [k, 4] in original pixels, labels [k]) of image ``row``."""
        start, stop = self.box_start[row], self.box_start[row + 1]
        return self.boxes[start:stop], self.labels[start:stop]

    def classes_present(self) -> np.ndarray:
        """Return bool [N, C]: whether image i holds an object of class c."""
        present = np.zeros((len(self), self.num_classes), bool)
        rows = np.repeat(np.arange(len(self)), np.diff(self.box_start))
        present[rows, self.labels] = True
        return present

    def select(self, rows, name: str | None = None) -> DatasetIndex:
        """Return the images at ``rows``, in that order (evaluation then scores only their image ids)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        counts = np.diff(self.box_start)[rows]
        ends = np.cumsum(counts)
        # box j of the selection is box (j - where its image starts in the selection) of its image
        gathered = np.repeat(self.box_start[rows] - (ends - counts), counts) + np.arange(ends[-1] if len(rows) else 0)
        return dataclasses.replace(
            self,
            name=name or self.name,
            paths=tuple(self.paths[r] for r in rows),
            image_ids=self.image_ids[rows],
            sizes=self.sizes[rows],
            box_start=np.concatenate([[0], ends]).astype(np.int64),
            boxes=self.boxes[gathered].reshape(-1, 4),
            labels=self.labels[gathered],
        )

    def with_class_order(self, class_names) -> DatasetIndex:
        """Return the index with its labels renumbered to ``class_names``' order (the same classes, by name).

        Raises DatasetError listing both class lists when the sets differ.
        """
        wanted = list(class_names)
        if sorted(wanted) != sorted(self.class_names):
            raise DatasetError(
                f"{self.name} has the classes {list(self.class_names)}, but the model was trained on {wanted}; "
                "evaluate on data with the same classes"
            )
        if wanted == list(self.class_names):
            return self
        new_label = np.asarray([wanted.index(name) for name in self.class_names], np.int32)
        category_of = dict(zip(self.class_names, self.category_ids, strict=True))
        return dataclasses.replace(self, labels=new_label[self.labels], class_names=tuple(wanted),
                                   category_ids=tuple(category_of[name] for name in wanted))

    def check_files(self) -> None:
        """Raise DatasetError naming the missing image files (an existence check before any training)."""
        missing = [path for path in self.paths if not os.path.isfile(path)]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DatasetError(
                f"{len(missing)} image file(s) of {self.name} are missing: {shown} (listed in "
                f"{self.annotation_file}); check the image folder and the file names"
            )


def held_out_rows(image_ids: np.ndarray, holdout: float, seed: int, where: str) -> np.ndarray:
    """Return the rows kept back for evaluation: ``holdout`` (a fraction, at least 2 images, or a count when >= 1).

    The draw, and its order (the rows come in the order drawn), depends on the seed and the set of image
    ids only, not on their order in the file.
    """
    count = len(image_ids)
    wanted = int(holdout) if holdout >= 1 else max(2, round(holdout * count))
    if not 2 <= wanted < count:
        raise DatasetError(
            f"{where}: holdout={holdout:g} of {count} images keeps back {wanted}; evaluation needs at least 2 "
            "held-out images and training at least 1 (change holdout, or give separate evaluation data)"
        )
    by_id = np.argsort(image_ids, kind="stable")
    chosen = np.random.default_rng([seed, 0x4E1D]).permutation(count)[:wanted]
    return by_id[chosen]
