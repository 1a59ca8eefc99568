"""Shared fixtures for the simulation tests: a tiny 64x64 shapes dataset as a coco: spec."""

import pytest

from detection.shapes import ensure_shapes_dataset


@pytest.fixture(scope="session")
def tiny_train_spec(tmp_path_factory):
    """A coco: dataset spec of a 32-image, 64x64 shapes training split."""
    paths = ensure_shapes_dataset(tmp_path_factory.mktemp("cache"), num_train=32, num_search_val=2, num_final_val=2,
                                  image_size=64)
    annotations, images = paths["train"]
    return f"coco:{annotations}:{images}"
