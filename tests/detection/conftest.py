"""Shared fixtures for the detection data tests: a tiny generated shapes dataset and its ground truth."""

import pytest
from ground_truth import ground_truth

from detection.datasets import load_coco
from detection.shapes import ensure_shapes_dataset


@pytest.fixture(scope="session")
def tiny_shapes_paths(tmp_path_factory):
    """Paths {split: (annotation JSON, image dir)} of a 12/6/10-image shapes dataset."""
    root = tmp_path_factory.mktemp("cache")
    return ensure_shapes_dataset(root, num_train=12, num_search_val=6, num_final_val=10, progress=False)


@pytest.fixture(scope="session")
def tiny_shapes_data(tiny_shapes_paths):
    """The index of the final_val split of the tiny shapes dataset."""
    return load_coco(*tiny_shapes_paths["final_val"])


@pytest.fixture(scope="session")
def tiny_ground_truth(tiny_shapes_data):
    """``ground_truth`` of the tiny final_val split."""
    return ground_truth(tiny_shapes_data)
