"""COCO/VOC/shapes specs resolved to indexes: splits and held-out parts, any classes, and every kind of bad input."""

import json
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from ground_truth import ground_truth
from PIL import Image

from detection import datasets
from detection.batching import BatchEntry, assemble_batch
from detection.datasets import DatasetError, evaluation_split, load_coco, load_dataset, load_voc
from detection.geometry import Geometry
from detection.shapes import ShapesConfig
from detection.shapes_spec import parse_shapes_options
from detection.voc import VOC_CLASSES


def _write_image(path, width, height, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((height, width, 3), value, dtype=np.uint8)
    pixels[: height // 2, : width // 2] = 250
    Image.fromarray(pixels).save(path)


def _tiny_coco(tmp_path, annotations=None, images=None, categories=None):
    image_dir = tmp_path / "images"
    _write_image(image_dir / "wide.png", 64, 32)
    _write_image(image_dir / "empty.png", 16, 16)
    doc = {
        "images": images or [
            {"id": 7, "file_name": "wide.png", "width": 64, "height": 32},
            {"id": 9, "file_name": "empty.png", "width": 16, "height": 16},
        ],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [4, 2, 10, 6], "area": 60, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [20, 10, 30, 20], "area": 600, "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 3, 3], "area": 9, "iscrowd": 1},
        ],
        "categories": categories or [{"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}],
    }
    annotation_path = tmp_path / "instances.json"
    annotation_path.write_text(json.dumps(doc))
    return annotation_path, image_dir


def _coco_set(tmp_path, count):
    """A COCO set of ``count`` 8x8 images (ids 100, 101, ...) with one box each; its spec body."""
    images, annotations = [], []
    for k in range(count):
        _write_image(tmp_path / "img" / f"{k}.png", 8, 8)
        images.append({"id": 100 + k, "file_name": f"{k}.png", "width": 8, "height": 8})
        annotations.append({"id": k + 1, "image_id": 100 + k, "category_id": 1, "bbox": [1, 1, 4, 4]})
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "set.json").write_text(json.dumps(doc))
    return f"{tmp_path / 'set.json'}:{tmp_path / 'img'}"


def test_coco_index_holds_sizes_boxes_and_classes_but_no_pixels(tmp_path):
    data = load_coco(*_tiny_coco(tmp_path))
    assert data.class_names == ("cat", "dog") and data.category_ids == (3, 5) and data.num_classes == 2
    assert data.image_ids.tolist() == [7, 9] and data.sizes.tolist() == [[32, 64], [16, 16]]
    boxes, labels = data.boxes_of(0)
    np.testing.assert_allclose(boxes, [[4, 2, 14, 8], [20, 10, 50, 30]])  # crowd left out of the targets
    assert labels.tolist() == [1, 0] and len(data.boxes_of(1)[0]) == 0 and data.max_boxes == 2
    assert data.classes_present().tolist() == [[True, True], [False, False]]
    assert not hasattr(data, "images")


def test_loads_generated_shapes_split(tiny_shapes_paths):
    data = load_coco(*tiny_shapes_paths["train"])
    assert len(data) == 12 and data.num_classes == 8 and (data.sizes == 128).all()
    boxes, _, valid = ground_truth(data)
    assert valid.any(axis=1).all() and valid.sum(axis=1).max() == data.max_boxes
    assert np.all((boxes[..., 2] - boxes[..., 0])[valid] > 0)


def test_a_coco_file_keeps_a_seeded_held_out_part_for_evaluation(tmp_path):
    body = _coco_set(tmp_path, 40)
    train, search, final = (load_dataset(f"coco:{body}", split=s, progress=False)
                            for s in ("train", "search_val", "final_val"))
    assert (len(train), len(search), len(final)) == (36, 2, 2)  # holdout 0.1 by default
    ids = [set(index.image_ids.tolist()) for index in (train, search, final)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and len(set.union(*ids)) == 40
    assert "held-out 0.1, seed 0" in final.name
    again = load_dataset(f"coco,seed=0:{body}", split="final_val", progress=False)
    other = load_dataset(f"coco,seed=1,holdout=10:{body}", split="final_val", progress=False)
    assert again.image_ids.tolist() == final.image_ids.tolist() and len(other) == 5
    everything = load_dataset(f"coco,holdout=0:{body}", split="train", progress=False)
    assert len(everything) == 40
    with pytest.raises(DatasetError, match="holdout=0 keeps no images back for final_val; give separate"):
        load_dataset(f"coco,holdout=0:{body}", split="final_val", progress=False)
    with pytest.raises(DatasetError, match="holdout=40 of 40 images keeps back 40"):
        load_dataset(f"coco,holdout=40:{body}", split="train", progress=False)


def test_the_held_out_draw_does_not_depend_on_the_order_in_the_file(tmp_path):
    body = _coco_set(tmp_path, 30)
    doc = json.loads((tmp_path / "set.json").read_text())
    doc["images"].reverse()
    (tmp_path / "reversed.json").write_text(json.dumps(doc))
    held = load_dataset(f"coco:{body}", split="search_val", progress=False)
    reordered = load_dataset(f"coco:{tmp_path / 'reversed.json'}:{tmp_path / 'img'}", split="search_val",
                             progress=False)
    assert sorted(held.image_ids.tolist()) == sorted(reordered.image_ids.tolist())


def test_separate_evaluation_data_is_read_whole_unless_it_has_splits(tmp_path):
    assert evaluation_split(f"coco:{_coco_set(tmp_path, 4)}", "final_val") == "all"
    assert evaluation_split("shapes:seed=1", "final_val") == "final_val"
    assert len(load_dataset(f"coco:{_coco_set(tmp_path, 4)}", split="all", progress=False)) == 4
    with pytest.raises(DatasetError, match="shapes has splits train, search_val, final_val"):
        load_dataset("shapes", split="all", root=tmp_path)


def test_evaluation_classes_are_matched_by_name_and_other_classes_refused(tmp_path):
    data = load_coco(*_tiny_coco(tmp_path))
    reordered = data.with_class_order(["dog", "cat"])
    assert reordered.class_names == ("dog", "cat") and reordered.category_ids == (5, 3)
    assert reordered.boxes_of(0)[1].tolist() == [0, 1]
    with pytest.raises(DatasetError, match=r"has the classes \['cat', 'dog'\], but the model was trained on "
                                           r"\['cat', 'bird'\]"):
        data.with_class_order(["cat", "bird"])


def test_shapes_options_parse_into_generator_settings():
    text = "seed=3, classes=10,sizes=0.03-0.5,max_objects=4,image_size=96,train=50,search_val=5,final_val=7"
    assert parse_shapes_options(text) == {
        "seed": 3, "num_classes": 10, "object_size_range": (0.03, 0.5), "max_objects": 4, "image_size": 96,
        "num_train": 50, "num_search_val": 5, "num_final_val": 7,
    }
    assert parse_shapes_options("sizes=.1-1") == {"object_size_range": (0.1, 1.0)}
    assert ShapesConfig(**parse_shapes_options("seed=0,classes=8")).cache_key() == ShapesConfig().cache_key()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("classes=5", r"classes='5'.*integer in \[6, 10\]"),
        ("seed=-1", r"seed='-1'.*integer in \[0, "),
        ("image_size=8", r"image_size='8'.*\[16, 2048\]"),
        ("sizes=0.5-0.1", r"sizes='0.5-0.1'.*0 < LOW < HIGH <= 1"),
        ("sizes=__import__('os')", r"sizes=.*LOW-HIGH"),
        ("colour=red", r"unknown shapes option colour='red'; keys: seed, classes"),
        ("seed=1,seed=2", r"seed is given twice"),
    ],
)
def test_bad_shapes_options_name_key_value_range_and_form(options, expected):
    with pytest.raises(ValueError, match=expected) as caught:
        load_dataset(f"shapes:{options}", split="train")
    assert "accepted form: shapes:KEY=VALUE,KEY=VALUE" in str(caught.value)


def test_plain_shapes_is_the_default_dataset(monkeypatch, tiny_shapes_paths):
    calls = []
    monkeypatch.setattr(datasets, "ensure_shapes_dataset", lambda root, progress, **options: calls.append(options)
                        or tiny_shapes_paths)
    load_dataset("shapes", split="search_val")
    load_dataset("shapes:seed=2,classes=6", split="search_val")
    assert calls == [{}, {"seed": 2, "num_classes": 6}]


def test_shapes_variant_is_generated_with_its_statistics(tmp_path):
    spec = "shapes:seed=5,classes=6,sizes=0.3-0.6,max_objects=2,train=3,search_val=2,final_val=6,image_size=64"
    data = load_dataset(spec, split="final_val", root=tmp_path, progress=False)
    assert len(data) == 6 and data.num_classes == 6 and data.max_boxes <= 2
    sides = np.sqrt(np.prod(data.boxes[:, 2:] - data.boxes[:, :2], axis=-1)) / 64
    assert sides.min() > 0.3 * 0.9 and sides.max() < 0.6 * 1.1  # aspect jitter and integer boxes
    assert len(load_dataset(spec, split="train", root=tmp_path, progress=False)) == 3
    assert len(list(tmp_path.iterdir())) == 1  # one cache folder for the variant


def test_degenerate_and_outside_boxes_are_skipped_or_clipped_with_one_warning(tmp_path):
    annotations = [
        {"id": 5, "image_id": 7, "category_id": 3, "bbox": [4, 2, 0, 6], "area": 0},
        {"id": 9, "image_id": 7, "category_id": 3, "bbox": [4, 2, 5, -1], "area": 0},
        {"id": 12, "image_id": 7, "category_id": 3, "bbox": [70, 2, 5, 5], "area": 25},
        {"id": 13, "image_id": 7, "category_id": 5, "bbox": [-4, 20, 10, 20], "area": 200},
    ]
    annotation_path, image_dir = _tiny_coco(tmp_path, annotations=annotations)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_coco(annotation_path, image_dir)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 3 degenerate" in message and "5, 9, 12" in message and "clipped 1" in message
    assert str(annotation_path) in message
    np.testing.assert_allclose(data.boxes, [[0, 20, 6, 32]])


def test_max_boxes_keeps_the_largest(tmp_path):
    with pytest.warns(UserWarning, match=r"dropped 1 boxes beyond max_boxes \(annotation ids 1\)"):
        data = load_coco(*_tiny_coco(tmp_path), max_boxes=1)
    assert data.max_boxes == 1 and data.labels.tolist() == [0]


def _png_claiming(path, width, height):
    """A PNG file whose header claims width x height (a decompression bomb for Pillow)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
                     + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"annotations": None}, "missing list 'annotations'"),
        ({"categories": []}, "the categories list is empty; a detector needs at least one class"),
        ({"images": [{"id": 7}]}, r"images\[0\] lacks file_name"),
        ({"images": [{"id": [1], "file_name": "wide.png"}]}, r"images\[0\].id must be an integer .*got \[1\]"),
        ({"categories": [{"id": {"a": 1}, "name": "cat"}]}, r"categories\[0\].id must be an integer.*\{'a': 1\}"),
        ({"categories": [{"id": 3, "name": "cat"}, {"id": 5, "name": "cat"}]}, r"category names \['cat'\] are used"),
        ({"images": [{"id": 2**70, "file_name": "wide.png"}]}, "must be an integer"),
        ({"images": [{"id": 7, "file_name": "wide.png", "width": "64", "height": 32}]}, "width must be a positive"),
        ({"annotations": [{"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3]}]},
         "annotation id 4: bbox must be 4"),
        ({"annotations": [{"id": 6, "image_id": 7, "category_id": 99, "bbox": [1, 2, 3, 4]}]},
         "annotation id 6: category_id 99 is not in the categories"),
        ({"annotations": [{"id": 6, "image_id": 70, "category_id": 3, "bbox": [1, 2, 3, 4]}]},
         "annotation id 6: image_id 70"),
        ({"annotations": [{"id": 6, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": [1]}]},
         "iscrowd must be 0 or 1"),
        ({"images": [{"id": 7, "file_name": "/etc/passwd", "width": 4, "height": 4}]},
         "'/etc/passwd' leads outside .*allow_outside=yes"),
        ({"images": [{"id": 7, "file_name": "../instances.json", "width": 4, "height": 4}]},
         "'../instances.json' leads outside"),
        ({"images": [{"id": 7, "file_name": "bomb.png"}]}, r"bomb.png \(image id 7 .*\) claims too many pixels"),
        ({"images": [{"id": 7, "file_name": "a\x00.png", "width": 4, "height": 4}]}, "holds a NUL character"),
    ],
)
def test_bad_annotation_files_name_file_record_and_fix(tmp_path, change, expected):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    _png_claiming(image_dir / "bomb.png", 40000, 40000)
    doc = json.loads(annotation_path.read_text())
    for key, value in change.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
            if key == "images":
                doc["annotations"] = []
    annotation_path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=expected) as raised:
        load_dataset(f"coco,holdout=0:{annotation_path}:{image_dir}", split="train", progress=False)
    assert str(annotation_path) in str(raised.value) or "spec" in str(raised.value)


def test_files_outside_the_folder_load_when_the_spec_allows_it(tmp_path):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    _write_image(tmp_path / "elsewhere" / "far.png", 8, 8)
    doc = json.loads(annotation_path.read_text())
    doc["images"] = [{"id": 1, "file_name": str(tmp_path / "elsewhere" / "far.png")},
                     {"id": 2, "file_name": "../elsewhere/far.png"}]
    doc["annotations"] = []
    annotation_path.write_text(json.dumps(doc))
    data = load_dataset(f"coco,holdout=0,allow_outside=yes:{annotation_path}:{image_dir}", split="train",
                        progress=False)
    assert data.sizes.tolist() == [[8, 8], [8, 8]]  # sizes read from the headers when the file has none


def test_a_missing_image_is_found_at_load_and_a_bad_one_when_read(tmp_path):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    (image_dir / "empty.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image file\(s\) of .* are missing: .*empty.png"):
        load_dataset(f"coco,holdout=0:{annotation_path}:{image_dir}", split="train", progress=False)
    _write_image(image_dir / "empty.png", 16, 16)
    (image_dir / "wide.png").write_bytes(b"not a png at all")
    data = load_coco(annotation_path, image_dir)  # the index needs no pixels
    with pytest.raises(DatasetError, match=r"unreadable image file .*wide.png \(image id 7"):
        assemble_batch(data, Geometry(32), BatchEntry(rows=np.array([0]), canvas=0, count=1))
    _write_image(image_dir / "wide.png", 10, 32)
    with pytest.raises(DatasetError, match="is 10x32, but image id 7 .* says 64x32; fix width/height"):
        assemble_batch(data, Geometry(32), BatchEntry(rows=np.array([0]), canvas=0, count=1))
    _png_claiming(image_dir / "wide.png", 40000, 40000)
    with pytest.raises(DatasetError, match="claims too many pixels"):
        assemble_batch(data, Geometry(32), BatchEntry(rows=np.array([0]), canvas=0, count=1))


def test_malformed_json_names_line_and_column(tmp_path):
    annotation_path, image_dir = _tiny_coco(tmp_path)
    annotation_path.write_text('{"images": [],\n  "annotations": [,]}')
    with pytest.raises(DatasetError, match=r"instances.json:2:19: malformed JSON"):
        load_coco(annotation_path, image_dir)


def _voc_xml(filename, objects, width=40, height=30):
    body = "".join(
        f"<object><name>{name}</name><difficult>{int(difficult)}</difficult><bndbox><xmin>{box[0]}</xmin>"
        f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box, difficult in objects
    )
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


def _tiny_voc(tmp_path, names=("dog", "person")):
    voc = tmp_path / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    _write_image(voc / "JPEGImages" / "000001.jpg", 40, 30)
    _write_image(voc / "JPEGImages" / "000002.png", 20, 20)
    (voc / "Annotations" / "000001.xml").write_text(
        _voc_xml("000001.jpg", [(names[0], (3, 4, 12, 20), False), (names[1], (20, 5, 30, 25), True)]))
    (voc / "Annotations" / "000002.xml").write_text(_voc_xml("000002.png", [], 20, 20))
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000001\n000002\n")
    return voc


def test_voc_converts_to_coco_and_ignores_difficult(tmp_path):
    data = load_voc(_tiny_voc(tmp_path), split="val", root=tmp_path / "cache")
    assert data.class_names == VOC_CLASSES and data.sizes.tolist() == [[30, 40], [20, 20]]
    assert data.labels.tolist() == [VOC_CLASSES.index("dog")]
    np.testing.assert_allclose(data.boxes, [[2, 3, 12, 20]])
    doc = json.loads(Path(data.annotation_file).read_text())
    assert data.annotation_file.startswith(str(tmp_path / "cache"))
    assert [a["iscrowd"] for a in doc["annotations"]] == [0, 1] and doc["annotations"][0]["bbox"] == [2, 3, 10, 17]
    same = load_dataset(f"voc:{tmp_path / 'VOC2007'}", split="search_val", root=tmp_path / "cache", progress=False)
    assert same.annotation_file == data.annotation_file
    with pytest.raises(DatasetError, match="has split lists but none for train .train.txt or train.txt.; add it"):
        load_dataset(f"voc:{tmp_path / 'VOC2007'}", split="train", root=tmp_path / "cache", progress=False)


def test_voc_folders_with_their_own_classes(tmp_path):
    voc = _tiny_voc(tmp_path, names=("Zebra crossing", "bike"))
    spec = f"voc:{voc}"
    data = load_dataset(spec, split="search_val", root=tmp_path / "cache", progress=False)
    assert data.class_names == ("Zebra crossing", "bike")  # sorted names of every XML in the folder
    given = load_dataset(f"voc,classes=bike+Zebra crossing+car:{voc}", split="search_val", root=tmp_path / "cache",
                         progress=False)
    assert given.class_names == ("bike", "Zebra crossing", "car") and given.labels.tolist() == [1]
    (voc / "labels.txt").write_text("# my labels\nbike\nZebra crossing\n")
    labelled = load_dataset(f"voc,labels=labels.txt:{voc}", split="search_val", root=tmp_path / "cache",
                            progress=False)
    assert labelled.class_names == ("bike", "Zebra crossing")
    with pytest.raises(DatasetError, match=r"000001.xml: object 1: unknown class 'Zebra crossing'; the classes are "
                                           r"bike, car"):
        load_dataset(f"voc,classes=bike+car:{voc}", split="search_val", root=tmp_path / "cache", progress=False)


def test_a_voc_folder_without_split_lists_keeps_a_held_out_part(tmp_path):
    voc = _tiny_voc(tmp_path)
    (voc / "ImageSets" / "Main" / "val.txt").unlink()
    for k in range(3, 9):
        _write_image(voc / "JPEGImages" / f"{k:06d}.jpg", 40, 30)
        (voc / "Annotations" / f"{k:06d}.xml").write_text(_voc_xml(f"{k:06d}.jpg", [("cat", (1, 1, 9, 9), False)]))
    splits = {s: load_dataset(f"voc,holdout=4:{voc}", split=s, root=tmp_path / "cache", progress=False)
              for s in ("train", "search_val", "final_val")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 4, "search_val": 2, "final_val": 2}
    assert evaluation_split(f"voc:{voc}", "final_val") == "all"


def test_voc_lists_and_filenames_may_not_lead_outside_unless_allowed(tmp_path):
    voc = _tiny_voc(tmp_path)
    (tmp_path / "secret.xml").write_text(_voc_xml("000002.png", [], 20, 20))
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000001\n../../secret\n")
    with pytest.raises(DatasetError, match=r"val.txt:2: '../../secret' is not a file stem inside Annotations/"):
        load_dataset(f"voc:{voc}", split="final_val", root=tmp_path / "cache", progress=False)
    assert len(load_dataset(f"voc,allow_outside=yes:{voc}", split="final_val", root=tmp_path / "cache",
                            progress=False)) == 2
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000001\n")
    (voc / "Annotations" / "000001.xml").write_text(_voc_xml("/etc/hostname", [("dog", (3, 4, 12, 20), False)]))
    with pytest.raises(DatasetError, match=r"<filename> of .*000001.xml: '/etc/hostname' leads outside"):
        load_dataset(f"voc:{voc}", split="final_val", root=tmp_path / "cache", progress=False)


def test_voc_malformed_xml_and_missing_box(tmp_path):
    voc = _tiny_voc(tmp_path)
    (voc / "Annotations" / "000002.xml").write_text("<annotation>\n<filename>x.jpg</filename>\n<size>")
    with pytest.raises(DatasetError, match=r"000002.xml:3:\d+: malformed XML"):
        load_voc(voc, root=tmp_path / "cache")
    (voc / "Annotations" / "000002.xml").write_text(
        "<annotation><filename>000002.png</filename><object><name>dog</name></object></annotation>")
    with pytest.raises(DatasetError, match=r"object 1 \(dog\) has no <bndbox>"):
        load_voc(voc, root=tmp_path / "cache")


def test_select_keeps_matching_rows(tiny_shapes_data):
    subset = tiny_shapes_data.select([3, 1])
    assert subset.image_ids.tolist() == tiny_shapes_data.image_ids[[3, 1]].tolist()
    assert subset.paths == (tiny_shapes_data.paths[3], tiny_shapes_data.paths[1])
    np.testing.assert_array_equal(subset.boxes_of(0)[0], tiny_shapes_data.boxes_of(3)[0])
    assert subset.max_boxes == tiny_shapes_data.max_boxes


def test_voc_difficult_objects_are_not_counted_as_misses(tmp_path):
    from detection.evaluation import evaluate_detections

    data = load_voc(_tiny_voc(tmp_path), split="val", root=tmp_path / "cache")
    boxes, labels, valid = ground_truth(data)
    metrics = evaluate_detections(data, boxes, valid.astype(np.float32), labels, valid)
    assert metrics["AP"] == pytest.approx(1.0) and metrics["mAP50_voc"] == pytest.approx(1.0)
