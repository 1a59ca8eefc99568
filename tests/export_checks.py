"""Shared pieces of the export tests: torch (required in CI), float64 JAX, extreme inputs, loading modules."""

import importlib.util
import itertools
import os
import sys

import jax
import numpy as np
import pytest


def require_torch():
    """torch, or a skip with the reason outside CI; in CI (CI set) a missing torch fails the test."""
    try:
        import torch
    except ImportError:
        message = "torch is not installed: pip install -e '.[torch]'"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI installs the torch extra, so this must not happen there)")
        pytest.skip(message)
    return torch


def float64():
    """A context in which JAX computes in float64 (restored on exit)."""
    return jax.enable_x64(True)


def load_module(text: str, directory, name: str):
    """Import a generated module's text from ``directory/name.py``."""
    path = directory / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # generated modules stay importable by name within the test
    spec.loader.exec_module(module)
    return module


def _sigmoid_extremes():
    logits = [-1e3, -100.0, -30.0, -5.0, 0.0, 5.0, 30.0, 100.0, 1e3]
    grid = np.array(list(itertools.product(logits, [0.0, 1.0], [0.0, 0.5, 1.0])))
    return {"x": grid[:, 0], "y": grid[:, 1], "w": grid[:, 1] * grid[:, 2]}


def _softmax_extremes(num_classes=4):
    logits = np.array([[100, -100, 0, 0], [-100, 100, 0, 0], [0, 0, 0, 100], [0, 0, 0, -100], [100, 100, 100, 100],
                       [-100, -100, -100, -100], [0, 0, 0, 0], [30, -30, 30, -30], [1e3, -1e3, 0, 0],
                       [-1e3, 0, 0, 1e3]], float)
    target = np.array([0, 0, 3, 3, 1, 3, 2, 0, 0, 1])
    iou = np.where(target == num_classes - 1, 1.0, np.array([1.0, 0.05, 1, 1, 0.5, 1, 0.0, 1.0, 0.7, 0.3]))
    return {"x": logits, "y": np.eye(num_classes)[target], "w": np.repeat(iou[:, None], num_classes, axis=1)}


def _reg_extremes():
    areas = np.array([[0, 0, 0], [0, 1, 1], [0, 1e5, 2e5], [1e5, 1e5, 1e5], [0.5, 1, 1], [1, 1, 1e5], [0, 4, 16],
                      [1e5, 1e5, 4e5]])
    return {"i": areas[:, 0], "u": areas[:, 1], "e": areas[:, 2]}


EXTREMES = {"sigmoid": _sigmoid_extremes(), "softmax": _softmax_extremes(), "reg": _reg_extremes()}


def inputs_with_extremes(form, size=24):
    """The form's probe inputs followed by extreme ones (logits ±1e3 and ±100, zero and 1e5 areas), float64 numpy."""
    probes = form.probe_inputs(size)
    return [np.concatenate([probes[n], EXTREMES[form.name][n]]) for n in form.input_names]
