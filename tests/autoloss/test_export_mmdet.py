"""The MMDetection export: its classes, called with torch tensors as MMDetection's heads call them, give the JAX
values (and gradients), reduce as MMDetection does, register only when mmdet is importable, and refuse bad
arguments."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from export_checks import float64, load_module, require_torch

from autoloss.export_mmdet import CLASS_NAMES, mmdet_module_source
from symbolic import primitives
from symbolic.backends import JaxArrays
from symbolic.zoo import KNOWN_LOSSES

EPS = float(np.finfo(np.float32).eps)


@pytest.fixture
def torch():
    return require_torch()


def mmdet_class(tmp_path, name, *, trainable=False, module_name=None):
    candidate = KNOWN_LOSSES[name].candidate
    module = load_module(mmdet_module_source(candidate, trainable_constants=trainable), tmp_path,
                         module_name or f"mmdet_{name}")
    return candidate, module, getattr(module, CLASS_NAMES[candidate.form.name])


def test_sigmoid_class_takes_logits_labels_and_the_authors_pos_ious(torch, tmp_path):
    candidate, module, cls = mmdet_class(tmp_path, "cse_b_cls")
    assert module.MODELS is None  # no mmdet here: the class works on its own
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (6, 3))
    labels = np.array([0, 3, 2, 3, 1, 3])  # 3 = background
    pos_ious = np.array([0.9, 0.4, 0.7])  # one per positive, in order, as the authors' FCOS head passes them
    y = np.eye(4)[labels][:, :3]
    w = y * np.array([0.9, 0, 0.4, 0, 0.7, 0])[:, None]
    with float64():
        expected = np.asarray(candidate.to_jax()(logits, y, w)) * (0.25 * y + 0.75 * (1 - y))
        grad = np.asarray(jax.grad(lambda x: jnp.sum(candidate.to_jax()(x, y, w) * (0.25 * y + 0.75 * (1 - y))))(
            logits))
    loss = cls(loss_weight=2.0)
    pred = torch.tensor(logits, requires_grad=True)
    none = loss(pred, torch.tensor(labels), pos_ious=torch.tensor(pos_ious), reduction_override="none")
    np.testing.assert_allclose(none.detach().numpy(), 2 * expected, rtol=1e-10)
    mean = loss(pred, torch.tensor(labels), avg_factor=4.0, pos_ious=torch.tensor(pos_ious))
    np.testing.assert_allclose(mean.item(), 2 * expected.sum() / (4.0 + EPS), rtol=1e-10)
    (mean * (4.0 + EPS) / 2).backward()
    np.testing.assert_allclose(pred.grad.numpy(), grad, rtol=1e-9, atol=1e-12)
    per_sample = loss(pred, torch.tensor(labels), pos_ious=torch.tensor([0.9, 0, 0.4, 0, 0.7, 0], dtype=torch.float64),
                      reduction_override="sum")
    np.testing.assert_allclose(per_sample.item(), 2 * expected.sum(), rtol=1e-10)
    weight = torch.tensor([1.0, 0, 1, 1, 0, 1], dtype=torch.float64)
    weighted = loss(pred, torch.tensor(labels), weight, pos_ious=torch.tensor(pos_ious), reduction_override="sum")
    np.testing.assert_allclose(weighted.item(), 2 * (expected * weight.numpy()[:, None]).sum(), rtol=1e-10)
    one_hot = loss(pred, torch.tensor(y), pos_ious=torch.tensor(pos_ious), reduction_override="none")
    np.testing.assert_allclose(one_hot.detach().numpy(), 2 * expected, rtol=1e-10)


def test_sigmoid_class_without_ious_uses_iou_one_and_alpha_can_be_off(torch, tmp_path):
    candidate, _, cls = mmdet_class(tmp_path, "cse_b_cls")
    logits, labels = np.linspace(-5, 5, 8).reshape(4, 2), np.array([0, 1, 2, 2])
    y = np.eye(3)[labels][:, :2]
    with float64():
        expected = np.asarray(candidate.to_jax()(logits, y, y))
    got = cls(alpha=None)(torch.tensor(logits), torch.tensor(labels), reduction_override="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_softmax_class_takes_scores_labels_and_ious_on_positive_rows(torch, tmp_path):
    candidate, _, cls = mmdet_class(tmp_path, "cse_a_cls")
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(0, 3, (5, 4)), np.array([0, 3, 1, 3, 2])  # 3 = background, last
    pos_ious = np.array([0.8, 0.5, 0.6])
    w = np.repeat(np.array([0.8, 1, 0.5, 1, 0.6])[:, None], 4, axis=1)
    with float64():
        expected = np.asarray(candidate.to_jax()(scores, np.eye(4)[labels], w))
    loss = cls()
    got = loss(torch.tensor(scores), torch.tensor(labels), pos_ious=torch.tensor(pos_ious), reduction_override="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    weight = torch.tensor([1.0, 1, 0, 1, 1], dtype=torch.float64)
    got = loss(torch.tensor(scores), torch.tensor(labels), weight, avg_factor=3, pos_ious=torch.tensor(pos_ious))
    np.testing.assert_allclose(got.item(), (expected * weight.numpy()).sum() / (3 + EPS), rtol=1e-10)
    assert loss.use_sigmoid is False


@pytest.mark.parametrize("name", ["cse_b_reg", "giou"])
def test_reg_class_takes_boxes_and_computes_the_areas_itself(torch, tmp_path, name):
    candidate, _, cls = mmdet_class(tmp_path, name)
    target = np.array([[0, 0, 10, 10], [5, 5, 25, 15], [0, 0, 1, 1], [3, 3, 8, 9]], float)
    pred = target + np.array([[1, -1, 2, 0], [0, 0, 0, 0], [2, 2, 3, 3], [-1, 0.5, 4, -2]])  # one exact, one apart

    def jax_loss(p):
        return candidate.to_jax()(*primitives.box_areas(JaxArrays, p, jnp.asarray(target)))

    with float64():
        expected = np.asarray(jax_loss(jnp.asarray(pred)))
        grad = np.asarray(jax.grad(lambda p: jnp.sum(jax_loss(p)))(jnp.asarray(pred)))
    loss = cls(loss_weight=5.0)
    boxes = torch.tensor(pred, requires_grad=True)
    got = loss(boxes, torch.tensor(target), reduction_override="none")
    np.testing.assert_allclose(got.detach().numpy(), 5 * expected, rtol=1e-10)
    (got.sum() / 5).backward()
    np.testing.assert_allclose(boxes.grad.numpy(), grad, rtol=1e-9, atol=1e-12)
    weight = torch.tensor([[1.0] * 4, [0.0] * 4, [0.5] * 4, [1.0] * 4], dtype=torch.float64)  # [N, 4]: averaged
    got = loss(torch.tensor(pred), torch.tensor(target), weight, avg_factor=2.5)
    np.testing.assert_allclose(got.item(), 5 * (expected * [1, 0, 0.5, 1]).sum() / (2.5 + EPS), rtol=1e-10)
    zero = loss(boxes, torch.tensor(target), torch.zeros(4, dtype=torch.float64))
    assert zero.item() == 0 and zero.requires_grad  # MMDetection's convention: 0, still in the graph


def test_trainable_constants_are_a_parameter_of_the_class(torch, tmp_path):
    _, module, cls = mmdet_class(tmp_path, "focal", trainable=True, module_name="mmdet_focal_trainable")
    loss = cls().double()
    assert [name for name, _ in loss.named_parameters()] == ["constants"]
    np.testing.assert_allclose(loss.constants.detach().numpy(), module.CONSTANTS)
    value = loss(torch.tensor([[2.0, -1.0]], dtype=torch.float64), torch.tensor([0]))
    value.backward()
    assert torch.isfinite(loss.constants.grad).all() and loss.constants.grad.abs().sum() > 0


def test_the_class_registers_with_mmdet_when_it_is_importable(torch, tmp_path, monkeypatch):
    registered = {}

    class Registry:
        def register_module(self):
            def register(cls):
                registered[cls.__name__] = cls
                return cls
            return register

    mmdet, registry = types.ModuleType("mmdet"), types.ModuleType("mmdet.registry")
    registry.MODELS = Registry()
    monkeypatch.setitem(__import__("sys").modules, "mmdet", mmdet)
    monkeypatch.setitem(__import__("sys").modules, "mmdet.registry", registry)
    _, module, cls = mmdet_class(tmp_path, "cse_a_reg", module_name="mmdet_registered")
    assert module.MODELS is registry.MODELS and registered == {"AutolossRegLoss": cls}


def test_bad_arguments_are_refused_with_the_fix(torch, tmp_path):
    _, _, sigmoid = mmdet_class(tmp_path, "bce")
    with pytest.raises(ValueError, match="use_sigmoid must be True"):
        sigmoid(use_sigmoid=False)
    loss = sigmoid()
    logits, labels = torch.zeros((4, 2)), torch.tensor([0, 1, 2, 2])
    with pytest.raises(ValueError, match=r"pos_ious has 3 values; give one per positive sample \(2\) or one per "
                                         r"sample \(4\)"):
        loss(logits, labels, pos_ious=torch.ones(3))
    with pytest.raises(ValueError, match="reduction must be 'none', 'mean' or 'sum'"):
        loss(logits, labels, reduction_override="average")
    with pytest.raises(ValueError, match="avg_factor can not be used with reduction=\"sum\""):
        loss(logits, labels, avg_factor=2.0, reduction_override="sum")
    _, _, softmax = mmdet_class(tmp_path, "ce")
    with pytest.raises(ValueError, match="use_sigmoid must be False"):
        softmax(use_sigmoid=True)
