"""What a simulation trains: a detector's prediction layers on cached features, or the whole model.

``train="heads"`` (default): everything below the layers that make predictions is frozen at the
warm start and run *once* on the verification images; a simulation step then costs a few matrix
products per candidate. Per detector:

- ``fcos``: the classification tower's and the regression tower's outputs are cached as 3x3
  patches (im2col), so the output convolutions (class logits, ltrb, IoU quality) and the level
  scales are linear maps, trained per candidate, with the FCOS loss of
  :func:`detection.fcos_loss.fcos_loss`; detections come from the same outputs.
- ``faster-rcnn``: RoIs are sampled once (seeded, as in training) from the frozen RPN's proposals
  plus the ground truth, and their RoIAlign features cached, as are those of the proposals for
  detection; the box head (two FC layers, classifier, deltas) is trained per candidate with
  :func:`detection.faster_rcnn_loss.roi_head_loss`.

``train="all"``: every parameter, from the images (as in the proxy task; slow on a CPU).

Candidates differ only in parameters, so the model part of a task is a pure function of
``(trainable, frozen)`` that a simulation vmaps over stacked parameters; convolutions appear
only in ``all`` (on a CPU a vmapped convolution is a slow grouped one, a vmapped matmul is not).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from detection import faster_rcnn, fcos
from detection.boxes import Detections
from detection.faster_rcnn_loss import default_reg_weight, faster_rcnn_loss, roi_head_loss, sample_rois
from detection.fcos_loss import fcos_loss, fcos_targets
from detection.rpn import propose

TRAIN_CHOICES = ("heads", "all")


@dataclasses.dataclass(frozen=True)
class HeadTask:
    """A detector reduced to what the simulation trains, with the arrays it reads."""

    trainable: Any  # initial parameters the candidate's loss trains (from the warm start)
    frozen: Any  # cached arrays: features or images, the verification targets
    forward: Callable[[Any, Any], Any]  # (trainable, frozen) -> model outputs (vmappable)
    loss: Callable[..., tuple[jax.Array, dict]]  # (outputs, frozen, key, cls_fn, reg_fn) -> (total, metrics)
    detect: Callable[[Any, Any], Detections]  # (outputs, frozen) -> detections on the verification images


def im2col3x3(feature: jax.Array) -> jax.Array:
    """Return the 3x3 'same' patches ``[B, H, W, 9 C]`` of ``[B, H, W, C]``, ordered (dy, dx, c) like a conv kernel."""
    height, width = feature.shape[1:3]
    padded = jnp.pad(feature, ((0, 0), (1, 1), (1, 1), (0, 0)))
    shifted = [padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)]
    return jnp.concatenate(shifted, axis=-1)


def _linear(layer: dict) -> dict:
    """A 3x3 conv's parameters as a linear map on :func:`im2col3x3` patches."""
    kernel = layer["kernel"]
    return {"kernel": kernel.reshape(-1, kernel.shape[-1]), "bias": layer["bias"]}


def _fcos_forward(trainable, frozen, *, config):
    apply = lambda patches, layer: patches @ layer["kernel"] + layer["bias"]
    return fcos.assemble_outputs(
        apply(frozen["cls_patches"], trainable["cls_logits"]),
        apply(frozen["reg_patches"], trainable["ltrb"]),
        apply(frozen["reg_patches"], trainable["quality"])[..., 0],
        trainable["scales"],
        config,
    )


def _fcos_loss(outputs, frozen, key, cls_fn, reg_fn, *, config):
    del key  # FCOS has no stochastic part
    return fcos_loss(outputs, frozen["batch"], config, cls_loss=cls_fn, reg_loss=reg_fn, targets=frozen.get("targets"))


def _fcos_detect(outputs, frozen, *, config):
    return fcos.detections_from_outputs(outputs, config)


@functools.partial(jax.jit, static_argnames=("config",))
def _fcos_patches(params, images, config):
    cls_levels, reg_levels = fcos.apply_towers(params["head"], fcos.apply_features(params, images, config), config)
    flat = lambda levels: jnp.concatenate(
        [im2col3x3(x).reshape(x.shape[0], -1, 9 * x.shape[-1]) for x in levels], axis=1
    )
    return flat(cls_levels), flat(reg_levels)


def _rcnn_head_outputs(box_head, features, config):
    """Box head outputs on cached RoI features ``[B, R, S, S, C]``: logits ``[B, R, C+1]``, deltas ``[B, R, C, 4]``."""
    batch, rois = features.shape[:2]
    logits, deltas = faster_rcnn.BoxHead(config.num_classes, config.head_width).apply(
        {"params": box_head}, features.reshape(batch * rois, *features.shape[2:])
    )
    return logits.reshape(batch, rois, -1), deltas.reshape(batch, rois, config.num_classes, 4)


def _rcnn_forward(box_head, frozen, *, config):
    return (_rcnn_head_outputs(box_head, frozen["sample_features"], config),
            _rcnn_head_outputs(box_head, frozen["proposal_features"], config))


def _rcnn_loss(outputs, frozen, key, cls_fn, reg_fn, *, config, reg_weight):
    del key  # the RoIs were sampled once, when the features were cached
    (cls_logits, deltas), _ = outputs
    loss_cls, loss_reg, metrics = roi_head_loss(cls_logits, deltas, frozen["targets"], config,
                                                cls_loss=cls_fn, reg_loss=reg_fn)
    total = loss_cls + reg_weight * loss_reg
    return total, {"loss": total, "loss_cls": loss_cls, "loss_reg": loss_reg, **metrics}


def _rcnn_detect(outputs, frozen, *, config):
    _, (cls_logits, deltas) = outputs
    proposals = frozen["proposals"]
    return faster_rcnn.detections_from_rois(
        faster_rcnn.FasterRCNNOutputs(proposals.boxes, proposals.valid, cls_logits, deltas), config
    )


@functools.partial(jax.jit, static_argnames=("config",))
def _rcnn_features(params, batch, key, config):
    pyramid, rpn_outputs = faster_rcnn.apply_features(params, batch["images"], config)
    proposals = propose(rpn_outputs, config)
    targets = sample_rois(proposals, batch, key, config)
    return (targets, proposals, faster_rcnn.apply_roi_features(params, pyramid, targets.rois, config),
            faster_rcnn.apply_roi_features(params, pyramid, proposals.boxes, config))


def _model_forward(params, frozen, *, apply_model, config):
    return apply_model(params, frozen["batch"]["images"], config)


def _rcnn_all_loss(params, frozen, key, cls_fn, reg_fn, *, config, reg_weight):
    return faster_rcnn_loss(params, frozen["batch"], key, config, cls_loss=cls_fn, reg_loss=reg_fn,
                            reg_weight=reg_weight)


OUTPUT_LAYERS = {  # detector -> (head module, {branch: its output layer})
    "fcos": ("head", {"cls": "cls_logits", "reg": "ltrb"}),
    "faster-rcnn": ("box_head", {"cls": "cls", "reg": "deltas"}),
}


def with_fresh_output_layer(detector: str, branch: str, params: dict, fresh: dict) -> dict:
    """``params`` with the branch's output layer taken from ``fresh`` (a newly initialized model)."""
    head, layers = OUTPUT_LAYERS[detector]
    return {**params, head: {**params[head], layers[branch]: fresh[head][layers[branch]]}}


def head_task(detector: str, config, params: Any, batch: dict, key: jax.Array, *, train: str = "heads") -> HeadTask:
    """The :class:`HeadTask` of ``detector`` warm-started at ``params`` on the verification ``batch``.

    ``key`` seeds the Faster R-CNN RoI sample. The regression branch's default loss is GIoU
    (Faster R-CNN's regression weight 10 on decoded boxes).
    """
    if train not in TRAIN_CHOICES:
        raise ValueError(f"train={train!r}; choose one of {', '.join(TRAIN_CHOICES)}")
    batch = {name: jnp.asarray(value) for name, value in batch.items()}
    targets_only = {k: v for k, v in batch.items() if k != "images"}
    if detector == "fcos":
        detect = functools.partial(_fcos_detect, config=config)
        if train == "all":
            return HeadTask(params, {"batch": batch},
                            functools.partial(_model_forward, apply_model=fcos.apply_model, config=config),
                            functools.partial(_fcos_loss, config=config), detect)
        cls_patches, reg_patches = _fcos_patches(params, batch["images"], config)
        head = params["head"]
        trainable = {
            "cls_logits": _linear(head["cls_logits"]),
            "ltrb": _linear(head["ltrb"]),
            "quality": _linear(head["quality"]),
            "scales": jnp.stack([head[f"scale_{level}"] for level in range(len(config.strides))]),
        }
        frozen = {"cls_patches": cls_patches, "reg_patches": reg_patches, "batch": targets_only,
                  "targets": jax.jit(fcos_targets, static_argnames="config")(targets_only, config)}
        return HeadTask(trainable, frozen, functools.partial(_fcos_forward, config=config),
                        functools.partial(_fcos_loss, config=config), detect)
    if detector == "faster-rcnn":
        weight = default_reg_weight("giou")
        if train == "all":
            loss = functools.partial(_rcnn_all_loss, config=config, reg_weight=weight)
            return HeadTask(params, {"batch": batch}, lambda p, frozen: p, loss,
                            lambda p, frozen: faster_rcnn.predict(p, frozen["batch"]["images"], config))
        targets, proposals, sample_features, proposal_features = _rcnn_features(params, batch, key, config)
        frozen = {"targets": targets, "proposals": proposals, "sample_features": sample_features,
                  "proposal_features": proposal_features}
        return HeadTask(params["box_head"], frozen, functools.partial(_rcnn_forward, config=config),
                        functools.partial(_rcnn_loss, config=config, reg_weight=weight),
                        functools.partial(_rcnn_detect, config=config))
    raise ValueError(f"unknown detector {detector!r}; choose fcos or faster-rcnn")
