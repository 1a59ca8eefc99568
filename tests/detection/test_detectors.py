"""The detector registry: configs from presets, loss options, dispatch by config type."""

import pytest

from detection import experiment
from detection.detectors import DETECTORS, detector_of, get_detector
from detection.experiment_spec import DataSpec, ExperimentSpec, ModelSpec, Schedule
from detection.faster_rcnn_config import FasterRCNNConfig
from detection.fcos import FCOSConfig


def test_every_detector_builds_its_presets_for_the_data():
    for detector in DETECTORS.values():
        for preset in detector.presets:
            config = detector.make_config(5, 96, preset)
            assert isinstance(config, detector.config_type) and config.num_classes == 5
            assert config.image_size == (96, 96) and detector_of(config) is detector


def test_classification_forms_are_those_of_the_paper():
    assert get_detector("fcos").cls_form == "sigmoid"
    assert get_detector("faster-rcnn").cls_form == "softmax"


def test_loss_options_drop_defaults_and_reject_what_a_detector_does_not_take():
    fcos = get_detector("fcos").loss_options("focal", "giou", alpha_balance=None, reg_weight=2.0)
    assert dict(fcos)["reg_weight"] == 2.0 and "alpha_balance" not in dict(fcos)
    with pytest.raises(ValueError, match="faster-rcnn detector takes no alpha_balance"):
        get_detector("faster-rcnn").loss_options("cross_entropy", "giou", alpha_balance=0.25)


def test_unknown_names_and_configs_are_reported():
    with pytest.raises(ValueError, match="choose one of fcos, faster-rcnn"):
        get_detector("yolo")
    with pytest.raises(ValueError, match="unknown fcos preset"):
        get_detector("fcos").make_config(3, 64, "huge")
    with pytest.raises(TypeError):
        detector_of(object())
    assert isinstance(FCOSConfig(num_classes=2), FCOSConfig) and FasterRCNNConfig(num_classes=2).num_classes == 2


class _Stop(Exception):
    pass


def test_a_run_without_steps_trains_the_detectors_default_schedule(tiny_shapes_paths, tmp_path, monkeypatch):
    seen = {}

    def record(config, batches, *, steps, optimizer, **options):
        seen[type(config).__name__] = (steps, optimizer)
        raise _Stop

    monkeypatch.setattr(experiment, "train", record)
    annotations, images = tiny_shapes_paths["train"]
    for name, detector in DETECTORS.items():
        with pytest.raises(_Stop):
            spec = ExperimentSpec(data=DataSpec(train=f"coco:{annotations}:{images}", eval_split="train"),
                                  model=ModelSpec(detector=name), schedule=Schedule(batch_size=4))
            experiment.run_experiment(spec, tmp_path / name, progress=False)
        assert seen[detector.config_type.__name__] == (detector.default_steps, detector.default_optimizer)
        assert experiment.read_experiment_metadata(tmp_path / name)["steps"] == detector.default_steps
    assert DETECTORS["fcos"].default_steps != DETECTORS["faster-rcnn"].default_steps
