"""Tests of the generated shapes dataset: determinism, statistics, cache behaviour."""

import json
import multiprocessing

import numpy as np
import pytest
from pycocotools.coco import COCO

from detection.shapes import (
    SHAPE_NAMES,
    ShapesConfig,
    ensure_shapes_dataset,
    layout_image,
    render_image,
    shape_mask,
)


def test_same_seed_gives_identical_bytes(tmp_path):
    first = ensure_shapes_dataset(tmp_path / "a", num_train=3, num_search_val=2, num_final_val=2)
    second = ensure_shapes_dataset(tmp_path / "b", num_train=3, num_search_val=2, num_final_val=2)
    for split, (annotation_path, image_dir) in first.items():
        other_annotation, other_dir = second[split]
        assert annotation_path.read_bytes() == other_annotation.read_bytes()
        names = sorted(p.name for p in image_dir.iterdir())
        assert names == sorted(p.name for p in other_dir.iterdir())
        assert all((image_dir / n).read_bytes() == (other_dir / n).read_bytes() for n in names)


def test_different_seed_differs():
    image_a, _ = render_image(ShapesConfig(seed=0), "train", 0)
    image_b, _ = render_image(ShapesConfig(seed=1), "train", 0)
    assert not np.array_equal(image_a, image_b)


def test_image_does_not_depend_on_split_size_but_on_split():
    small, large = ShapesConfig(num_train=5), ShapesConfig(num_train=500)
    assert np.array_equal(render_image(small, "train", 3)[0], render_image(large, "train", 3)[0])
    assert not np.array_equal(render_image(small, "train", 3)[0], render_image(small, "final_val", 3)[0])


def test_layout_statistics_cover_coco_size_bins_and_classes():
    config = ShapesConfig()
    areas, counts, classes = [], [], set()
    for index in range(300):
        _, objects = layout_image(config, "train", index)
        counts.append(len(objects))
        areas += [obj.box[2] * obj.box[3] for obj in objects]
        classes |= {obj.class_index for obj in objects}
        for obj in objects:
            x, y, w, h = obj.box
            assert x >= 0 and y >= 0 and x + w <= config.image_size and y + h <= config.image_size
    areas = np.asarray(areas)
    assert len(classes) == config.num_classes >= 6
    assert min(counts) >= 1 and max(counts) <= 10
    assert (areas < 32**2).sum() > 50
    assert ((areas >= 32**2) & (areas <= 96**2)).sum() > 50
    assert (areas > 96**2).sum() > 5


def test_rendered_annotations_keep_one_to_ten_objects():
    config = ShapesConfig()
    for index in range(20):
        image, objects = render_image(config, "search_val", index)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(objects) <= 10


@pytest.mark.parametrize("name", SHAPE_NAMES)
def test_every_shape_touches_its_box_edges(name):
    coordinates = (np.arange(64) + 0.5) / 64 * 2 - 1
    mask = shape_mask(name, coordinates[None, :], coordinates[:, None])
    rows, cols = np.nonzero(mask)
    assert rows.min() <= 1 and rows.max() >= 62 and cols.min() <= 1 and cols.max() >= 62


def test_family_parameters_change_the_cache_key_and_classes():
    default, other = ShapesConfig(), ShapesConfig(num_classes=10, object_size_range=(0.1, 0.5))
    assert default.cache_key() != other.cache_key()
    assert len(other.class_names) == 10
    for index in range(30):
        for obj in layout_image(other, "train", index)[1]:
            assert obj.box[2] * obj.box[3] <= (0.5 * 128 * 1.2) ** 2
    with pytest.raises(ValueError, match="num_classes"):
        ShapesConfig(num_classes=5)


def test_cache_is_written_once_and_loads_with_pycocotools(tiny_shapes_paths, tmp_path, capsys):
    root = next(iter(tiny_shapes_paths.values()))[0].parent.parent
    modified = {split: path.stat().st_mtime_ns for split, (path, _) in tiny_shapes_paths.items()}
    again = ensure_shapes_dataset(root, num_train=12, num_search_val=6, num_final_val=10)
    assert again == tiny_shapes_paths
    assert {split: path.stat().st_mtime_ns for split, (path, _) in again.items()} == modified
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no staging leftovers
    annotation_path, image_dir = tiny_shapes_paths["train"]
    coco = COCO(str(annotation_path))
    capsys.readouterr()
    assert len(coco.getImgIds()) == 12 and len(coco.getCatIds()) == 8
    assert all((image_dir / image["file_name"]).is_file() for image in coco.dataset["images"])
    assert json.loads(annotation_path.read_text())["categories"][0]["name"] == "circle"


def _generate(root):
    ensure_shapes_dataset(root, num_train=4, num_search_val=2, num_final_val=2)


def test_racing_processes_both_succeed(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_generate, args=(tmp_path,)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]
    folders = [p for p in tmp_path.iterdir()]
    assert len(folders) == 1 and (folders[0] / "train.json").is_file()


def test_default_root_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path))
    paths = ensure_shapes_dataset(num_train=1, num_search_val=1, num_final_val=1)
    assert paths["train"][0].parent.parent == tmp_path
