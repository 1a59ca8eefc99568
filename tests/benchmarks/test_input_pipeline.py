"""``python -m benchmarks.input_pipeline``: the generated set, and the sections built from the measurements."""

from pathlib import Path

import pytest

from benchmarks import input_pipeline
from detection.datasets import load_dataset


def test_the_generated_set_is_a_loadable_coco_file_written_once(tmp_path):
    annotations, images = input_pipeline.write_coco_set(tmp_path, 10)
    index = load_dataset(f"coco,holdout=0:{annotations}:{images}", split="train", progress=False)
    assert len(index) == 10 and index.sizes.tolist()[3:5] == [[512, 683], [683, 512]]
    assert index.num_classes == 5
    for row, (height, width) in enumerate(index.sizes):  # every box lies inside its image
        assert (index.boxes_of(row)[0][:, 2:] <= [width, height]).all()
    stamp = annotations.stat().st_mtime_ns
    assert input_pipeline.write_coco_set(tmp_path, 10)[0].stat().st_mtime_ns == stamp


def test_the_large_section_states_ratios_memory_and_load(tmp_path, monkeypatch):
    monkeypatch.setattr(input_pipeline, "stream_rate", lambda index, geometry, workers, batches: {
        "workers": workers, "images_per_second": 40.0 * (workers + 1), "start_seconds": 2.0, "load": "load 1.0"})
    monkeypatch.setattr(input_pipeline, "training_rate", lambda *args: {
        "images_per_second": 8.0, "compile_seconds": 30.0, "load": "load 1.0"})
    report = {"datasets": {"train_images": 9, "eval_images": 1}}
    monkeypatch.setattr(input_pipeline, "peak_memory", lambda command: {
        "bytes": 2.5 * 2**30, "pss_bytes": 2 * 2**30, "processes": 4, "seconds": 60.0, "report": report,
        "load": "load 1.0"})
    (section,) = input_pipeline.main(["--parts", "large", "--images", "10", "--work-dir", str(tmp_path)])
    assert section.startswith(input_pipeline.SECTIONS["large"])
    assert "| pipeline, 2 worker processes | 120 | **15.0x** |" in section and "**2.50 GiB** resident" in section
    assert "--images 10" in section


@pytest.mark.parametrize("part", ["ap", "search"])
def test_the_comparing_parts_need_another_checkout(part, capsys):
    with pytest.raises(SystemExit):
        input_pipeline.main(["--parts", part])
    assert "--previous" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        input_pipeline.main(["--parts", "speed"])


def test_the_search_part_times_each_checkout_in_a_fresh_cache(tmp_path, monkeypatch):
    calls = []

    def fake_peak_memory(command, **popen):
        calls.append((command, popen))
        return {"bytes": 2**30, "pss_bytes": 2**29, "processes": 3, "seconds": 60.0 * len(calls), "report": {},
                "load": "load average 1.0"}

    monkeypatch.setattr(input_pipeline, "peak_memory", fake_peak_memory)
    monkeypatch.setattr(input_pipeline, "ensure_shapes_dataset",
                        lambda root: {"train": (tmp_path / "data" / "train.json", None)})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text("{}")
    [section] = input_pipeline.main(["--parts", "search", "--previous", str(tmp_path), "--work-dir",
                                     str(tmp_path / "work")])
    assert "**2.00x**" in section and "| streaming (this checkout) | 2.0 | 1.00 |" in section
    for command, popen in calls:
        cache = Path(popen["env"]["AUTOLOSS_CACHE"])
        assert (cache / "data" / "train.json").is_file() and command[-3:] == ["--out", command[-2], "--json"]
    assert calls[0][1]["cwd"] == tmp_path.resolve() and calls[0][1]["env"]["PYTHONPATH"] == str(tmp_path.resolve())
