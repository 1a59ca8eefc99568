"""Detection-standard resizing: shorter side S, longer side at most L, orientation canvases, mapping back."""

import numpy as np
import pytest

from detection.fcos import FCOSConfig
from detection.geometry import Geometry, config_for_canvas, geometry_of, to_original_pixels


def test_the_papers_800_1333_rule():
    geometry = Geometry(short_side=800, max_size=1333)
    sizes = np.array([[480, 640], [640, 480], [500, 1500], [800, 800]])
    np.testing.assert_allclose(geometry.scales(sizes), [800 / 480, 800 / 480, 1333 / 1500, 1.0])
    assert geometry.resized_sizes(sizes, geometry.scales(sizes)).tolist() == [
        [800, 1067], [1067, 800], [444, 1333], [800, 800]]
    assert geometry.canvases == ((800, 1333), (1333, 800))
    assert geometry.canvas_number(sizes).tolist() == [0, 1, 0, 0]  # portrait images get the transposed canvas


def test_equal_sides_fit_the_longer_side_into_one_square_canvas():
    geometry = Geometry(128)
    assert geometry.max_size == 128 and geometry.canvases == ((128, 128),)
    sizes = np.array([[512, 683], [683, 512], [64, 64]])
    assert geometry.resized_sizes(sizes, geometry.scales(sizes)).tolist() == [[96, 128], [128, 96], [128, 128]]
    assert geometry.canvas_number(sizes).tolist() == [0, 0, 0]


def test_multi_scale_sides_must_fit_the_canvas():
    geometry = Geometry(800, 1333, train_short_sides=(640, 800))
    np.testing.assert_allclose(geometry.scales([[480, 640]], short_sides=[640]), [640 / 480])
    with pytest.raises(ValueError, match=r"multi-scale shorter sides \(900,\) must lie in \[16, 800\]"):
        Geometry(800, 1333, train_short_sides=(900,))
    with pytest.raises(ValueError, match="shorter side \\(800\\) <= longer side \\(600\\)"):
        Geometry(800, 600)


def test_a_configs_canvas_is_its_geometry():
    config = FCOSConfig(num_classes=2, image_size=(800, 1333))
    assert geometry_of(config) == Geometry(800, 1333)
    portrait = config_for_canvas(config, (1333, 800))
    assert portrait.image_size == (1333, 800) and config_for_canvas(config, (800, 1333)) is config


def test_boxes_map_back_to_original_pixels_and_are_clipped():
    boxes = np.array([[[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 500.0, 500.0]]])
    mapped = to_original_pixels(boxes, np.array([2.0]), np.array([[100, 150]]))
    np.testing.assert_allclose(mapped, [[[5, 10, 15, 20], [0, 0, 150, 100]]])
