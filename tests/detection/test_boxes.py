"""Box operations against NumPy / plain-Python references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from detection.boxes import aligned_areas, aligned_iou, batched_nms, box_iou, decode_ltrb, encode_ltrb


def random_boxes(rng, n, size=100.0, zero_area_every=5):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    wh[::zero_area_every, 0] = 0.0  # some zero-width boxes
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def numpy_areas(a, b):
    inter_w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = inter_w * inter_h
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    union = area(a) + area(b) - inter
    encl = (np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])) * (
        np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1])
    )
    return inter, union, encl


def test_aligned_areas_match_numpy_and_are_nonnegative():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 64), random_boxes(rng, 64)
    b[:8] = a[:8]  # identical pairs
    i, u, e = (np.asarray(v) for v in jax.jit(aligned_areas)(a, b))
    ref_i, ref_u, ref_e = numpy_areas(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(i, ref_i, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(u, ref_u, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(e, ref_e, rtol=1e-5, atol=1e-3)
    assert np.all(i >= 0) and np.all(u >= 0) and np.all(e >= 0)
    assert np.all(i <= u + 1e-3) and np.all(u <= e + 1e-3)


def test_zero_area_boxes_give_finite_areas_and_iou():
    point = jnp.array([[5.0, 5.0, 5.0, 5.0]])
    i, u, e = aligned_areas(point, point)
    assert float(i[0]) == 0.0 and float(u[0]) == 0.0 and float(e[0]) == 0.0
    assert np.isfinite(aligned_iou(point, point)).all()
    grad = jax.grad(lambda p: aligned_iou(p, point).sum())(point)
    assert np.isfinite(grad).all()


def test_box_iou_pairwise_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 7), random_boxes(rng, 5)
    iou = np.asarray(box_iou(a, b))
    assert iou.shape == (7, 5)
    for n in range(7):
        inter, union, _ = numpy_areas(np.repeat(a[n : n + 1], 5, 0), b)
        np.testing.assert_allclose(iou[n], inter / np.maximum(union, 1e-7), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diag(np.asarray(box_iou(b, b)))[1:], 1.0, rtol=1e-5)


def test_ltrb_round_trip_and_sign():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 100, (10, 2)).astype(np.float32)
    boxes = random_boxes(rng, 10)
    ltrb = encode_ltrb(points, boxes)
    np.testing.assert_allclose(decode_ltrb(points, ltrb), boxes, atol=1e-4)
    inside = np.all(np.asarray(ltrb) > 0, axis=1)
    expected = (
        (points[:, 0] > boxes[:, 0])
        & (points[:, 0] < boxes[:, 2])
        & (points[:, 1] > boxes[:, 1])
        & (points[:, 1] < boxes[:, 3])
    )
    np.testing.assert_array_equal(inside, expected)


def python_nms(boxes, scores, classes, valid, threshold, max_output):
    order = [k for k in np.argsort(-scores, kind="stable") if valid[k]]
    kept = []
    for k in order:
        if all(
            classes[j] != classes[k] or numpy_areas(boxes[[j]], boxes[[k]])[0][0] / numpy_areas(
                boxes[[j]], boxes[[k]]
            )[1][0] <= threshold
            for j in kept
        ):
            kept.append(k)
    return kept[:max_output]


@pytest.mark.parametrize("num_candidates, max_output", [(40, 10), (6, 10)])
def test_batched_nms_matches_python_reference(num_candidates, max_output):
    rng = np.random.default_rng(3)
    batch = 3
    boxes = np.stack([random_boxes(rng, num_candidates, size=40.0, zero_area_every=1000) for _ in range(batch)])
    scores = rng.permutation(batch * num_candidates).reshape(batch, num_candidates).astype(np.float32) / 100
    classes = rng.integers(0, 3, (batch, num_candidates)).astype(np.int32)
    valid = rng.random((batch, num_candidates)) > 0.2
    nms = jax.jit(batched_nms, static_argnames=("iou_threshold", "max_output"))
    result = nms(boxes, scores, classes, valid, iou_threshold=0.5, max_output=max_output)
    assert result.boxes.shape == (batch, max_output, 4) and result.valid.shape == (batch, max_output)
    for b in range(batch):
        expected = python_nms(boxes[b], scores[b], classes[b], valid[b], 0.5, max_output)
        count = int(result.valid[b].sum())
        assert count == len(expected)
        np.testing.assert_allclose(result.scores[b, :count], scores[b, expected])
        np.testing.assert_array_equal(result.classes[b, :count], classes[b, expected])
        np.testing.assert_allclose(result.boxes[b, :count], boxes[b, expected])
        assert np.all(np.asarray(result.classes[b, count:]) == -1)


def test_nms_is_class_aware():
    box = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]], np.float32)
    result = batched_nms(
        box, np.array([[0.9, 0.8, 0.7]]), np.array([[0, 1, 0]], np.int32), iou_threshold=0.5, max_output=3
    )
    np.testing.assert_array_equal(result.valid[0], [True, True, False])
    np.testing.assert_array_equal(result.classes[0, :2], [0, 1])
