"""Shared fixtures for the detection data tests: a tiny generated shapes dataset."""

import pytest

from detection.datasets import load_coco
from detection.shapes import ensure_shapes_dataset


@pytest.fixture(scope="session")
def tiny_shapes_paths(tmp_path_factory):
    """Paths {split: (annotation JSON, image dir)} of a 12/6/10-image shapes dataset."""
    root = tmp_path_factory.mktemp("cache")
    return ensure_shapes_dataset(root, num_train=12, num_search_val=6, num_final_val=10)


@pytest.fixture(scope="session")
def tiny_shapes_data(tiny_shapes_paths):
    """The final_val split of the tiny shapes dataset as DetectionData."""
    return load_coco(*tiny_shapes_paths["final_val"])
