"""The search-validation split of a COCO training file: seeded, disjoint, complete; bad requests refused."""

import json
from pathlib import Path

import pytest

from detection.coco_split import split_coco
from detection.datasets import load_coco
from detection.errors import DatasetError


def write_coco(path, names, first_id=1):
    images = [{"id": first_id + i, "file_name": name, "width": 32, "height": 32} for i, name in enumerate(names)]
    annotations = [
        {
            "id": 100 + i,
            "image_id": image["id"],
            "category_id": 1 + i % 2,
            "bbox": [1, 2, 10, 10],
            "area": 100,
            "iscrowd": 0,
        }
        for i, image in enumerate(images)
    ]
    annotations.append({**annotations[0], "id": 999})  # a second box on the first image
    categories = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    path.write_text(
        json.dumps({"info": {"year": 2017}, "images": images, "annotations": annotations, "categories": categories})
    )
    return path


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    source = write_coco(tmp_path / "train.json", [f"{i:03d}.jpg" for i in range(20)])
    split = split_coco(source, tmp_path / "a", search_val=6, seed=3)
    again = split_coco(source, tmp_path / "b", search_val=6, seed=3)
    other = split_coco(source, tmp_path / "c", search_val=6, seed=4)
    train, val = (json.loads(Path(path).read_text()) for path in (split.train_file, split.val_file))
    val_names = {image["file_name"] for image in val["images"]}
    assert (split.train_images, split.val_images) == (14, 6)
    assert val_names.isdisjoint(image["file_name"] for image in train["images"])
    assert val_names | {image["file_name"] for image in train["images"]} == {f"{i:03d}.jpg" for i in range(20)}
    assert split.train_annotations + split.val_annotations == 21
    assert all(a["image_id"] in {i["id"] for i in val["images"]} for a in val["annotations"])
    assert train["categories"] == val["categories"] and train["info"] == {"year": 2017}
    assert val_names == {image["file_name"] for image in json.loads(Path(again.val_file).read_text())["images"]}
    assert val_names != {image["file_name"] for image in json.loads(Path(other.val_file).read_text())["images"]}
    assert load_coco(split.val_file, tmp_path).class_names == ("cat", "dog")


def test_a_split_as_large_as_the_training_set_is_refused(tmp_path):
    source = write_coco(tmp_path / "train.json", ["a.jpg", "b.jpg"])
    with pytest.raises(DatasetError, match="--search-val 2 must be at least 1 and below the 2 images"):
        split_coco(source, tmp_path / "out", search_val=2)
    assert not (tmp_path / "out").exists()


def test_a_final_split_sharing_images_is_refused(tmp_path):
    source = write_coco(tmp_path / "train.json", ["a.jpg", "b.jpg", "c.jpg"])
    final = write_coco(tmp_path / "final.json", ["x.jpg", "c.jpg"], first_id=50)
    with pytest.raises(DatasetError, match=r"1 images of the final split .* are also in .*c\.jpg"):
        split_coco(source, tmp_path / "out", search_val=1, final=final)
    disjoint = write_coco(tmp_path / "final2.json", ["x.jpg"], first_id=50)
    assert split_coco(source, tmp_path / "out", search_val=1, final=disjoint).val_images == 1
    with pytest.raises(DatasetError, match="exists already"):
        split_coco(source, tmp_path / "out", search_val=1)
