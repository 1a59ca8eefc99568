"""The torchvision drop-in: torchvision's FCOS (random weights, a few small images) trains a step with exported
classification and regression losses in place of focal and GIoU, and its losses equal a direct evaluation."""

import numpy as np
from export_checks import float64, load_module, require_torch

from autoloss.export_torchvision import torchvision_module_source
from symbolic.forms import box_areas
from symbolic.zoo import KNOWN_LOSSES


def direct_losses(cls_candidate, reg_candidate, head, captured):
    """FCOS's classification and regression terms computed here, in float64 JAX, from what the head was given."""
    import torch

    logits = captured["head_outputs"]["cls_logits"].detach().double().numpy()
    anchors = torch.stack(captured["anchors"])
    pred_boxes = head.box_coder.decode(captured["head_outputs"]["bbox_regression"], anchors).detach().double().numpy()
    labels = np.full(logits.shape[:2], -1)
    boxes = np.zeros((*logits.shape[:2], 4))
    for n, (target, matched) in enumerate(zip(captured["targets"], captured["matched_idxs"], strict=True)):
        matched = matched.numpy()
        labels[n] = np.where(matched >= 0, target["labels"].numpy()[matched.clip(0)], -1)
        boxes[n] = target["boxes"].double().numpy()[matched.clip(0)]
    foreground = labels >= 0
    i, u, e = box_areas(pred_boxes[foreground], boxes[foreground])
    y = np.zeros_like(logits)
    y[foreground, labels[foreground]] = 1.0
    w = np.zeros_like(logits)
    w[foreground, labels[foreground]] = i / u
    count = max(1, int(foreground.sum()))
    with float64():
        classification = np.sum(np.asarray(cls_candidate.to_jax()(logits, y, w)) * (0.25 * y + 0.75 * (1 - y)))
        regression = np.sum(np.asarray(reg_candidate.to_jax()(i, u, e)))
    return classification / count, regression / count, int(foreground.sum())


def test_fcos_trains_a_step_with_exported_losses_in_place_of_focal_and_giou(tmp_path):
    torch = require_torch()
    from torchvision.models.detection import fcos_resnet50_fpn  # the torch extra installs both

    cls_candidate, reg_candidate = KNOWN_LOSSES["cse_b_cls"].candidate, KNOWN_LOSSES["cse_b_reg"].candidate
    found_cls = load_module(torchvision_module_source(cls_candidate), tmp_path, "found_cls")
    found_reg = load_module(torchvision_module_source(reg_candidate), tmp_path, "found_reg")
    torch.manual_seed(0)
    model = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4, min_size=64, max_size=64)
    assert found_reg.install(found_cls.install(model)) is model
    captured, installed = {}, model.head.compute_loss

    def spy(targets, head_outputs, anchors, matched_idxs):
        captured.update(targets=targets, head_outputs=head_outputs, anchors=anchors, matched_idxs=matched_idxs)
        return installed(targets, head_outputs, anchors, matched_idxs)

    model.head.compute_loss = spy
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[5.0, 10, 30, 45], [35, 5, 60, 25]]), "labels": torch.tensor([1, 3])},
               {"boxes": torch.tensor([[15.0, 15, 50, 55]]), "labels": torch.tensor([2])}]
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.head.classification_head.cls_logits.weight.detach().clone()
    losses = model(images, targets)
    total = sum(losses.values())
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert set(losses) == {"classification", "bbox_regression", "bbox_ctrness"} and torch.isfinite(total)
    assert not torch.equal(before, model.head.classification_head.cls_logits.weight)
    classification, regression, foreground = direct_losses(cls_candidate, reg_candidate, model.head, captured)
    assert foreground > 0
    np.testing.assert_allclose(losses["classification"].item(), classification, rtol=1e-4)
    np.testing.assert_allclose(losses["bbox_regression"].item(), regression, rtol=1e-4)
