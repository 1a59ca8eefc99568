"""The MMDetection export: a PyTorch module whose loss class follows MMDetection's loss convention.

The module is the PyTorch export (``autoloss.export_modules``) plus one class for the loss's form,
``__init__(..., reduction='mean', loss_weight=1.0)`` and
``forward(pred, target, weight=None, avg_factor=None, reduction_override=None, ...)``, reduced
like MMDetection's ``weight_reduce_loss`` (``loss * weight``, then ``sum / (avg_factor + eps)``
for a mean with ``avg_factor``); MMDetection 3.x ``mmdet/models/losses/utils.py``:

* ``sigmoid`` → ``AutolossSigmoidLoss``, for one-stage heads (FCOS, ATSS, RetinaNet): logits
  [N, C] and labels [N] in [0, C] (C is background) or binary targets [N, C]; ``pos_ious``, the
  IoU of each positive's predicted box with its ground truth, as the CSE-Autoloss authors'
  heads pass it, is w at the positive entry (1 when no IoU is passed). Alpha-balanced (0.25)
  as the authors and this project train a searched sigmoid-form loss.
* ``softmax`` → ``AutolossSoftmaxLoss``, for Faster R-CNN's bbox head: scores [N, C+1]
  (background last) and labels [N]; w is ``pos_ious`` on positive rows and 1 on the others.
* ``reg`` → ``AutolossRegLoss``: predicted and target boxes [N, 4] (x1, y1, x2, y2, decoded:
  set ``reg_decoded_bbox=True`` in a two-stage head); it computes i, u and e itself. A weight
  [N, 4] is averaged over its last axis and an all-zero weight gives 0, as MMDetection's IoU
  losses do.

The class registers with ``MODELS`` (MMDetection 3.x; ``LOSSES`` in 2.x) only when MMDetection is
importable: without it the module imports and the class works as a plain ``nn.Module``.
"""

from __future__ import annotations

from autoloss.export_modules import ExportHeader, module_text
from symbolic.candidate import Candidate

CLASS_NAMES = {"sigmoid": "AutolossSigmoidLoss", "softmax": "AutolossSoftmaxLoss", "reg": "AutolossRegLoss"}

_REGISTRY = '''try:  # MMDetection 3.x keeps losses in MODELS, 2.x in LOSSES; without it the class works on its own
    from mmdet.registry import MODELS
except ImportError:
    try:
        from mmdet.models.builder import LOSSES as MODELS
    except ImportError:
        MODELS = None


def register(cls):
    """``MODELS.register_module()(cls)`` when MMDetection is importable, else ``cls`` unchanged."""
    return cls if MODELS is None else MODELS.register_module()(cls)


def weight_reduce_loss(loss, weight=None, reduction="mean", avg_factor=None):
    """MMDetection's reduction: ``loss * weight``, then none, mean (``sum / (avg_factor + eps)`` with an
    ``avg_factor``) or sum."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
    if reduction == "mean":
        return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)
    if reduction == "sum":
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def sample_ious(pos_ious, positive):
    """The IoU of each sample [N], 0 off the positives, from ``pos_ious`` given per positive sample in order
    (as the CSE-Autoloss heads pass it) or per sample; ``positive`` is the samples' boolean mask [N]."""
    pos_ious = pos_ious.detach().reshape(-1).to(positive.device)
    if len(pos_ious) == len(positive):
        return pos_ious * positive
    if len(pos_ious) == int(positive.sum()):
        return torch.zeros(len(positive), dtype=pos_ious.dtype, device=positive.device).masked_scatter(positive,
                                                                                                          pos_ious)
    raise ValueError(f"pos_ious has {len(pos_ious)} values; give one per positive sample ({int(positive.sum())}) "
                     f"or one per sample ({len(positive)})")'''

_SIGMOID = '''@register
class {name}(torch.nn.Module):
    """MMDetection classification loss on per-class sigmoids (FCOS, ATSS, RetinaNet heads): ``loss`` of this
    module, alpha-balanced as CSE-Autoloss trains it (alpha=None turns that off)."""

    def __init__(self, use_sigmoid=True, alpha=0.25, reduction="mean", loss_weight=1.0):
        super().__init__()
        if not use_sigmoid:
            raise ValueError("{name} is a sigmoid-form loss: use_sigmoid must be True")
        self.use_sigmoid, self.alpha = use_sigmoid, alpha
        self.reduction, self.loss_weight = reduction, loss_weight{init}

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None, pos_ious=None, **kwargs):
        """pred: logits [N, C]; target: labels [N] in [0, C] (C = background) or binary [N, C]; weight: [N] or
        [N, C]; pos_ious: IoU of each positive's box (see the module docstring)."""
        num_classes = pred.shape[-1]
        if target.dim() == pred.dim():
            y = target.to(pred.dtype)
        else:
            y = torch.nn.functional.one_hot(target.long(), num_classes + 1)[..., :num_classes].to(pred.dtype)
        w = y
        if pos_ious is not None:
            w = y * sample_ious(pos_ious, y.reshape(len(y), -1).any(dim=1)).to(y.dtype)[:, None]
        value = loss({call}pred, y, w)
        if self.alpha is not None:
            value = value * (self.alpha * y + (1 - self.alpha) * (1 - y))
        if weight is not None and weight.shape != value.shape:
            weight = weight.reshape(len(value), -1)
        return self.loss_weight * weight_reduce_loss(value, weight, reduction_override or self.reduction, avg_factor)'''

_SOFTMAX = '''@register
class {name}(torch.nn.Module):
    """MMDetection classification loss over C+1 softmax classes, background last (Faster R-CNN's bbox head):
    ``loss`` of this module."""

    def __init__(self, use_sigmoid=False, reduction="mean", loss_weight=1.0):
        super().__init__()
        if use_sigmoid:
            raise ValueError("{name} is a softmax-form loss: use_sigmoid must be False")
        self.use_sigmoid, self.reduction, self.loss_weight = use_sigmoid, reduction, loss_weight{init}

    def forward(self, cls_score, label, weight=None, avg_factor=None, reduction_override=None, pos_ious=None,
                **kwargs):
        """cls_score: [N, C+1]; label: [N] in [0, C] (C = background); weight: [N]; pos_ious: IoU of each
        positive RoI's box (see the module docstring)."""
        y = torch.nn.functional.one_hot(label.long(), cls_score.shape[-1]).to(cls_score.dtype)
        w = torch.ones_like(y)
        if pos_ious is not None:
            positive = (label >= 0) & (label < cls_score.shape[-1] - 1)
            w[positive] = sample_ious(pos_ious, positive)[positive, None].to(w.dtype)
        value = loss({call}cls_score, y, w)
        if weight is not None:
            weight = weight.to(value.dtype)
        return self.loss_weight * weight_reduce_loss(value, weight, reduction_override or self.reduction, avg_factor)'''

_REG = '''@register
class {name}(torch.nn.Module):
    """MMDetection box regression loss on decoded (x1, y1, x2, y2) boxes: ``loss`` of this module on their
    intersection, union and enclosing areas."""

    def __init__(self, reduction="mean", loss_weight=1.0):
        super().__init__()
        self.reduction, self.loss_weight = reduction, loss_weight{init}

    def forward(self, pred, target, weight=None, avg_factor=None, reduction_override=None, **kwargs):
        """pred, target: boxes [N, 4]; weight: [N] or [N, 4] (averaged over the last axis)."""
        if weight is not None and not torch.any(weight > 0):
            if pred.dim() == weight.dim() + 1:
                weight = weight.unsqueeze(1)
            return (pred * weight).sum()  # 0, in the graph, as MMDetection's IoU losses
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(-1)
        value = loss({call}*box_inputs(pred, target))
        return self.loss_weight * weight_reduce_loss(value, weight, reduction_override or self.reduction, avg_factor)'''

_CLASSES = {"sigmoid": _SIGMOID, "softmax": _SOFTMAX, "reg": _REG}
_TRAINABLE_INIT = '''
        self.constants = torch.nn.Parameter(torch.tensor(CONSTANTS, dtype=torch.get_default_dtype()))'''


def mmdet_module_source(candidate: Candidate, *, header: ExportHeader | None = None,
                        trainable_constants: bool = False) -> str:
    """Source of a module with the candidate as an MMDetection loss class of its form (see the module docstring)."""
    text = module_text(candidate, "torch", header=header, trainable_constants=trainable_constants)
    name = CLASS_NAMES[candidate.form.name]
    text.docstring[-1:] = ["", f"``{name}`` is the loss as an MMDetection loss class (registered in MODELS when "
                           "mmdet is importable).", '"""']
    text.blocks.append(_REGISTRY)
    text.blocks.append(_CLASSES[candidate.form.name].format(
        name=name, init=_TRAINABLE_INIT if trainable_constants else "",
        call="self.constants, " if trainable_constants else ""))
    return text.render()
