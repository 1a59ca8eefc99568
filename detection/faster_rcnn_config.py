"""Static configuration of the two-stage Faster R-CNN detector: the tiny CPU default and a ResNet-50 preset.

Training-time numbers are mmdetection's ``faster_rcnn_r50_fpn_1x`` defaults (the code base of the
CSE-Autoloss release) unless a field says otherwise; the tiny default shrinks the counts and sizes
so that a model trains at a useful speed on a few CPU cores at 128x128.

Levels: the backbone exposes strides 8-32 (``detection.backbone.ResNet``), so the pyramid starts
at P3 rather than Faster R-CNN's P2; the ResNet-50 preset adds P6 and P7 for the RPN and keeps
the anchor sizes of the FPN paper (32-512, one size per level, three ratios).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from detection.anchors import pyramid_anchors
from detection.backbone import check_backbone_fields


@dataclasses.dataclass(frozen=True)
class FasterRCNNConfig:
    """Static description of a Faster R-CNN detector; hashable, so it can be a jit static argument."""

    num_classes: int = 80
    image_size: int | tuple[int, int] = 128  # (height, width) or a square side
    backbone: str = "tiny"  # a key of detection.backbone.BACKBONES
    backbone_norm: str = "group"  # "group" (from scratch) or "frozen_bn" (pretrained weights, detection.pretrained)
    frozen_stages: int = 0  # backbone stem and first stages without training; 1 with pretrained weights
    precision: str = "float32"  # compute dtype of the layers (detection.backbone.PRECISIONS); params, losses float32
    fpn_width: int = 32  # FPN channels, also the RPN conv width
    strides: tuple[int, ...] = (8, 16, 32)  # FPN levels; the RPN runs on all of them
    roi_strides: tuple[int, ...] = (8, 16, 32)  # levels RoIAlign samples from (P2-P5 in Faster R-CNN)
    # Anchor sizes (sqrt of area, pixels) per level, the same count on every level; ratios are h / w.
    anchor_sizes: tuple[tuple[float, ...], ...] = ((16.0, 24.0), (32.0, 48.0), (64.0, 96.0))
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # RPN: proposals are the top-k anchors of each level by objectness, NMS per level, top-k kept.
    rpn_pre_nms_top_k: int = 256  # per level (mmdetection: 2000 train, 1000 test)
    rpn_post_nms_top_k: int = 128  # proposals per image, fixed (mmdetection: 1000)
    rpn_nms_iou: float = 0.7
    rpn_positive_iou: float = 0.7  # anchor assignment (MaxIoUAssigner of the RPN)
    rpn_negative_iou: float = 0.3
    rpn_min_positive_iou: float = 0.3  # a gt's best anchors are positive down to this IoU
    rpn_samples_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    # RoI head training: proposals plus ground truth, sampled at a fixed count per image.
    rois_per_image: int = 64  # mmdetection: 512
    roi_positive_fraction: float = 0.25
    roi_foreground_iou: float = 0.5  # positive at IoU >= this with some ground truth
    roi_background_iou: float = 0.5  # negative at IoU < this (and >= 0)
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2  # bilinear samples per bin side
    roi_align_method: str = "matmul"  # a key of detection.roi_align.ROI_ALIGN_METHODS: "matmul" (CPU), "gather"
    # Canonical FPN level rule k = floor(k0 + log2(sqrt(wh) / s0)) (Lin et al. 2017, eq. 1);
    # s0 = 224 in the paper. The tiny default uses 56 so that 8-110 px objects at 128 px spread
    # over P3-P5 instead of all landing on P3.
    roi_canonical_scale: float = 56.0
    roi_canonical_level: int = 4
    head_width: int = 256  # the two shared FC layers (1024 in Faster R-CNN FPN)
    rpn_delta_stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    roi_delta_stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    # Inference.
    score_threshold: float = 0.05
    nms_iou_threshold: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000  # highest-scoring (RoI, class) pairs that enter the final NMS

    def __post_init__(self):
        if isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        for name in ("image_size", "strides", "roi_strides", "anchor_ratios", "rpn_delta_stds", "roi_delta_stds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "anchor_sizes", tuple(tuple(map(float, s)) for s in self.anchor_sizes))
        check_backbone_fields(self)
        if len(self.anchor_sizes) != len(self.strides):
            raise ValueError(
                f"FasterRCNNConfig has {len(self.strides)} strides but {len(self.anchor_sizes)} anchor size "
                "tuples; give one tuple of sizes per level"
            )
        if len({len(s) for s in self.anchor_sizes}) != 1:
            raise ValueError(
                f"FasterRCNNConfig.anchor_sizes={self.anchor_sizes} must have the same number of sizes on every "
                "level (the RPN head is shared across levels)"
            )
        consecutive = all(b == 2 * a for a, b in zip(self.roi_strides, self.roi_strides[1:], strict=False))
        if not set(self.roi_strides) <= set(self.strides) or not consecutive:
            raise ValueError(
                f"FasterRCNNConfig.roi_strides={self.roi_strides} must be consecutive levels (each stride twice "
                f"the previous) out of strides={self.strides}"
            )
        if self.roi_align_method not in ("matmul", "gather"):
            raise ValueError(
                f"FasterRCNNConfig.roi_align_method={self.roi_align_method!r}; choose 'matmul' or 'gather'"
            )
        if not 0.0 < self.roi_positive_fraction <= 1.0 or not 0.0 < self.rpn_positive_fraction <= 1.0:
            raise ValueError("positive fractions must lie in (0, 1]")

    @property
    def num_anchors_per_cell(self) -> int:
        """Return the number of anchors at each cell of each level."""
        return len(self.anchor_sizes[0]) * len(self.anchor_ratios)

    @property
    def anchors(self) -> tuple[np.ndarray, tuple[int, ...]]:
        """Return all anchors ``[N, 4]`` for this config's image size and the count per level."""
        return _cached_anchors(self.image_size, self.strides, self.anchor_sizes, self.anchor_ratios)


@functools.lru_cache(maxsize=32)
def _cached_anchors(image_size, strides, sizes, ratios):
    return pyramid_anchors(image_size, strides, sizes, ratios)


# Faster R-CNN R50-FPN at GPU scale: P3-P7 for the RPN with the FPN paper's anchor sizes, RoIAlign
# on P3-P5 with the paper's canonical scale, mmdetection's train counts and a 1024-wide head.
RESNET50_FPN = FasterRCNNConfig(
    num_classes=80,
    image_size=(800, 1344),
    backbone="resnet50",
    fpn_width=256,
    strides=(8, 16, 32, 64, 128),
    roi_strides=(8, 16, 32),
    anchor_sizes=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)),
    rpn_pre_nms_top_k=1000,
    rpn_post_nms_top_k=1000,
    rois_per_image=512,
    roi_canonical_scale=224.0,
    roi_align_method="gather",
    head_width=1024,
)

PRESETS: dict[str, FasterRCNNConfig] = {"tiny": FasterRCNNConfig(), "resnet50": RESNET50_FPN}
