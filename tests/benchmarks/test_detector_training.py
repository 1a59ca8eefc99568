"""``python -m benchmarks.detector_training``: each detector's loss pairs at its default schedule, one section each."""

import pytest

from benchmarks import detector_training
from detection.detectors import DETECTORS


def test_each_detector_trains_its_pairs_at_its_default_schedule(monkeypatch, tmp_path):
    trained = []

    def fake_pair(detector, cls_name, reg_name, *, steps, batch_size, seed, out_dir):
        trained.append((detector, cls_name, reg_name, steps, seed))
        metrics = {"AP": 0.5, "AP50": 0.7, "AP75": 0.6, "AP_S": 0.4, "AP_M": 0.6, "AP_L": float("nan"),
                   "mAP50_voc": 0.7}
        return {"pair": f"{cls_name} + {reg_name}", "metrics": metrics, "seed": seed, "steps": steps,
                "batch_size": batch_size, "train_seconds": 600.0, "images_per_second": 123.4}

    throughput = {"images_per_second": 150.0, "compile_seconds": 7.0, "batch_size": 16, "steps": 60}
    monkeypatch.setattr(detector_training, "train_loss_pair", fake_pair)
    monkeypatch.setattr(detector_training, "measure_throughput", lambda *args: throughput)
    monkeypatch.setattr(detector_training, "measure_cocoeval", lambda: {"images": 500, "seconds": 0.7, "AP": 1.0})
    fcos, faster_rcnn = detector_training.main(["--seeds", "0,1", "--work-dir", str(tmp_path)])

    fcos_steps, rcnn_steps = DETECTORS["fcos"].default_steps, DETECTORS["faster-rcnn"].default_steps
    assert trained == [
        ("fcos", "focal", "giou", fcos_steps, 0), ("fcos", "cse_b_cls", "cse_b_reg", fcos_steps, 0),
        ("fcos", "focal", "giou", fcos_steps, 1), ("fcos", "cse_b_cls", "cse_b_reg", fcos_steps, 1),
        *[("faster-rcnn", cls, reg, rcnn_steps, seed) for seed in (0, 1)
          for cls, reg in (("cross_entropy", "l1"), ("cross_entropy", "giou"), ("cse_a_cls", "cse_a_reg"))],
    ]
    assert fcos.startswith(detector_training.SECTIONS["fcos"]) and "COCOeval on final_val" in fcos
    assert faster_rcnn.startswith(detector_training.SECTIONS["faster-rcnn"]) and "COCOeval on" not in faster_rcnn
    assert f"| cse_a_cls + cse_a_reg | 1 | {rcnn_steps} | 16 | 10.0 | 123 | 50.0 | 70.0 | 60.0 | 40.0 | 60.0 | - |" \
        in faster_rcnn
    learning_rate = DETECTORS["faster-rcnn"].default_optimizer.learning_rate
    assert f"Default schedule (AdamW {learning_rate:g}, 200 warmup steps)" in faster_rcnn
    assert "**150 images/s**" in fcos and "--seeds 0,1" in fcos


def test_bad_seeds_are_refused_with_the_accepted_form(capsys):
    for text in ("0,a", "", "-1"):
        with pytest.raises(SystemExit) as refused:
            detector_training.main(["--seeds", text])
        assert refused.value.code == 2
        assert "is not a comma-separated list of seeds; write e.g. 0,1" in capsys.readouterr().err
