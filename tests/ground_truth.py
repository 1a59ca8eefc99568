"""The ground truth of a dataset index as padded arrays, for tests that score perfect detections."""

import numpy as np


def ground_truth(index):
    """(boxes [N, M, 4] in original pixels, labels [N, M], valid [N, M]) of an index, padded to max_boxes."""
    boxes = np.zeros((len(index), index.max_boxes, 4), np.float32)
    labels = np.zeros((len(index), index.max_boxes), np.int32)
    valid = np.zeros((len(index), index.max_boxes), bool)
    for row in range(len(index)):
        found, classes = index.boxes_of(row)
        boxes[row, : len(found)], labels[row, : len(found)], valid[row, : len(found)] = found, classes, True
    return boxes, labels, valid
