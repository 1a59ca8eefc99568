"""FCOS-style one-stage detector (Tian et al. 2019) in ``flax.linen``: config, head, model, inference.

Following the CSE-Autoloss authors' FCOS (paper sec. 4 and their release), the centerness
branch is replaced by an *IoU-quality* branch: it predicts the IoU between a positive point's
decoded box and its target (trained with BCE toward the detached IoU, see
:func:`detection.fcos_loss.fcos_loss`), sits on the regression tower ("centerness on reg"), and
at inference multiplies the class probability: ``score = sigmoid(cls) * sigmoid(quality)``.
That product is what their release computes (``multiclass_nms(..., score_factors=quality)``
multiplies scores by the factor before the score threshold); no square root is taken.

The regression loss weights each positive by its FCOS centerness target by default
(``FCOSConfig.regression_weighting``); the authors' detached-IoU weight starves badly localized
positives of gradient (see :mod:`detection.fcos_loss` for the measurement).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from detection.backbone import (
    FPN,
    PRECISIONS,
    backbone_of,
    check_backbone_fields,
    compile_initializer,
    norm,
    normalize_images,
    typed_key,
)
from detection.boxes import Detections, batched_nms, clip_boxes, decode_ltrb
from detection.fcos_targets import FeaturePoints, default_size_ranges, feature_points

REGRESSION_WEIGHTINGS = ("centerness", "iou", "uniform")


@dataclasses.dataclass(frozen=True)
class FCOSConfig:
    """Static description of an FCOS detector; hashable, so it can be a jit static argument.

    The defaults are the tiny CPU model (128x128 images, three levels P3-P5, 64-wide FPN and
    head, two convs per head tower). The FCOS paper setting is ``backbone="resnet50",
    fpn_width=256, head_convs=4, strides=(8, 16, 32, 64, 128), size_range_multiple=8`` at
    800-pixel images.

    Why 64 wide and two convs: the per-point classifier is what limits the tiny model (a Faster
    R-CNN on the same backbone classifies through 7x7 RoI features and two 256-wide FC layers).
    1500 steps of AdamW 2e-3 on 2000 shapes training images, focal + GIoU, AP on search_val
    (training images/s on two CPU cores), by width/convs: 32/1 11.8 (269); 32/4 18.8 (194);
    64/1 18.6 (199); 64/2 25.5 (170); 64/4 25.7 (125); 96/2 29.9 (123); 128/1 24.7 (119).
    With AdamW 5e-3 (the FCOS default schedule) 64/2 reaches 29.6, as 96/2 does with 2e-3, at
    1.4x its speed.
    """

    num_classes: int = 80
    image_size: int | tuple[int, int] = 128  # (height, width) or a square side
    backbone: str = "tiny"  # a key of detection.backbone.BACKBONES
    backbone_norm: str = "group"  # "group" (from scratch) or "frozen_bn" (pretrained weights, detection.pretrained)
    frozen_stages: int = 0  # backbone stem and first stages without training; 1 with pretrained weights
    precision: str = "float32"  # compute dtype of the layers (detection.backbone.PRECISIONS); params, losses float32
    fpn_width: int = 64  # also the head width
    head_convs: int = 2  # conv + GroupNorm + ReLU layers per head tower (4 in FCOS)
    strides: tuple[int, ...] = (8, 16, 32)
    size_ranges: tuple[tuple[float, float], ...] | None = None  # None: from size_range_multiple
    # Level boundaries at this multiple of the stride when size_ranges is None. FCOS uses 8 at
    # 800-pixel images; at 128x128 that puts 85% of the positives on P3 and none on P5 (counted
    # on 400 shapes train images: per object 5.6 on P3, 0.5 on P4, 0 on P5). 4 spreads them
    # 3.5 / 2.3 / 0.8 and matches the anchor sizes of our Faster R-CNN on the same levels
    # (16-96 px); 5000 steps of the earlier 32-wide one-conv head, focal + GIoU, final_val: AP 24.2 -> 26.7,
    # AP_S 12.8 -> 15.6.
    size_range_multiple: float = 4.0
    center_sampling_radius: float | None = 1.5  # in strides; None disables center sampling
    regression: str = "relu"  # "relu": relu(s x) * stride (FCOS norm_reg_targets); "exp": exp(s x) * stride
    score_threshold: float = 0.05
    nms_iou_threshold: float = 0.6
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # highest-scoring (point, class) pairs that enter NMS
    prior_prob: float = 0.01  # initial foreground probability of the classifier (focal loss paper)
    # Weight of each positive in the regression loss: "centerness" (FCOS target centerness), "iou"
    # (detached IoU of the prediction), "uniform"; see detection.fcos_loss.
    regression_weighting: str = "centerness"

    def __post_init__(self):
        if isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        object.__setattr__(self, "image_size", tuple(self.image_size))
        object.__setattr__(self, "strides", tuple(self.strides))
        if self.size_ranges is None:
            object.__setattr__(self, "size_ranges", default_size_ranges(self.strides, self.size_range_multiple))
        object.__setattr__(self, "size_ranges", tuple(tuple(map(float, r)) for r in self.size_ranges))
        check_backbone_fields(self)
        if self.regression not in ("relu", "exp"):
            raise ValueError(f"FCOSConfig.regression={self.regression!r}; choose 'relu' or 'exp'")
        if self.regression_weighting not in REGRESSION_WEIGHTINGS:
            raise ValueError(
                f"FCOSConfig.regression_weighting={self.regression_weighting!r}; "
                f"choose one of {', '.join(REGRESSION_WEIGHTINGS)}"
            )
        if len(self.size_ranges) != len(self.strides):
            raise ValueError(
                f"FCOSConfig has {len(self.strides)} strides but {len(self.size_ranges)} size ranges; "
                "give one (low, high) range per level"
            )

    @property
    def points(self) -> FeaturePoints:
        """Return the feature points of every level for this config's image size."""
        return _cached_points(self.image_size, self.strides, self.size_ranges)


@functools.lru_cache(maxsize=32)
def _cached_points(image_size, strides, size_ranges) -> FeaturePoints:
    return feature_points(image_size, strides, size_ranges)


class FCOSOutputs(NamedTuple):
    """Raw detector outputs over all points of all levels."""

    cls_logits: jax.Array  # [B, P, C]
    ltrb: jax.Array  # [B, P, 4] distances in pixels, >= 0
    quality_logits: jax.Array  # [B, P], logit of the predicted IoU


class FCOSHead(nn.Module):
    """Head shared across levels: a classification tower and a regression tower with the quality branch."""

    config: FCOSConfig

    def setup(self):
        cfg = self.config
        dtype = PRECISIONS[cfg.precision]
        conv = functools.partial(nn.Conv, kernel_size=(3, 3), kernel_init=nn.initializers.normal(0.01), dtype=dtype)
        for i in range(cfg.head_convs):
            for tower in ("cls", "reg"):
                setattr(self, f"{tower}_conv{i}", conv(cfg.fpn_width))
                setattr(self, f"{tower}_norm{i}", norm(cfg.fpn_width, dtype=dtype))
        # Bias so that sigmoid(logit) = prior_prob at init (Lin et al. 2017, sec. 4.1).
        prior_bias = -math.log((1.0 - cfg.prior_prob) / cfg.prior_prob)
        self.cls_logits = conv(cfg.num_classes, bias_init=nn.initializers.constant(prior_bias))
        self.ltrb = conv(4)
        self.quality = conv(1)
        self.scales = [self.param(f"scale_{level}", nn.initializers.ones, ()) for level in range(len(cfg.strides))]

    def towers(self, features: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
        """Return the classification and regression tower outputs of every level (the output layers' inputs)."""
        cls_features, reg_features = [], []
        for feature in features:
            cls_feature, reg_feature = feature, feature
            for i in range(self.config.head_convs):
                cls_feature = nn.relu(getattr(self, f"cls_norm{i}")(getattr(self, f"cls_conv{i}")(cls_feature)))
                reg_feature = nn.relu(getattr(self, f"reg_norm{i}")(getattr(self, f"reg_conv{i}")(reg_feature)))
            cls_features.append(cls_feature)
            reg_features.append(reg_feature)
        return cls_features, reg_features

    def __call__(self, features: list[jax.Array]) -> FCOSOutputs:
        cls_features, reg_features = self.towers(features)
        batch = features[0].shape[0]
        flat = lambda x: x.reshape(batch, -1, x.shape[-1]).astype(jnp.float32)  # the loss runs in float32
        return assemble_outputs(
            jnp.concatenate([flat(self.cls_logits(f)) for f in cls_features], axis=1),
            jnp.concatenate([flat(self.ltrb(f)) for f in reg_features], axis=1),
            jnp.concatenate([flat(self.quality(f)) for f in reg_features], axis=1)[..., 0],
            jnp.stack(self.scales),
            self.config,
        )


def assemble_outputs(cls_logits, ltrb_raw, quality_logits, scales, config: FCOSConfig) -> FCOSOutputs:
    """Return the outputs from the output layers' raw values over all points ``[B, P, ...]``.

    ``ltrb_raw`` is scaled by its level's learned scale, then mapped to distances in pixels:
    ``relu(s x) * stride`` (FCOS ``norm_reg_targets``) or ``exp(s x) * stride``.
    """
    points = config.points
    level = jnp.asarray(np.repeat(np.arange(len(config.strides)), [h * w for h, w in points.level_shapes]))
    stride = jnp.asarray(points.strides, jnp.float32)[:, None]
    raw = scales[level][:, None] * ltrb_raw
    ltrb = (nn.relu(raw) if config.regression == "relu" else jnp.exp(jnp.minimum(raw, 20.0))) * stride
    return FCOSOutputs(cls_logits, ltrb, quality_logits)


class FCOS(nn.Module):
    """FCOS detector: ResNet-style backbone, FPN, shared head; images ``[B, H, W, 3]`` in [0, 1]."""

    config: FCOSConfig

    def setup(self):
        cfg = self.config
        self.backbone = backbone_of(cfg)
        self.fpn = FPN(cfg.fpn_width, cfg.strides, dtype=PRECISIONS[cfg.precision])
        self.head = FCOSHead(cfg)

    def features(self, images: jax.Array) -> list[jax.Array]:
        """Return the FPN maps of a batch of images."""
        return self.fpn(self.backbone(normalize_images(images)))

    def __call__(self, images: jax.Array) -> FCOSOutputs:
        return self.head(self.features(images))


def init_params(config: FCOSConfig, key: jax.Array) -> dict:
    """Return freshly initialized detector parameters (a plain pytree) for ``config``."""
    return _compiled_init(config)(typed_key(key))


@functools.lru_cache(maxsize=32)
def _compiled_init(config: FCOSConfig):
    dummy = jnp.zeros((1, *config.image_size, 3), jnp.float32)
    return compile_initializer(lambda key: FCOS(config).init(key, dummy)["params"])


def apply_model(params: dict, images: jax.Array, config: FCOSConfig) -> FCOSOutputs:
    """Return the raw outputs of the detector for a batch of images."""
    return FCOS(config).apply({"params": params}, images)


def apply_features(params: dict, images: jax.Array, config: FCOSConfig) -> list[jax.Array]:
    """Return the FPN maps (the head's input) for a batch of images."""
    return FCOS(config).apply({"params": params}, images, method=FCOS.features)


def apply_towers(head_params: dict, pyramid: list[jax.Array], config: FCOSConfig):
    """Return the head's (classification, regression) tower outputs per level on FPN maps."""
    return FCOSHead(config).apply({"params": head_params}, pyramid, method=FCOSHead.towers)


def apply_head(head_params: dict, pyramid: list[jax.Array], config: FCOSConfig) -> FCOSOutputs:
    """Return the head's raw outputs on FPN maps; ``head_params`` is ``params["head"]``."""
    return FCOSHead(config).apply({"params": head_params}, pyramid)


def decode_outputs(outputs: FCOSOutputs, config: FCOSConfig) -> tuple[jax.Array, jax.Array]:
    """Return decoded boxes ``[B, P, 4]`` (clipped to the image) and scores ``[B, P, C]``."""
    points = jnp.asarray(config.points.points)
    boxes = clip_boxes(decode_ltrb(points[None], outputs.ltrb), *config.image_size)
    scores = jax.nn.sigmoid(outputs.cls_logits) * jax.nn.sigmoid(outputs.quality_logits)[..., None]
    return boxes, scores


@functools.partial(jax.jit, static_argnames=("config",))
def predict(params: dict, images: jax.Array, config: FCOSConfig) -> Detections:
    """Return the top ``max_detections`` detections per image after class-aware NMS (static shapes).

    Scores below ``score_threshold`` are dropped, then at most ``pre_nms_top_k`` (point, class)
    pairs enter NMS at ``nms_iou_threshold``. Output: boxes ``[B, 100, 4]``, scores, classes and
    valid ``[B, 100]``.
    """
    return detections_from_outputs(apply_model(params, images, config), config)


def detections_from_outputs(outputs: FCOSOutputs, config: FCOSConfig) -> Detections:
    """Return the final detections of raw outputs: score threshold, top-k, class-aware NMS (see :func:`predict`)."""
    boxes, scores = decode_outputs(outputs, config)
    batch, num_points, num_classes = scores.shape
    flat_scores = scores.reshape(batch, -1)
    top_k = min(config.pre_nms_top_k, flat_scores.shape[1])
    top_scores, top_index = jax.lax.top_k(flat_scores, top_k)
    top_boxes = jnp.take_along_axis(boxes, (top_index // num_classes)[..., None], axis=1)
    return batched_nms(
        top_boxes,
        top_scores,
        (top_index % num_classes).astype(jnp.int32),
        top_scores > config.score_threshold,
        iou_threshold=config.nms_iou_threshold,
        max_output=config.max_detections,
    )
