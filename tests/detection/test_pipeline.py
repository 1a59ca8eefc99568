"""The streaming pipeline: the planned batches in order, resumable by position, from threads or a worker
process alike, and a bad image met mid-epoch as an error naming the file (never a hang or a wrong batch)."""

import json
import multiprocessing
import os
import signal
import types

import numpy as np
import pytest
from PIL import Image

from detection import batching, pipeline
from detection.batching import TrainingPlan, assemble_batch
from detection.datasets import load_coco
from detection.errors import DatasetError
from detection.geometry import Geometry

GEOMETRY = Geometry(64)


def _planned(index, steps, seed=0, batch_size=4):
    plan = TrainingPlan(canvas_of=GEOMETRY.canvas_number(index.sizes), batch_size=batch_size, seed=seed)
    entries = [entry for epoch in range(steps) for entry in plan.epoch(epoch)][:steps]
    return [assemble_batch(index, GEOMETRY, entry) for entry in entries]


def _same(a, b):
    return all(np.array_equal(a[key], b[key]) for key in a)


def test_the_stream_is_the_planned_batches_across_epochs_and_stops(tiny_shapes_data):
    with pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=4, seed=0, steps=5) as stream:
        batches = list(stream)
    assert len(batches) == 5  # 10 images: 2 batches an epoch, so this crosses two epoch boundaries
    assert all(_same(got, want) for got, want in zip(batches, _planned(tiny_shapes_data, 5), strict=True))


def test_a_stream_continues_from_a_saved_position(tiny_shapes_data):
    with pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=4, seed=1, steps=6) as stream:
        whole = list(stream)
    with pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=4, seed=1, steps=6) as stream:
        first = [next(stream) for _ in range(2)]
        state = json.loads(json.dumps(stream.get_state()))
    with pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=4, seed=1, steps=6) as resumed:
        resumed.set_state(state)
        rest = list(resumed)
    assert state == {"position": 2} and len(rest) == 4
    assert all(_same(got, want) for got, want in zip(first + rest, whole, strict=True))


def test_a_small_evaluation_split_is_decoded_once(tiny_shapes_data, monkeypatch):
    decoded = []
    original = batching.decode_resized
    monkeypatch.setattr(batching, "decode_resized", lambda *args: decoded.append(args[0]) or original(*args))
    subset = tiny_shapes_data.select([1, 3, 5])
    first = list(pipeline.evaluation_batches(subset, GEOMETRY, 2))
    again = list(pipeline.evaluation_batches(subset, GEOMETRY, 2))
    assert len(decoded) == 3 and [e.count for _, e in first] == [2, 1]
    assert all(_same(a, b) for (a, _), (b, _) in zip(first, again, strict=True))
    list(pipeline.evaluation_batches(subset, GEOMETRY, 2, cache=False))
    assert len(decoded) == 6


@pytest.fixture
def truncated_set(tmp_path):
    """A 12-image COCO set whose image 10 is cut in half; its index."""
    images = []
    rng = np.random.default_rng(0)
    for number in range(1, 13):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{number}.png")
        images.append({"id": number, "file_name": f"{number}.png", "width": 48, "height": 40})
    damaged = tmp_path / "10.png"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    doc = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    return load_coco(tmp_path / "ann.json", tmp_path)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_image_mid_epoch_raises_naming_it_from_threads_and_workers(truncated_set, workers):
    damaged = int(np.flatnonzero(truncated_set.image_ids == 10)[0])
    plan = TrainingPlan(canvas_of=np.zeros(12, np.int64), batch_size=4, seed=0, flip=False)
    order = [entry.rows for entry in plan.epoch(0)]
    failing = next(k for k, rows in enumerate(order) if damaged in rows)
    good = [assemble_batch(truncated_set, GEOMETRY, entry) for entry in plan.epoch(0)[:failing]]
    with pipeline.training_stream(truncated_set, GEOMETRY, batch_size=4, seed=0, steps=3, flip=False,
                                  workers=workers) as stream:
        for want in good:  # the batches before the damaged one arrive whole and right
            assert _same(next(stream), want)
        with pytest.raises(DatasetError, match=r"unreadable image file .*10\.png \(image id 10 of .*ann\.json\)"):
            next(stream)


@pytest.mark.slow
def test_a_killed_worker_is_an_error_not_a_hang(tiny_shapes_data):
    with pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=2, seed=0, steps=200,
                                  workers=1) as stream:
        next(stream)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(RuntimeError, match="terminated unexpectedly"):
            for _ in range(200):
                next(stream)


def test_workers_fall_back_to_threads_in_a_daemonic_process(tiny_shapes_data, monkeypatch):
    monkeypatch.setattr(pipeline.multiprocessing, "current_process", lambda: types.SimpleNamespace(daemon=True))
    stream = pipeline.training_stream(tiny_shapes_data, GEOMETRY, batch_size=4, seed=0, steps=2, workers=2)
    with stream, pytest.warns(UserWarning, match="cannot start in this daemonic process .* decoding in threads"):
        batches = list(stream)
    assert all(_same(got, want) for got, want in zip(batches, _planned(tiny_shapes_data, 2), strict=True))
