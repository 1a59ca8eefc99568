"""Two-stage Faster R-CNN detector (Ren et al. 2015) with FPN (Lin et al. 2017) in ``flax.linen``.

Same backbone, FPN, parameter pytree style and inference contract as :mod:`detection.fcos`:
``init_params(config, key)``, ``apply_model(params, images, config)`` and
``predict(params, images, config) -> Detections`` with ``[B, max_detections]`` slots. The stages:

1. backbone + FPN; the RPN head on every level (:mod:`detection.rpn`);
2. proposals: per-level top-k, per-level NMS, a fixed number kept;
3. multi-level RoIAlign 7x7 (:mod:`detection.roi_align`);
4. the box head: two shared FC layers, a ``C + 1``-way classifier (background last, as in
   mmdetection v2 and the softmax loss form) and class-specific box deltas.

Training (proposal sampling and the loss plug points) is in :mod:`detection.faster_rcnn_loss`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from detection.anchors import decode_deltas
from detection.backbone import FPN, PRECISIONS, backbone_of, compile_initializer, normalize_images, typed_key
from detection.boxes import Detections, batched_nms, clip_boxes
from detection.faster_rcnn_config import PRESETS, RESNET50_FPN, FasterRCNNConfig
from detection.roi_align import multilevel_roi_align
from detection.rpn import RPNHead, RPNOutputs, propose

__all__ = [
    "PRESETS",
    "RESNET50_FPN",
    "FasterRCNN",
    "FasterRCNNConfig",
    "FasterRCNNOutputs",
    "apply_box_head",
    "apply_features",
    "apply_model",
    "apply_roi_features",
    "detections_from_rois",
    "init_params",
    "predict",
]


class BoxHead(nn.Module):
    """Two shared FC layers on flattened RoI features, then class logits ``[N, C+1]`` and deltas ``[N, C, 4]``."""

    num_classes: int
    width: int

    @nn.compact
    def __call__(self, roi_features: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = roi_features.reshape(roi_features.shape[0], -1)
        x = nn.relu(nn.Dense(self.width, name="fc1")(x))
        x = nn.relu(nn.Dense(self.width, name="fc2")(x))
        # mmdetection's Shared2FCBBoxHead init: normal(0.01) classifier, normal(0.001) regressor.
        logits = nn.Dense(self.num_classes + 1, kernel_init=nn.initializers.normal(0.01), name="cls")(x)
        deltas = nn.Dense(4 * self.num_classes, kernel_init=nn.initializers.normal(0.001), name="deltas")(x)
        return logits, deltas.reshape(-1, self.num_classes, 4)


class FasterRCNN(nn.Module):
    """Faster R-CNN with FPN; images ``[B, H, W, 3]`` in [0, 1], RoIs ``[B, R, 4]`` in pixels."""

    config: FasterRCNNConfig

    def setup(self):
        cfg = self.config
        self.backbone = backbone_of(cfg)
        self.fpn = FPN(cfg.fpn_width, cfg.strides, dtype=PRECISIONS[cfg.precision])
        self.rpn = RPNHead(cfg.fpn_width, cfg.num_anchors_per_cell)
        self.box_head = BoxHead(cfg.num_classes, cfg.head_width)

    def features(self, images: jax.Array) -> tuple[list[jax.Array], RPNOutputs]:
        """Return the FPN maps and the RPN outputs of a batch of images."""
        pyramid = self.fpn(self.backbone(normalize_images(images)))
        pyramid = [level.astype(jnp.float32) for level in pyramid]  # the RPN and box head run in float32
        return pyramid, self.rpn(pyramid)

    def roi_features(self, pyramid: list[jax.Array], rois: jax.Array) -> jax.Array:
        """Return multi-level RoIAlign features ``[B, R, S, S, C]`` of RoIs ``[B, R, 4]``."""
        cfg = self.config
        roi_maps = [pyramid[cfg.strides.index(s)] for s in cfg.roi_strides]
        return multilevel_roi_align(
            roi_maps,
            cfg.roi_strides,
            rois,
            output_size=cfg.roi_output_size,
            sampling_ratio=cfg.roi_sampling_ratio,
            canonical_scale=cfg.roi_canonical_scale,
            canonical_level=cfg.roi_canonical_level,
            method=cfg.roi_align_method,
        )

    def classify_rois(self, pyramid: list[jax.Array], rois: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return class logits ``[B, R, C+1]`` and deltas ``[B, R, C, 4]`` of RoIs ``[B, R, 4]``."""
        roi_features = self.roi_features(pyramid, rois)
        batch, num_rois = rois.shape[:2]
        logits, deltas = self.box_head(roi_features.reshape(batch * num_rois, *roi_features.shape[2:]))
        return logits.reshape(batch, num_rois, -1), deltas.reshape(batch, num_rois, self.config.num_classes, 4)

    def __call__(self, images: jax.Array, rois: jax.Array):
        """Return the RPN outputs and the box head's outputs on ``rois`` (used to initialize every layer)."""
        pyramid, rpn_outputs = self.features(images)
        return rpn_outputs, self.classify_rois(pyramid, rois)


class FasterRCNNOutputs(NamedTuple):
    """Inference outputs before the final NMS: proposals and the box head's predictions on them."""

    proposals: jax.Array  # [B, R, 4]
    proposal_valid: jax.Array  # [B, R]
    cls_logits: jax.Array  # [B, R, C+1], background last
    deltas: jax.Array  # [B, R, C, 4], normalized by roi_delta_stds


def init_params(config: FasterRCNNConfig, key: jax.Array) -> dict:
    """Return freshly initialized detector parameters (a plain pytree) for ``config``."""
    return _compiled_init(config)(typed_key(key))


@functools.lru_cache(maxsize=32)
def _compiled_init(config: FasterRCNNConfig):
    images = jnp.zeros((1, *config.image_size, 3), jnp.float32)
    rois = jnp.tile(jnp.array([[[0.0, 0.0, 32.0, 32.0]]]), (1, 2, 1))
    return compile_initializer(lambda key: FasterRCNN(config).init(key, images, rois)["params"])


def apply_features(params: dict, images: jax.Array, config: FasterRCNNConfig) -> tuple[list[jax.Array], RPNOutputs]:
    """Return the FPN maps and RPN outputs for a batch of images."""
    return FasterRCNN(config).apply({"params": params}, images, method=FasterRCNN.features)


def apply_box_head(
    params: dict, pyramid: list[jax.Array], rois: jax.Array, config: FasterRCNNConfig
) -> tuple[jax.Array, jax.Array]:
    """Return the box head's class logits ``[B, R, C+1]`` and deltas ``[B, R, C, 4]`` for RoIs ``[B, R, 4]``."""
    return FasterRCNN(config).apply({"params": params}, pyramid, rois, method=FasterRCNN.classify_rois)


def apply_roi_features(params: dict, pyramid: list[jax.Array], rois: jax.Array, config: FasterRCNNConfig) -> jax.Array:
    """Return the RoIAlign features ``[B, R, S, S, C]`` the box head reads for RoIs ``[B, R, 4]``."""
    return FasterRCNN(config).apply({"params": params}, pyramid, rois, method=FasterRCNN.roi_features)


def apply_model(params: dict, images: jax.Array, config: FasterRCNNConfig) -> FasterRCNNOutputs:
    """Return the inference outputs: proposals and the box head's logits and deltas on them."""
    pyramid, rpn_outputs = apply_features(params, images, config)
    proposals = propose(rpn_outputs, config)
    cls_logits, deltas = apply_box_head(params, pyramid, proposals.boxes, config)
    return FasterRCNNOutputs(proposals.boxes, proposals.valid, cls_logits, deltas)


def detections_from_rois(outputs: FasterRCNNOutputs, config: FasterRCNNConfig) -> Detections:
    """Return the final detections: per-class decoded boxes, softmax scores, threshold and class-aware NMS.

    Every (RoI, class) pair is a candidate with its class-specific box and probability (background
    excluded), as mmdetection's ``multiclass_nms``: scores <= ``score_threshold`` are dropped, the
    ``pre_nms_top_k`` best pairs enter NMS at ``nms_iou_threshold``, ``max_detections`` are kept.
    """
    probabilities = jax.nn.softmax(outputs.cls_logits, axis=-1)[..., :-1]  # [B, R, C]
    scores = jnp.where(outputs.proposal_valid[..., None], probabilities, 0.0)
    boxes = decode_deltas(outputs.proposals[:, :, None, :], outputs.deltas, config.roi_delta_stds)
    boxes = clip_boxes(boxes, *config.image_size)  # [B, R, C, 4]
    batch, num_rois, num_classes = scores.shape
    flat_scores = scores.reshape(batch, -1)
    top_k = min(config.pre_nms_top_k, flat_scores.shape[1])
    top_scores, top_index = jax.lax.top_k(flat_scores, top_k)
    top_boxes = jnp.take_along_axis(boxes.reshape(batch, -1, 4), top_index[..., None], axis=1)
    return batched_nms(
        top_boxes,
        top_scores,
        (top_index % num_classes).astype(jnp.int32),
        top_scores > config.score_threshold,
        iou_threshold=config.nms_iou_threshold,
        max_output=config.max_detections,
    )


@functools.partial(jax.jit, static_argnames=("config",))
def predict(params: dict, images: jax.Array, config: FasterRCNNConfig) -> Detections:
    """Return the top ``max_detections`` detections per image (static shapes), as :func:`detection.fcos.predict`.

    Output: boxes ``[B, 100, 4]`` (pixels, clipped), scores, classes and valid ``[B, 100]``.
    """
    return detections_from_rois(apply_model(params, images, config), config)
