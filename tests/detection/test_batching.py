"""Tests of training and evaluation batching: static shapes, seeded streams, flip correctness."""

import numpy as np
import pytest

from detection.batching import flip_horizontal, iterate_batches, iterate_eval_batches


def _stream(data, **kwargs):
    return list(iterate_batches(data, 4, **kwargs))


def test_training_batches_have_static_shapes_and_types(tiny_shapes_data):
    batches = _stream(tiny_shapes_data, seed=0, epochs=2)
    assert len(batches) == 2 * (len(tiny_shapes_data) // 4)
    slots = tiny_shapes_data.boxes.shape[1]
    for batch in batches:
        assert batch["images"].shape == (4, 128, 128, 3) and batch["images"].dtype == np.float32
        assert batch["images"].min() >= 0.0 and batch["images"].max() <= 1.0
        assert batch["boxes"].shape == (4, slots, 4) and batch["boxes"].dtype == np.float32
        assert batch["labels"].shape == (4, slots) and batch["labels"].dtype == np.int32
        assert batch["valid"].shape == (4, slots) and batch["valid"].dtype == bool


def test_same_seed_same_stream_other_seed_differs(tiny_shapes_data):
    first, again = _stream(tiny_shapes_data, seed=3, epochs=2), _stream(tiny_shapes_data, seed=3, epochs=2)
    other = _stream(tiny_shapes_data, seed=4, epochs=2)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(first, again, strict=True) for k in a)
    assert not all(np.array_equal(a["boxes"], b["boxes"]) for a, b in zip(first, other, strict=True))


def test_steps_limit_and_endless_stream(tiny_shapes_data):
    assert len(_stream(tiny_shapes_data, seed=0, steps=5)) == 5  # crosses epoch boundaries
    assert len(_stream(tiny_shapes_data, seed=0, epochs=1, steps=100)) == len(tiny_shapes_data) // 4


def test_drop_last_false_fills_the_last_batch(tiny_shapes_data):
    batches = _stream(tiny_shapes_data, seed=0, epochs=1, drop_last=False, shuffle=False, flip=False)
    assert len(batches) == 3 and batches[-1]["images"].shape[0] == 4
    np.testing.assert_array_equal(batches[-1]["images"][2], tiny_shapes_data.images[0] / np.float32(255))


def test_without_shuffle_or_flip_batches_are_the_data(tiny_shapes_data):
    batch = _stream(tiny_shapes_data, seed=0, epochs=1, shuffle=False, flip=False)[0]
    np.testing.assert_array_equal(batch["boxes"], tiny_shapes_data.boxes[:4])
    np.testing.assert_allclose(batch["images"] * 255, tiny_shapes_data.images[:4], atol=1e-3)


def test_each_row_is_the_image_or_its_mirror(tiny_shapes_data):
    data = tiny_shapes_data
    mirrored_images, mirrored_boxes = flip_horizontal(data.images, data.boxes, data.valid)
    flipped = []
    batches = _stream(data, seed=1, epochs=1, shuffle=False, flip=True)
    for number, batch in enumerate(batches):
        for row, index in enumerate(range(4 * number, 4 * number + 4)):
            is_flipped = np.array_equal(batch["boxes"][row], mirrored_boxes[index])
            expected = mirrored_images[index] if is_flipped else data.images[index]
            np.testing.assert_array_equal(batch["images"][row], expected / np.float32(255))
            if not is_flipped:
                np.testing.assert_array_equal(batch["boxes"][row], data.boxes[index])
            flipped.append(is_flipped)
    assert any(flipped) and not all(flipped)


def test_flip_twice_is_identity_and_moves_pixels_with_boxes(tiny_shapes_data):
    images = tiny_shapes_data.images[:3].astype(np.float32)
    boxes, valid = tiny_shapes_data.boxes[:3], tiny_shapes_data.valid[:3]
    once_images, once_boxes = flip_horizontal(images, boxes, valid)
    twice_images, twice_boxes = flip_horizontal(once_images, once_boxes, valid)
    np.testing.assert_array_equal(twice_images, images)
    np.testing.assert_allclose(twice_boxes, boxes, atol=1e-5)
    assert np.all(once_boxes[~valid] == 0)
    width = images.shape[2]
    np.testing.assert_array_equal(once_images[0, 5, 0], images[0, 5, width - 1])
    i, j = np.argwhere(valid)[0]
    x1, y1, x2, y2 = boxes[i, j].astype(int)
    original = images[i, y1:y2, x1:x2]
    mirrored = once_images[i, y1:y2, int(once_boxes[i, j, 0]) : int(once_boxes[i, j, 2])]
    np.testing.assert_array_equal(mirrored, original[:, ::-1])


def test_eval_batches_cover_every_image_once_and_pad(tiny_shapes_data):
    seen, counts = [], []
    for batch, indices, count in iterate_eval_batches(tiny_shapes_data, 4):
        assert batch["images"].shape == (4, 128, 128, 3)
        assert len(indices) == count
        assert not batch["valid"][count:].any() and np.all(batch["images"][count:] == 0)
        np.testing.assert_array_equal(batch["boxes"][:count], tiny_shapes_data.boxes[indices])
        seen += indices.tolist()
        counts.append(count)
    assert seen == list(range(len(tiny_shapes_data))) and counts == [4, 4, 2]


def test_bad_batch_sizes_are_rejected(tiny_shapes_data):
    with pytest.raises(ValueError, match="batch_size 64"):
        next(iterate_batches(tiny_shapes_data, 64, seed=0))
    with pytest.raises(ValueError, match="positive"):
        next(iterate_eval_batches(tiny_shapes_data, 0))
