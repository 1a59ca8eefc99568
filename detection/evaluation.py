"""COCO box evaluation with pycocotools, returning the paper's AP columns plus a VOC-style mAP@0.5.

Detections come as padded arrays in original image pixels (``detection.inference.detect`` maps them back);
they are converted to COCO [x, y, w, h] and the file's category ids, and scored by
`COCOeval(gt, dt, "bbox")` on the images of the index only (a subset of the file is fine).

Metric values are fractions in [0, 1]. A size bin with no ground truth (COCOeval's -1) is NaN.
`mAP50_voc` is the VOC2010+ all-point interpolated AP at IoU 0.5, averaged over classes with ground
truth, computed from COCOeval's own matches (area 'all', 100 detections per image). Matching follows
COCO's rules (a detection takes the best-IoU unmatched ground truth; crowd/difficult ones are ignored),
whereas the VOC devkit counts a detection whose best ground truth is already taken as a false positive,
so values can differ slightly from the devkit's.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detection.dataset_index import DatasetIndex

AP_COLUMNS = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "mAP50_voc")
_STATS_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "AP_S": 3, "AP_M": 4, "AP_L": 5}


@functools.lru_cache(maxsize=4)
def _ground_truth(path: str, modified_ns: int, size: int) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(path)
    for ann in coco.dataset["annotations"]:  # COCOeval bins by 'area'; files without it use the box area
        ann.setdefault("area", ann["bbox"][2] * ann["bbox"][3])
    return coco


def load_ground_truth(annotation_file: str) -> COCO:
    """Return the pycocotools COCO object of `annotation_file` (cached while the file is unchanged)."""
    stat = os.stat(annotation_file)
    return _ground_truth(os.path.abspath(annotation_file), stat.st_mtime_ns, stat.st_size)


def detections_to_coco(data: DatasetIndex, boxes, scores, classes, valid, *, max_per_image: int = 100):
    """Return an [D, 7] array (image_id, x, y, w, h, score, category_id) of detections in original pixels.

    Keeps the `max_per_image` highest-scoring valid detections of each image, as COCO's protocol does.
    """
    boxes, scores = np.asarray(boxes, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    classes, valid = np.asarray(classes), np.asarray(valid, dtype=bool)
    count = len(data)
    if (
        boxes.shape[:1] != (count,)
        or boxes.shape[-1:] != (4,)
        or not (scores.shape == classes.shape == valid.shape == boxes.shape[:2])
    ):
        raise ValueError(
            f"expected boxes [N, K, 4] and scores/classes/valid [N, K] with N = {count}; got "
            f"{boxes.shape}, {scores.shape}, {classes.shape}, {valid.shape}"
        )
    valid = valid & np.isfinite(scores) & np.isfinite(boxes).all(-1)
    if valid.any() and (classes[valid].min() < 0 or classes[valid].max() >= data.num_classes):
        raise ValueError(
            f"detection classes must be in [0, {data.num_classes}), the data's contiguous classes"
        )
    masked_scores = np.where(valid, scores, -np.inf)
    top = np.argsort(-masked_scores, axis=1, kind="stable")[:, :max_per_image]
    rows = np.arange(count)[:, None]
    keep = valid[rows, top]
    original = boxes[rows, top]
    xywh = np.concatenate([original[..., :2], np.maximum(original[..., 2:] - original[..., :2], 0)], axis=-1)
    category_ids = np.asarray(data.category_ids, dtype=np.float64)[np.where(keep, classes[rows, top], 0)]
    image_ids = np.broadcast_to(data.image_ids[:, None], keep.shape).astype(np.float64)
    table = np.concatenate(
        [image_ids[..., None], xywh, scores[rows, top][..., None], category_ids[..., None]], axis=-1
    )
    return table[keep]


def _voc_all_point_ap(evaluator: COCOeval) -> float:
    """Return the VOC all-point AP at IoU 0.5 averaged over classes with ground truth (area 'all')."""
    params = evaluator.params
    num_images, num_areas = len(params.imgIds), len(params.areaRng)
    class_aps = []
    for k in range(len(params.catIds)):
        records = [evaluator.evalImgs[k * num_areas * num_images + i] for i in range(num_images)]
        records = [r for r in records if r is not None]
        num_positives = sum(int(np.count_nonzero(r["gtIgnore"] == 0)) for r in records)
        if num_positives == 0:
            continue
        if not records or not any(len(r["dtScores"]) for r in records):
            class_aps.append(0.0)
            continue
        scores = np.concatenate([r["dtScores"] for r in records])
        matched = np.concatenate([r["dtMatches"][0] for r in records]) > 0
        ignored = np.concatenate([r["dtIgnore"][0] for r in records]).astype(bool)
        order = np.argsort(-scores, kind="mergesort")
        matched, ignored = matched[order], ignored[order]
        true_positives = np.cumsum(matched & ~ignored)
        false_positives = np.cumsum(~matched & ~ignored)
        recall = true_positives / num_positives
        precision = true_positives / np.maximum(true_positives + false_positives, np.finfo(np.float64).eps)
        recall = np.concatenate([[0.0], recall, [1.0]])
        precision = np.concatenate([[0.0], precision, [0.0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone precision envelope
        steps = np.nonzero(recall[1:] != recall[:-1])[0]
        class_aps.append(float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1])))
    return float(np.mean(class_aps)) if class_aps else math.nan


def evaluate_detections(
    data: DatasetIndex, boxes, scores, classes, valid, *, max_per_image: int = 100
) -> dict:
    """Return COCO AP, AP50, AP75, AP_S, AP_M, AP_L, mAP50_voc (fractions) and eval_seconds for detections.

    Arrays: boxes [N, K, 4] x1y1x2y2 in original pixels, scores [N, K], classes [N, K] contiguous class
    indices, valid [N, K]; row i belongs to `data.image_ids[i]`.
    """
    start = time.perf_counter()
    ground_truth = load_ground_truth(data.annotation_file)
    table = detections_to_coco(data, boxes, scores, classes, valid, max_per_image=max_per_image)
    metrics = {name: 0.0 for name in AP_COLUMNS}
    with contextlib.redirect_stdout(io.StringIO()):
        if len(table):  # pycocotools cannot load an empty result list; no detections score 0
            evaluator = COCOeval(ground_truth, ground_truth.loadRes(table), "bbox")
            evaluator.params.imgIds = sorted(int(i) for i in data.image_ids)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            for name, index in _STATS_INDEX.items():
                value = float(evaluator.stats[index])
                metrics[name] = math.nan if value < 0 else value
            metrics["mAP50_voc"] = _voc_all_point_ap(evaluator)
        else:
            metrics.update(_empty_bins(ground_truth, data))
    metrics["eval_seconds"] = time.perf_counter() - start
    return metrics


def _empty_bins(ground_truth: COCO, data: DatasetIndex) -> dict[str, float]:
    """Return NaN for the size bins with no (non-crowd) ground truth in the data's images."""
    annotations = ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[int(i) for i in data.image_ids]))
    areas = np.asarray([a["area"] for a in annotations if not a.get("iscrowd", 0)], dtype=np.float64)
    bins = {"AP_S": (0, 32**2), "AP_M": (32**2, 96**2), "AP_L": (96**2, math.inf)}
    missing = {
        name: math.nan for name, (low, high) in bins.items() if not ((areas >= low) & (areas <= high)).any()
    }
    if not len(areas):
        missing.update({name: math.nan for name in AP_COLUMNS})
    return missing


def format_ap_table(metrics) -> str:
    """Return an aligned text table (percent) of the AP columns; `metrics` is one dict or {row name: dict}."""
    rows = metrics if all(isinstance(value, dict) for value in metrics.values()) else {"": metrics}
    label_width = max(len(str(name)) for name in rows)
    widths = [max(len(column), 5) for column in AP_COLUMNS]
    header = " " * label_width + "".join(
        f"  {column:>{w}}" for column, w in zip(AP_COLUMNS, widths, strict=True)
    )
    lines = [header]
    for name, row in rows.items():
        cells = []
        for column, w in zip(AP_COLUMNS, widths, strict=True):
            value = row.get(column, math.nan)
            cells.append(f"  {'-' if value is None or math.isnan(value) else f'{100 * value:.1f}':>{w}}")
        lines.append(f"{str(name):<{label_width}}" + "".join(cells))
    return "\n".join(lines)
