"""Tests of COCO/VOC loading into DetectionData, including every kind of bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detection import datasets
from detection.datasets import DatasetError, load_coco, load_dataset, load_voc
from detection.shapes import ShapesConfig
from detection.shapes_spec import parse_shapes_options
from detection.voc import VOC_CLASSES


def _write_image(path, width, height, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((height, width, 3), value, dtype=np.uint8)
    pixels[: height // 2, : width // 2] = 250  # a bright top-left quadrant, to check the resize
    Image.fromarray(pixels).save(path)


def _tiny_coco(tmp_path, annotations=None, images=None, categories=None):
    image_dir = tmp_path / "images"
    _write_image(image_dir / "wide.png", 64, 32)
    _write_image(image_dir / "empty.png", 16, 16)
    doc = {
        "images": images
        or [
            {"id": 7, "file_name": "wide.png", "width": 64, "height": 32},
            {"id": 9, "file_name": "empty.png", "width": 16, "height": 16},
        ],
        "annotations": annotations
        if annotations is not None
        else [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [4, 2, 10, 6], "area": 60, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [20, 10, 30, 20], "area": 600, "iscrowd": 0},
        ],
        "categories": categories or [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    annotation_path = tmp_path / "instances.json"
    annotation_path.write_text(json.dumps(doc))
    return annotation_path, image_dir


def test_coco_round_trip_resizes_pads_and_maps_categories(tmp_path):
    data = load_coco(*_tiny_coco(tmp_path), image_size=(32, 32))
    assert data.images.shape == (2, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.boxes.shape == (2, 2, 4) and data.labels.dtype == np.int32
    assert data.class_names == ("cat", "dog") and data.category_ids == (3, 5) and data.num_classes == 2
    assert data.image_ids.tolist() == [7, 9]
    np.testing.assert_allclose(data.scales, [0.5, 2.0])
    np.testing.assert_allclose(data.boxes[0], [[2, 1, 7, 4], [10, 5, 25, 15]])
    assert data.labels[0].tolist() == [1, 0] and data.valid.tolist() == [[True, True], [False, False]]
    assert np.all(data.images[0, 16:] == 0)  # padding below the 32x16 resized image
    assert np.all(data.images[0, :7, :15] == 250) and np.all(data.images[0, 9:15, 17:] == 100)
    assert np.all(data.boxes[1] == 0)  # the image without objects is kept


def test_loads_generated_shapes_split(tiny_shapes_paths):
    data = load_coco(*tiny_shapes_paths["train"])
    assert data.images.shape == (12, 128, 128, 3) and data.num_classes == 8
    assert data.valid.any(axis=1).all() and data.valid.sum(axis=1).max() == data.boxes.shape[1]
    widths = data.boxes[..., 2] - data.boxes[..., 0]
    assert np.all(widths[data.valid] > 0) and np.all(data.boxes[~data.valid] == 0)


def test_load_dataset_specs(tmp_path, tiny_shapes_paths):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    data = load_dataset(f"coco:{annotation_path}:{image_dir}", split="final_val", image_size=(16, 16))
    assert data.images.shape == (2, 16, 16, 3)
    for spec in ("imagenet", "coco:only_one_part", "voc:", "shapes:", "shapes2"):
        with pytest.raises(ValueError, match="accepted forms"):
            load_dataset(spec, split="train", image_size=(16, 16))
    with pytest.raises(ValueError, match="splits"):
        load_dataset("shapes", split="test", image_size=(16, 16), root=tmp_path)


def test_shapes_options_parse_into_generator_settings():
    text = "seed=3, classes=10,sizes=0.03-0.5,max_objects=4,image_size=96,train=50,search_val=5,final_val=7"
    assert parse_shapes_options(text) == {
        "seed": 3, "num_classes": 10, "object_size_range": (0.03, 0.5), "max_objects": 4, "image_size": 96,
        "num_train": 50, "num_search_val": 5, "num_final_val": 7,
    }
    assert parse_shapes_options("sizes=.1-1") == {"object_size_range": (0.1, 1.0)}
    # an option at its default names the same dataset, and cache folder, as plain 'shapes'
    assert ShapesConfig(**parse_shapes_options("seed=0,classes=8")).cache_key() == ShapesConfig().cache_key()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("classes=5", r"classes='5'.*integer in \[6, 10\]"),
        ("classes=eight", r"classes='eight'.*integer in \[6, 10\]"),
        ("seed=-1", r"seed='-1'.*integer in \[0, "),
        ("max_objects=0", r"max_objects='0'.*\[1, 50\]"),
        ("image_size=8", r"image_size='8'.*\[16, 2048\]"),
        ("train=0", r"train='0'.*\[1, 100000\]"),
        ("final_val=1.5", r"final_val='1.5'.*integer"),
        ("sizes=0.5-0.1", r"sizes='0.5-0.1'.*0 < LOW < HIGH <= 1"),
        ("sizes=0-0.5", r"sizes='0-0.5'.*0 < LOW < HIGH <= 1"),
        ("sizes=0.1-1.5", r"sizes='0.1-1.5'.*0 < LOW < HIGH <= 1"),
        ("sizes=0.1", r"sizes='0.1'.*LOW-HIGH"),
        ("sizes=__import__('os')", r"sizes=.*LOW-HIGH"),
        ("colour=red", r"unknown shapes option colour='red'; keys: seed, classes"),
        ("seed", r"'seed' is not KEY=VALUE"),
        ("seed=1,", r"'' is not KEY=VALUE"),
        ("seed=1,seed=2", r"seed is given twice"),
    ],
)
def test_bad_shapes_options_name_key_value_range_and_form(options, expected):
    with pytest.raises(ValueError, match=expected) as caught:
        load_dataset(f"shapes:{options}", split="train", image_size=(16, 16))
    assert "accepted form: shapes:KEY=VALUE,KEY=VALUE" in str(caught.value)


def test_plain_shapes_is_the_default_dataset(monkeypatch, tiny_shapes_paths):
    calls = []
    monkeypatch.setattr(datasets, "ensure_shapes_dataset", lambda root, **options: calls.append(options)
                        or tiny_shapes_paths)
    load_dataset("shapes", split="search_val", image_size=(32, 32))
    load_dataset("shapes:seed=2,classes=6", split="search_val", image_size=(32, 32))
    assert calls == [{}, {"seed": 2, "num_classes": 6}]


def test_shapes_variant_is_generated_with_its_statistics(tmp_path):
    spec = "shapes:seed=5,classes=6,sizes=0.3-0.6,max_objects=2,train=3,search_val=2,final_val=6"
    data = load_dataset(spec, split="final_val", image_size=(64, 64), root=tmp_path)
    assert len(data) == 6 and data.num_classes == 6 and data.boxes.shape[1] <= 2
    sides = np.sqrt(np.prod(data.boxes[..., 2:] - data.boxes[..., :2], axis=-1))[data.valid] / 64
    assert sides.min() > 0.3 * 0.9 and sides.max() < 0.6 * 1.1  # aspect jitter and integer boxes
    assert len(load_dataset(spec, split="train", image_size=(64, 64), root=tmp_path)) == 3
    assert len(list(tmp_path.iterdir())) == 1  # one cache folder for the variant


def test_degenerate_and_outside_boxes_are_skipped_or_clipped_with_one_warning(tmp_path):
    annotations = [
        {"id": 5, "image_id": 7, "category_id": 3, "bbox": [4, 2, 0, 6], "area": 0},
        {"id": 9, "image_id": 7, "category_id": 3, "bbox": [4, 2, 5, -1], "area": 0},
        {"id": 12, "image_id": 7, "category_id": 3, "bbox": [70, 2, 5, 5], "area": 25},
        {"id": 13, "image_id": 7, "category_id": 5, "bbox": [-4, 20, 10, 20], "area": 200},
        {"id": 14, "image_id": 7, "category_id": 5, "bbox": [1, 1, 3, 3], "area": 9, "iscrowd": 1},
    ]
    annotation_path, image_dir = _tiny_coco(tmp_path, annotations=annotations)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_coco(annotation_path, image_dir, image_size=(32, 64))
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 3 degenerate" in message and "5, 9, 12" in message and "clipped 1" in message
    assert str(annotation_path) in message
    assert data.valid.sum() == 1
    np.testing.assert_allclose(data.boxes[0, 0], [0, 20, 6, 32])


def test_max_boxes_keeps_the_largest(tmp_path):
    with pytest.warns(UserWarning, match=r"dropped 1 boxes beyond max_boxes \(annotation ids 1\)"):
        data = load_coco(*_tiny_coco(tmp_path), image_size=(32, 64), max_boxes=1)
    assert data.boxes.shape == (2, 1, 4) and data.labels[0, 0] == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"annotations": None}, "missing list 'annotations'"),
        ({"images": [{"id": 7}]}, r"images\[0\] lacks file_name"),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3]}]},
            "annotation id 4: bbox must be 4",
        ),
        (
            {"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 2, "3", 4]}]},
            "annotation id 4: bbox",
        ),
        (
            {"annotations": [{"id": 6, "image_id": 7, "category_id": 99, "bbox": [1, 2, 3, 4]}]},
            "annotation id 6: category_id 99 is not in the categories",
        ),
        (
            {"annotations": [{"id": 6, "image_id": 70, "category_id": 3, "bbox": [1, 2, 3, 4]}]},
            "annotation id 6: image_id 70",
        ),
        ({"images": [{"id": 7, "file_name": "absent.png"}]}, "missing image file .*absent.png.*image id 7"),
        ({"images": [{"id": 7, "file_name": "wide.png", "width": 10, "height": 32}]}, "says 10x32"),
    ],
)
def test_schema_violations_name_file_and_annotation(tmp_path, change, expected):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    doc = json.loads(annotation_path.read_text())
    for key, value in change.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    annotation_path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=expected) as raised:
        load_coco(annotation_path, image_dir)
    assert "image file" in str(raised.value) or str(annotation_path) in str(raised.value)


def test_malformed_json_names_line_and_column(tmp_path):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    annotation_path.write_text('{"images": [],\n  "annotations": [,]}')
    with pytest.raises(DatasetError, match=r"instances.json:2:19: malformed JSON"):
        load_coco(annotation_path, image_dir)


def test_unreadable_image(tmp_path):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    (image_dir / "wide.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"unreadable image file .*wide.png \(image id 7"):
        load_coco(annotation_path, image_dir)


def _voc_xml(filename, objects, width=40, height=30):
    body = "".join(
        f"<object><name>{name}</name><difficult>{int(difficult)}</difficult><bndbox><xmin>{box[0]}</xmin>"
        f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box, difficult in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
        f"<depth>3</depth></size>{body}</annotation>"
    )


def _tiny_voc(tmp_path):
    voc = tmp_path / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    _write_image(voc / "JPEGImages" / "000001.jpg", 40, 30)
    _write_image(voc / "JPEGImages" / "000002.png", 20, 20)
    (voc / "Annotations" / "000001.xml").write_text(
        _voc_xml("000001.jpg", [("dog", (3, 4, 12, 20), False), ("person", (20, 5, 30, 25), True)])
    )
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml("000002.png", [], 20, 20))
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000001\n000002\n")
    return voc


def test_voc_converts_to_coco_and_ignores_difficult(tmp_path):
    data = load_voc(_tiny_voc(tmp_path), split="val", image_size=(30, 40), root=tmp_path / "cache")
    assert data.class_names == VOC_CLASSES and data.images.shape == (2, 30, 40, 3)
    assert data.valid.sum() == 1 and data.labels[0, 0] == VOC_CLASSES.index("dog")
    np.testing.assert_allclose(data.boxes[0, 0], [2, 3, 12, 20])
    doc = json.loads(Path(data.annotation_file).read_text())
    assert data.annotation_file.startswith(str(tmp_path / "cache"))
    assert [a["iscrowd"] for a in doc["annotations"]] == [0, 1]
    assert doc["annotations"][0]["bbox"] == [2, 3, 10, 17]
    same = load_dataset(
        f"voc:{tmp_path / 'VOC2007'}", split="search_val", image_size=(30, 40), root=tmp_path / "cache"
    )
    assert same.annotation_file == data.annotation_file


def test_voc_without_split_list_uses_all_annotations(tmp_path):
    voc = _tiny_voc(tmp_path)
    data = load_voc(voc, split="trainval", image_size=(30, 40), root=tmp_path / "cache")
    assert len(data) == 2


def test_voc_malformed_xml_names_file_and_line(tmp_path):
    voc = _tiny_voc(tmp_path)
    (voc / "Annotations" / "000002.xml").write_text("<annotation>\n<filename>x.jpg</filename>\n<size>")
    with pytest.raises(DatasetError, match=r"000002.xml:3:\d+: malformed XML"):
        load_voc(voc, root=tmp_path / "cache")


def test_voc_unknown_class_and_missing_box(tmp_path):
    voc = _tiny_voc(tmp_path)
    (voc / "Annotations" / "000002.xml").write_text(
        _voc_xml("000002.png", [("unicorn", (1, 1, 5, 5), False)])
    )
    with pytest.raises(DatasetError, match=r"000002.xml: object 1: unknown class 'unicorn'"):
        load_voc(voc, root=tmp_path / "cache")
    (voc / "Annotations" / "000002.xml").write_text(
        "<annotation><filename>000002.png</filename><object><name>dog</name></object></annotation>"
    )
    with pytest.raises(DatasetError, match=r"object 1 \(dog\) has no <bndbox>"):
        load_voc(voc, root=tmp_path / "cache")


def test_select_keeps_matching_rows(tiny_shapes_data):
    subset = tiny_shapes_data.select([3, 1])
    assert subset.image_ids.tolist() == tiny_shapes_data.image_ids[[3, 1]].tolist()
    assert np.array_equal(subset.images[0], tiny_shapes_data.images[3])


def test_voc_difficult_objects_are_not_counted_as_misses(tmp_path):
    from detection.evaluation import evaluate_detections

    data = load_voc(_tiny_voc(tmp_path), split="val", image_size=(30, 40), root=tmp_path / "cache")
    metrics = evaluate_detections(data, data.boxes, data.valid.astype(np.float32), data.labels, data.valid)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["mAP50_voc"] == pytest.approx(1.0)
