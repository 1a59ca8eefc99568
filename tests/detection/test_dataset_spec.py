"""The dataset spec grammar: kinds, options before the first colon, and paths that contain ':' or ','."""

from pathlib import Path

import pytest

from detection.dataset_spec import DEFAULT_HOLDOUT, parse_dataset_spec
from detection.errors import DatasetError


def test_forms_and_their_fields():
    assert parse_dataset_spec("shapes").kind == "shapes"
    variant = parse_dataset_spec("shapes:seed=1,classes=6")
    assert dict(variant.shapes_options) == {"seed": 1, "num_classes": 6}
    coco = parse_dataset_spec("coco:data/ann.json:data/images")
    assert (coco.annotations, coco.folder, coco.holdout, coco.allow_outside) == (
        Path("data/ann.json"), Path("data/images"), DEFAULT_HOLDOUT, False)
    voc = parse_dataset_spec("voc,classes=cat+dog,holdout=0.25,seed=3:my/VOC")
    assert (voc.folder, voc.classes, voc.holdout, voc.seed) == (Path("my/VOC"), ("cat", "dog"), 0.25, 3)
    labelled = parse_dataset_spec("voc,labels=labels.txt,allow_outside=yes:my/VOC")
    assert labelled.labels_file == Path("my/VOC/labels.txt") and labelled.allow_outside
    assert parse_dataset_spec("coco,holdout=500:a.json:b").holdout == 500


def test_paths_may_hold_colons_and_commas():
    spec = parse_dataset_spec("coco,holdout=0:/runs/2024-01-01T10:00/ann,v2.json:/data/img:s,1")
    assert spec.annotations == Path("/runs/2024-01-01T10:00/ann,v2.json") and spec.folder == Path("/data/img:s,1")
    assert parse_dataset_spec("voc:/data/VOC:2007,a").folder == Path("/data/VOC:2007,a")
    assert parse_dataset_spec("coco:labels.JSON:img").annotations == Path("labels.JSON")
    assert parse_dataset_spec("coco:instances:img").annotations == Path("instances")  # one colon: unambiguous


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("imagenet", "unknown dataset kind 'imagenet'"),
        ("coco:only_one_part", "cannot tell where the annotation path ends"),
        ("coco:a:b:c", "cannot tell where the annotation path ends"),
        ("voc:", "voc needs VOC_DIR after the colon"),
        ("shapes:", "shapes takes its options after the colon"),
        ("shapes,seed=1", "shapes takes its options after the colon"),
        ("coco,holdout=1.5:a.json:b", "holdout='1.5' must be a fraction in \\[0, 1\\)"),
        ("coco,holdout=-1:a.json:b", "holdout='-1'"),
        ("coco,classes=a+b:a.json:b", "unknown coco option 'classes'"),
        ("voc,classes=a+a:d", "must be distinct names"),
        ("voc,classes=a,labels=l.txt:d", "either as classes=... or as labels=FILE"),
        ("voc,seed=x:d", "seed='x' must be an integer"),
        ("voc,allow_outside=maybe:d", "allow_outside='maybe' must be yes or no"),
        ("voc,holdout=0.1,holdout=0.2:d", "option holdout is given twice"),
        ("voc,holdout:d", "'holdout' is not KEY=VALUE"),
        ("", "the spec is empty"),
    ],
)
def test_bad_specs_name_the_problem_and_the_accepted_forms(text, message):
    with pytest.raises(DatasetError, match=message) as raised:
        parse_dataset_spec(text)
    assert "accepted forms: 'shapes'" in str(raised.value)
