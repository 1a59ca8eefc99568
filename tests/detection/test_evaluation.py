"""Tests of COCO evaluation: perfect, empty and degraded detections, subsets, quiet output, table."""

import math

import numpy as np
import pytest
from ground_truth import ground_truth

from detection.evaluation import AP_COLUMNS, detections_to_coco, evaluate_detections, format_ap_table


def _ground_truth_as_detections(data):
    boxes, labels, valid = ground_truth(data)
    return boxes, np.ones(valid.shape, dtype=np.float32), labels, valid


def test_ground_truth_as_detections_scores_one_and_prints_nothing(tiny_shapes_data, capsys):
    metrics = evaluate_detections(tiny_shapes_data, *_ground_truth_as_detections(tiny_shapes_data))
    assert capsys.readouterr().out == ""
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(1.0) and metrics["mAP50_voc"] == pytest.approx(1.0)
    for column in ("AP_S", "AP_M", "AP_L"):
        assert math.isnan(metrics[column]) or metrics[column] == pytest.approx(1.0)
    assert metrics["eval_seconds"] > 0


def test_no_detections_give_zero(tiny_shapes_data, capsys):
    boxes, _, labels, valid = _ground_truth_as_detections(tiny_shapes_data)
    metrics = evaluate_detections(tiny_shapes_data, boxes, np.zeros(valid.shape), labels, np.zeros_like(valid))
    assert capsys.readouterr().out == ""
    assert metrics["AP"] == 0.0 and metrics["AP50"] == 0.0 and metrics["mAP50_voc"] == 0.0


def test_shifted_boxes_lower_ap(tiny_shapes_data):
    data = tiny_shapes_data
    boxes, scores, labels, valid = _ground_truth_as_detections(data)
    perfect = evaluate_detections(data, boxes, scores, labels, valid)["AP"]
    widths = (boxes[..., 2:] - boxes[..., :2])[..., :1]
    shifted = boxes + np.concatenate([widths, np.zeros_like(widths)] * 2, axis=-1) * 0.3
    metrics = evaluate_detections(data, shifted, scores, labels, valid)
    assert metrics["AP"] < perfect and metrics["AP75"] < 1.0


def test_wrong_classes_give_zero(tiny_shapes_data):
    data = tiny_shapes_data
    boxes, scores, labels, valid = _ground_truth_as_detections(data)
    metrics = evaluate_detections(data, boxes, scores, (labels + 1) % data.num_classes, valid)
    assert metrics["AP"] == 0.0 and metrics["mAP50_voc"] == 0.0


def test_subset_is_scored_on_its_images_only(tiny_shapes_data):
    subset = tiny_shapes_data.select([0, 2, 5])
    metrics = evaluate_detections(subset, *_ground_truth_as_detections(subset))
    assert metrics["AP"] == pytest.approx(1.0)


def test_false_positive_ranked_first_lowers_voc_map(tiny_shapes_data):
    data = tiny_shapes_data
    boxes, scores, classes, valid = (
        np.concatenate(parts, axis=1)
        for parts in zip(
            _ground_truth_as_detections(data),
            (
                np.tile([[[0.0, 0.0, 3.0, 3.0]]], (len(data), 1, 1)),
                np.full((len(data), 1), 2.0),
                np.zeros((len(data), 1), dtype=np.int32),
                np.ones((len(data), 1), dtype=bool),
            ),
            strict=True,
        )
    )
    metrics = evaluate_detections(data, boxes, scores, classes, valid)
    assert 0.0 < metrics["mAP50_voc"] < 1.0 and 0.0 < metrics["AP50"] < 1.0


def test_detections_become_coco_xywh_with_the_files_category_ids(tiny_shapes_data):
    data = tiny_shapes_data
    boxes, scores, labels, valid = _ground_truth_as_detections(data)
    table = detections_to_coco(data, boxes, scores, labels, valid)
    first = boxes[0, 0]
    np.testing.assert_allclose(table[0, 1:5], [first[0], first[1], first[2] - first[0], first[3] - first[1]])
    assert table[0, 0] == data.image_ids[0] and table[0, 6] == data.category_ids[labels[0, 0]]
    assert len(table) == valid.sum()


def test_shape_mismatch_is_rejected(tiny_shapes_data):
    data = tiny_shapes_data
    boxes, *rest = _ground_truth_as_detections(data)
    with pytest.raises(ValueError, match="expected boxes"):
        evaluate_detections(data, boxes[:2], *[a[:2] for a in rest])


def test_format_ap_table_aligns_columns():
    metrics = dict.fromkeys(AP_COLUMNS, 0.5) | {"AP_L": math.nan}
    table = format_ap_table({"baseline": metrics, "found": metrics})
    lines = table.splitlines()
    assert lines[0].split() == list(AP_COLUMNS) and len({len(line) for line in lines}) == 1
    assert lines[1].split() == ["baseline", "50.0", "50.0", "50.0", "50.0", "50.0", "-", "50.0"]
    assert format_ap_table(metrics).splitlines()[1].split()[0] == "50.0"
