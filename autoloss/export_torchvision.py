"""The torchvision export: a PyTorch module that puts the loss into torchvision's FCOS.

torchvision's ``FCOSHead.compute_loss`` (torchvision/models/detection/fcos.py) sums a sigmoid
focal loss over anchors and classes and a GIoU loss over foreground anchors, each divided by
the number of foreground anchors (at least 1), beside a centerness BCE. The exported module is
the PyTorch export (``autoloss.export_modules``) plus ``install(model)``, which wraps the
head's ``compute_loss`` so that the ``classification`` term (a sigmoid-form loss) or the
``bbox_regression`` term (a reg-form loss) is the exported loss, normalized the same way;
exporting a classification and a regression loss and installing both replaces focal and GIoU.

The classification term is alpha-balanced (0.25), as CSE-Autoloss trains a searched
sigmoid-form loss and as focal is; its w is the IoU of each foreground anchor's decoded box with
its ground-truth box, at the true class (detached, as an IoU target). The matching is
torchvision's own (``matched_idxs``), read the way its ``compute_loss`` reads it.

A softmax-form loss has no place in FCOS (it classifies with per-class sigmoids): exporting
one here is an error that names the other targets.
"""

from __future__ import annotations

from autoloss.export_modules import ExportError, ExportHeader, module_text
from symbolic import primitives
from symbolic.candidate import Candidate

TERMS = {"sigmoid": "classification", "reg": "bbox_regression"}

_TARGETS = '''def fcos_targets(targets, matched_idxs):
    """Per anchor, the matched ground-truth label (-1 for background) and box, stacked over the images, as
    torchvision's FCOSHead.compute_loss reads ``matched_idxs``."""
    labels, boxes = [], []
    for target, matched in zip(targets, matched_idxs):
        if len(target["labels"]) == 0:
            labels.append(torch.full_like(matched, -1))
            boxes.append(target["boxes"].new_zeros((len(matched), 4)))
            continue
        index = matched.clip(min=0)
        labels.append(torch.where(matched >= 0, target["labels"][index], -1))
        boxes.append(target["boxes"][index])
    return torch.stack(labels), torch.stack(boxes)'''

_CLASSIFICATION = '''ALPHA = 0.25  # the class balance CSE-Autoloss trains a sigmoid-form loss with (focal's alpha)


def fcos_term(head, targets, head_outputs, anchors, matched_idxs):
    """The classification loss of FCOS with this module's loss in place of focal: summed, alpha-balanced,
    divided by the number of foreground anchors (at least 1)."""
    labels, boxes = fcos_targets(targets, matched_idxs)
    foreground = labels >= 0
    logits = head_outputs["cls_logits"]
    y = torch.zeros_like(logits)
    y[foreground, labels[foreground]] = 1.0
    pred_boxes = head.box_coder.decode(head_outputs["bbox_regression"], torch.stack(anchors))
    i, u, _ = {areas}
    w = torch.zeros_like(logits)
    w[foreground, labels[foreground]] = {iou}.detach().to(w.dtype)
    value = loss(logits, y, w) * (ALPHA * y + (1 - ALPHA) * (1 - y))
    return value.sum() / max(1, int(foreground.sum()))'''

_REGRESSION = '''def fcos_term(head, targets, head_outputs, anchors, matched_idxs):
    """The box regression loss of FCOS with this module's loss in place of GIoU: summed over the foreground
    anchors, divided by their number (at least 1)."""
    labels, boxes = fcos_targets(targets, matched_idxs)
    foreground = labels >= 0
    pred_boxes = head.box_coder.decode(head_outputs["bbox_regression"], torch.stack(anchors))
    value = loss(*box_inputs(pred_boxes[foreground], boxes[foreground]))
    return value.sum() / max(1, int(foreground.sum()))'''

_INSTALL = '''def install(model):
    """Make torchvision's FCOS ``model`` train with this loss as its {term!r} term; returns ``model``.

    The head's ``compute_loss`` is wrapped, so installing a classification and a regression
    export replaces both focal and GIoU; the centerness loss stays torchvision's."""
    compute_loss = model.head.compute_loss

    def compute_loss_with_exported_loss(targets, head_outputs, anchors, matched_idxs):
        losses = compute_loss(targets, head_outputs, anchors, matched_idxs)
        losses[{term!r}] = fcos_term(model.head, targets, head_outputs, anchors, matched_idxs)
        return losses

    model.head.compute_loss = compute_loss_with_exported_loss
    return model'''


def torchvision_module_source(candidate: Candidate, *, header: ExportHeader | None = None) -> str:
    """Source of a module with the candidate and ``install(model)`` for torchvision's FCOS (module docstring)."""
    form = candidate.form.name
    if form not in TERMS:
        raise ExportError(f"a {form}-form loss cannot go into torchvision's FCOS, which classifies with per-class "
                          "sigmoids (sigmoid form) and regresses boxes (reg form); export a sigmoid- or reg-form "
                          f"loss --to torchvision, or this one --to jax, torch or mmdet (for a {form}-form head)")
    text = module_text(candidate, "torch", header=header)
    text.docstring[-1:] = ["", f"``install(model)`` makes torchvision's FCOS train with it as its {TERMS[form]!r} "
                           "loss (see cse-autoloss's README).", '"""']
    if form == "sigmoid":
        areas = text.writer.call(primitives.box_areas,
                                 f"*{text.writer.word('as_inputs', 'pred_boxes[foreground]', 'boxes[foreground]')}")
        term = _CLASSIFICATION.format(areas=areas, iou=text.writer.call(primitives.safe_div, "i", "u"))
    else:
        term = _REGRESSION
    text.blocks += [_TARGETS, term, _INSTALL.format(term=TERMS[form])]
    return text.render()
