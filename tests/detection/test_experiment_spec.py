"""The typed experiment spec: defaults from the detector, pretrained backbone settings, descriptions."""

import pytest

from detection.detectors import DETECTORS
from detection.experiment_spec import ExperimentSpec, Losses, ModelSpec, Schedule
from detection.pretrained import BackboneWeightsError


def test_resolved_spec_takes_the_detectors_default_schedule_and_loss():
    for name, detector in DETECTORS.items():
        spec = ExperimentSpec(model=ModelSpec(detector=name), schedule=Schedule(batch_size=4)).resolved()
        assert (spec.schedule.steps, spec.schedule.optimizer) == (detector.default_steps, detector.default_optimizer)
        assert spec.losses.cls == detector.default_cls_loss and spec.schedule.batch_size == 4
    given = ExperimentSpec(schedule=Schedule(steps=7), losses=Losses(cls="bce")).resolved()
    assert given.schedule.steps == 7 and given.losses.cls == "bce"


def test_model_config_has_the_pretrained_backbone_settings_only_with_weights():
    plain = ModelSpec(preset="resnet18", precision="bfloat16").config(3, (64, 96))
    assert (plain.backbone_norm, plain.frozen_stages, plain.precision) == ("group", 0, "bfloat16")
    assert plain.image_size == (64, 96) and plain.num_classes == 3
    pretrained = ModelSpec(preset="resnet18", backbone_weights="w.pth", overrides=(("fpn_width", 32),)).config(3, 64)
    assert (pretrained.backbone_norm, pretrained.frozen_stages, pretrained.fpn_width) == ("frozen_bn", 1, 32)


def test_check_refuses_a_missing_weights_file_before_any_data(tmp_path):
    with pytest.raises(BackboneWeightsError, match="r50.pth not found"):
        ModelSpec(preset="resnet50", backbone_weights=str(tmp_path / "r50.pth")).check(64)
    with pytest.raises(ValueError, match="unknown fcos preset 'huge'"):
        ModelSpec(preset="huge").check(64)


def test_losses_are_described_by_name_or_by_the_given_descriptions():
    def my_loss(x, y, w):
        return x

    assert Losses(cls=my_loss).describe() == {"cls": "my_loss", "reg": "giou", "alpha_balance": None}
    described = Losses(cls=my_loss, alpha_balance=0.25, descriptions={"cls": {"formula": "x"}, "reg": {"name": "iou"}})
    assert described.describe() == {"cls": {"formula": "x"}, "reg": {"name": "iou"}, "alpha_balance": 0.25}
