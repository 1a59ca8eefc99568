"""``python -m benchmarks.backbone_throughput``: one row per backbone and precision, weight import per format."""

from benchmarks import backbone_throughput


def test_section_has_a_row_per_backbone_and_precision_and_the_import_times(monkeypatch, tmp_path, capsys):
    measured = []

    def fake_step(backbone, precision, *, image_size, batch_size, steps):
        measured.append((backbone, precision, image_size, batch_size, steps))
        return {"backbone": backbone, "precision": precision, "images_per_second": 12.5, "compile_seconds": 3.0,
                "loss": 1.25}

    monkeypatch.setattr(backbone_throughput, "measure_step", fake_step)
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(backbone_throughput, "publish", lambda section, write: results.write_text(section))
    backbone_throughput.main(["--backbones", "resnet18", "--image-size", "64", "--batch-size", "2", "--steps", "3"])
    assert measured == [("resnet18", "float32", 64, 2, 3), ("resnet18", "bfloat16", 64, 2, 3)]
    section = results.read_text()
    assert section.startswith(backbone_throughput.SECTION)
    assert "| resnet18 | bfloat16 | 12.5 | 3.0 | 1.2500 |" in section
    assert "| resnet18 | .npz | 45 |" in section  # a real import of random ResNet-18 weights
