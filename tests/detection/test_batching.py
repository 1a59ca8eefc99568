"""Which images make each batch (seeded, grouped by canvas) and how a batch is assembled from files."""

import numpy as np
import pytest
from PIL import Image

from detection.batching import BatchEntry, TrainingPlan, assemble_batch, evaluation_entries, flip_horizontal
from detection.geometry import Geometry


def test_one_canvas_is_the_shuffled_order_cut_into_batches():
    plan = TrainingPlan(canvas_of=np.zeros(10, np.int64), batch_size=4, seed=3)
    rng = np.random.default_rng([3, 1])
    order, flips = rng.permutation(10), rng.random(10) < 0.5
    batches = plan.epoch(1)
    assert plan.batches_per_epoch == len(batches) == 2  # the remainder of 2 waits for another epoch's shuffle
    for k, entry in enumerate(batches):
        np.testing.assert_array_equal(entry.rows, order[4 * k : 4 * k + 4])
        np.testing.assert_array_equal(entry.flips, flips[4 * k : 4 * k + 4])


def test_same_seed_same_batches_other_seed_or_epoch_differs():
    canvas_of = np.zeros(12, np.int64)
    first = TrainingPlan(canvas_of=canvas_of, batch_size=4, seed=0).epoch(0)
    again = TrainingPlan(canvas_of=canvas_of, batch_size=4, seed=0).epoch(0)
    assert all(np.array_equal(a.rows, b.rows) for a, b in zip(first, again, strict=True))
    other_seed = TrainingPlan(canvas_of=canvas_of, batch_size=4, seed=1).epoch(0)
    other_epoch = TrainingPlan(canvas_of=canvas_of, batch_size=4, seed=0).epoch(1)
    assert not all(np.array_equal(a.rows, b.rows) for a, b in zip(first, other_seed, strict=True))
    assert not all(np.array_equal(a.rows, b.rows) for a, b in zip(first, other_epoch, strict=True))


def test_batches_never_mix_canvases_and_multi_scale_draws_sides():
    canvas_of = np.array([0, 1] * 9 + [0, 0])
    plan = TrainingPlan(canvas_of=canvas_of, batch_size=3, seed=0, short_side_choices=(96, 128))
    batches = plan.epoch(0)
    assert plan.batches_per_epoch == len(batches) == 6  # 11 landscape -> 3 batches, 9 portrait -> 3
    for entry in batches:
        assert (canvas_of[entry.rows] == entry.canvas).all() and set(entry.short_sides) <= {96, 128}
    assert len({tuple(e.rows) for e in batches}) == 6
    with pytest.raises(ValueError, match="batch_size 4 needs at least that many images of one canvas"):
        TrainingPlan(canvas_of=np.array([0, 0, 0, 1, 1, 1]), batch_size=4, seed=0)


def test_evaluation_entries_cover_every_image_once_per_canvas_and_pad():
    class Index:
        sizes = np.array([[10, 20], [20, 10], [10, 20], [10, 20], [20, 10]])

    entries = evaluation_entries(Index, Geometry(16, 32), batch_size=2)
    assert [(e.canvas, e.count, len(e.rows)) for e in entries] == [(0, 2, 2), (0, 1, 2), (1, 2, 2)]
    assert sorted(r for e in entries for r in e.rows[: e.count]) == [0, 1, 2, 3, 4]


def test_assembled_batch_is_the_resized_image_padded_with_its_boxes(tiny_shapes_data, tiny_ground_truth):
    geometry = Geometry(64)  # the 128-px images at half size
    entry = BatchEntry(rows=np.array([2, 0, 0]), canvas=0, count=2)  # the last row is padding
    batch = assemble_batch(tiny_shapes_data, geometry, entry)
    assert batch["images"].shape == (3, 64, 64, 3) and batch["images"].dtype == np.uint8
    expected = np.asarray(Image.open(tiny_shapes_data.paths[2]).convert("RGB").resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(batch["images"][0], expected)
    boxes, labels, valid = tiny_ground_truth
    np.testing.assert_allclose(batch["boxes"][0][valid[2]], boxes[2][valid[2]] / 2)
    np.testing.assert_array_equal(batch["labels"][1], labels[0])
    assert batch["valid"][2].sum() == 0 and not batch["images"][2].any() and batch["scales"].tolist() == [0.5, 0.5, 0]


def test_a_multi_scale_draw_resizes_to_its_shorter_side_inside_the_same_canvas(tiny_shapes_data, tiny_ground_truth):
    geometry = Geometry(64, train_short_sides=(32, 64))
    entry = BatchEntry(rows=np.array([0, 1]), canvas=0, count=2, short_sides=np.array([32, 64]))
    batch = assemble_batch(tiny_shapes_data, geometry, entry)
    assert batch["images"].shape == (2, 64, 64, 3) and batch["scales"].tolist() == [0.25, 0.5]
    assert batch["images"][0, 32:].max() == 0 and batch["images"][0, :32, :32].any()  # 32x32 in the corner
    boxes, _, valid = tiny_ground_truth
    np.testing.assert_allclose(batch["boxes"][0][valid[0]], boxes[0][valid[0]] / 4)


def test_each_flipped_row_is_the_mirror_with_mirrored_boxes(tiny_shapes_data):
    geometry = Geometry(128)
    rows = np.array([0, 1, 2, 3])
    plain = assemble_batch(tiny_shapes_data, geometry, BatchEntry(rows=rows, canvas=0, count=4))
    flips = np.array([True, False, True, False])
    flipped = assemble_batch(tiny_shapes_data, geometry, BatchEntry(rows=rows, canvas=0, count=4, flips=flips))
    mirrored_images, mirrored_boxes = flip_horizontal(plain["images"], plain["boxes"], plain["valid"])
    for i, is_flipped in enumerate(flips):
        np.testing.assert_array_equal(flipped["images"][i], (mirrored_images if is_flipped else plain["images"])[i])
        np.testing.assert_allclose(flipped["boxes"][i], (mirrored_boxes if is_flipped else plain["boxes"])[i])


def test_flipping_twice_is_the_identity(tiny_shapes_data):
    batch = assemble_batch(tiny_shapes_data, Geometry(128), BatchEntry(rows=np.arange(3), canvas=0, count=3))
    once = flip_horizontal(batch["images"], batch["boxes"], batch["valid"])
    twice = flip_horizontal(*once, batch["valid"])
    np.testing.assert_array_equal(twice[0], batch["images"])
    np.testing.assert_allclose(twice[1], batch["boxes"])
    widths = once[1][..., 2] - once[1][..., 0]
    assert np.all(widths[batch["valid"]] > 0) and np.all(once[1][~batch["valid"]] == 0)
