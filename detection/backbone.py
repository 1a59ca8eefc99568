"""ResNet-style backbone and FPN neck in ``flax.linen``.

Why linen for all of ``detection/``: parameters are plain, immutable pytrees and a model is a
pure ``apply(params, images)``. The train step is then one jitted function over pytrees, and
many detectors' parameters can be stacked along a leading axis and ``vmap``-ped across loss
candidates for the batched simulation. NNX's mutable module objects would have to be split
into graph and state around every such transform; linen needs no such bookkeeping.

Why GroupNorm: it is batch-size independent (the simulation trains on a handful of images,
data-parallel shards get a few each) and keeps no mutable running statistics, so the forward
pass and the train step stay pure functions of ``(params, batch)``. FCOS itself uses GroupNorm
in its head (Tian et al. 2019, sec. 4).

Why frozen BatchNorm for pretrained weights: an ImageNet-pretrained ResNet (torchvision's layout, imported by
:mod:`detection.pretrained`) was trained with BatchNorm; detectors fine-tune it with the statistics and the affine
parameters fixed (detectron2's ``FrozenBatchNorm2d``), which makes each norm a per-channel affine map, again a
pure function of the parameters. The stem and the first ``frozen_stages`` stages are frozen too (mmdetection's
``frozen_stages=1``). That variant also pads as torchvision does (``k // 2`` on every side, where SAME would pad
a stride-2 layer's even input only at the end), so the imported weights see the pixels they were trained on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Architecture of a ResNet-style backbone: block type, per-stage widths and depths, stem."""

    block: str  # "basic" (ResNet-18/34) or "bottleneck" (ResNet-50+, output width 4x)
    widths: tuple[int, ...]  # stages at strides 4, 8, 16, 32
    depths: tuple[int, ...]
    stem_width: int
    stem_kernel: int  # 7 in ResNet; 3 is much cheaper at small image sizes


BACKBONES: dict[str, BackboneSpec] = {
    # Trains at roughly 100+ images/s at 128x128 on two CPU cores (see FCOSConfig).
    "tiny": BackboneSpec(
        "basic", widths=(16, 32, 64, 128), depths=(1, 1, 1, 1), stem_width=16, stem_kernel=3
    ),
    "resnet18": BackboneSpec(
        "basic", widths=(64, 128, 256, 512), depths=(2, 2, 2, 2), stem_width=64, stem_kernel=7
    ),
    "resnet50": BackboneSpec(
        "bottleneck", widths=(64, 128, 256, 512), depths=(3, 4, 6, 3), stem_width=64, stem_kernel=7
    ),
}


NORMS = ("group", "frozen_bn")  # GroupNorm from scratch; frozen BatchNorm for pretrained weights
# Compute dtypes of a detector's layers (its config's ``precision``); parameters stay float32, losses run in float32.
PRECISIONS = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def num_groups(channels: int, max_groups: int = 32) -> int:
    """Return the GroupNorm group count: 32 as in Wu & He (2018) when it divides, else fewer."""
    groups = min(max_groups, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return groups


def norm(channels: int, name: str | None = None, dtype=jnp.float32) -> nn.GroupNorm:
    """Return a GroupNorm layer sized for ``channels``, computing in ``dtype`` (its statistics in float32)."""
    return nn.GroupNorm(num_groups=num_groups(channels), name=name, dtype=dtype)


class FrozenBatchNorm(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (detectron2's FrozenBatchNorm2d): a per-channel affine map.

    The four arrays are parameters (so a model stays ``apply(params, images)``), behind ``stop_gradient``.
    """

    features: int
    eps: float = 1e-5  # torchvision's BatchNorm2d

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.features,)
        scale, bias, mean, var = (jax.lax.stop_gradient(self.param(name, init, shape)) for name, init in (
            ("scale", nn.initializers.ones), ("bias", nn.initializers.zeros),
            ("mean", nn.initializers.zeros), ("var", nn.initializers.ones)))
        factor = scale * jax.lax.rsqrt(var + self.eps)
        return x * factor.astype(x.dtype) + (bias - mean * factor).astype(x.dtype)


def _layers(norm_kind: str, dtype):
    """Return ``(norm(channels), conv(width, kernel, stride))`` factories of a backbone with ``norm_kind``."""

    def conv(width: int, kernel: int, stride: int = 1) -> nn.Conv:
        padding = [(kernel // 2, kernel // 2)] * 2 if norm_kind == "frozen_bn" else "SAME"
        return nn.Conv(width, (kernel, kernel), stride, padding=padding, use_bias=False, dtype=dtype)

    def make_norm(channels: int) -> nn.Module:
        return FrozenBatchNorm(channels) if norm_kind == "frozen_bn" else norm(channels, dtype=dtype)

    return make_norm, conv


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016, fig. 5 left)."""

    width: int
    stride: int = 1
    norm: str = "group"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        make_norm, conv = _layers(self.norm, self.dtype)
        y = nn.relu(make_norm(self.width)(conv(self.width, 3, self.stride)(x)))
        y = make_norm(self.width)(conv(self.width, 3)(y))
        if x.shape[-1] != self.width or self.stride != 1:
            x = make_norm(self.width)(conv(self.width, 1, self.stride)(x))
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 bottleneck with 4x expansion (He et al. 2016, fig. 5 right; stride on the 3x3 as torchvision)."""

    width: int
    stride: int = 1
    norm: str = "group"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        make_norm, conv = _layers(self.norm, self.dtype)
        out_width = 4 * self.width
        y = nn.relu(make_norm(self.width)(conv(self.width, 1)(x)))
        y = nn.relu(make_norm(self.width)(conv(self.width, 3, self.stride)(y)))
        y = make_norm(out_width)(conv(out_width, 1)(y))
        if x.shape[-1] != out_width or self.stride != 1:
            x = make_norm(out_width)(conv(out_width, 1, self.stride)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet-style backbone returning ``{stride: feature map}`` for strides 8, 16 and 32.

    ``norm`` is "group" (GroupNorm, SAME padding) or "frozen_bn" (torchvision's layout, see the module docstring);
    the stem and the first ``frozen_stages`` stages get no gradient (0: all train).
    """

    spec: BackboneSpec
    norm: str = "group"
    frozen_stages: int = 0
    dtype: Any = jnp.float32  # of the computation; parameters are float32

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[int, jax.Array]:
        spec = self.spec
        block = {"basic": BasicBlock, "bottleneck": Bottleneck}[spec.block]
        make_norm, conv = _layers(self.norm, self.dtype)
        x = nn.relu(make_norm(spec.stem_width)(conv(spec.stem_width, spec.stem_kernel, 2)(x)))
        pool_padding = ((1, 1), (1, 1)) if self.norm == "frozen_bn" else "SAME"
        x = nn.max_pool(x, (3, 3), (2, 2), padding=pool_padding)
        features = {}
        for stage, (width, depth) in enumerate(zip(spec.widths, spec.depths, strict=True)):
            for index in range(depth):
                x = block(width, stride=2 if stage > 0 and index == 0 else 1, norm=self.norm, dtype=self.dtype)(x)
            if stage < self.frozen_stages:  # also stops the stem's gradient
                x = jax.lax.stop_gradient(x)
            features[4 * 2**stage] = x
        return {stride: features[stride] for stride in (8, 16, 32)}


def backbone_of(config) -> ResNet:
    """Return the backbone module of a detector config (fields ``backbone``, ``backbone_norm``, ``frozen_stages``,
    ``precision``)."""
    return ResNet(BACKBONES[config.backbone], norm=config.backbone_norm, frozen_stages=config.frozen_stages,
                  dtype=PRECISIONS[config.precision])


def check_backbone_fields(config) -> None:
    """Raise ValueError naming the field when a detector config's backbone settings are not allowed."""
    name = type(config).__name__
    if config.backbone not in BACKBONES:
        raise ValueError(f"{name}.backbone={config.backbone!r} is unknown; choose one of {sorted(BACKBONES)}")
    if config.backbone_norm not in NORMS:
        raise ValueError(f"{name}.backbone_norm={config.backbone_norm!r}; choose one of {', '.join(NORMS)}")
    if config.precision not in PRECISIONS:
        raise ValueError(f"{name}.precision={config.precision!r}; choose one of {', '.join(PRECISIONS)}")
    stages = len(BACKBONES[config.backbone].depths)
    if not 0 <= config.frozen_stages <= stages:
        raise ValueError(f"{name}.frozen_stages={config.frozen_stages}; choose 0 to {stages} (1: the stem and the "
                         "first stage, as detectron2 and mmdetection fine-tune a pretrained ResNet)")


def frozen_mask(params: dict, config) -> dict:
    """Return a pytree of bools over a detector's ``params``: True where training must leave the leaf unchanged.

    Those are the frozen BatchNorm arrays and the stem and first ``config.frozen_stages`` stages' parameters. Their
    gradient is zero already (``stop_gradient``); the mask also keeps weight decay off them.
    """
    spec = BACKBONES[config.backbone]
    frozen_blocks = sum(spec.depths[: config.frozen_stages])

    def frozen(path) -> bool:
        names = [str(getattr(entry, "key", entry)) for entry in path]
        if names[0] != "backbone":
            return False
        if any(name.startswith("FrozenBatchNorm") for name in names):
            return True
        module = names[1]
        if module.startswith(("BasicBlock_", "Bottleneck_")):
            return int(module.rsplit("_", 1)[1]) < frozen_blocks
        return config.frozen_stages > 0  # the stem's conv and norm

    return jax.tree_util.tree_map_with_path(lambda path, _: frozen(path), params)


class FPN(nn.Module):
    """Feature pyramid (Lin et al. 2017) over backbone features, one map per requested stride.

    Strides up to 32 take a lateral 1x1 conv plus the upsampled coarser level, then a 3x3 conv;
    coarser strides (P6, P7 in FCOS) come from stride-2 3x3 convs on the previous output, as in
    the FCOS release (extra convs on P5 output).
    """

    width: int
    strides: tuple[int, ...]
    dtype: Any = jnp.float32  # of the computation; parameters are float32

    @nn.compact
    def __call__(self, features: dict[int, jax.Array]) -> list[jax.Array]:
        conv = functools.partial(nn.Conv, dtype=self.dtype)
        lateral_strides = sorted(s for s in features if s >= min(self.strides))
        laterals = {s: conv(self.width, (1, 1), name=f"lateral_{s}")(features[s]) for s in lateral_strides}
        top_down = {}
        previous = None
        for s in reversed(lateral_strides):
            merged = laterals[s]
            if previous is not None:
                merged = merged + jax.image.resize(previous, merged.shape, "nearest")
            top_down[s] = previous = merged
        outputs = {s: conv(self.width, (3, 3), name=f"output_{s}")(top_down[s]) for s in lateral_strides}
        last = outputs[max(lateral_strides)]
        for s in sorted(s for s in self.strides if s > max(lateral_strides)):
            last = conv(self.width, (3, 3), 2, name=f"extra_{s}")(nn.relu(last) if s > 64 else last)
            outputs[s] = last
        return [outputs[s] for s in self.strides]


def feature_size(size: int, stride: int) -> int:
    """Return the feature map side for an image side under ``log2(stride)`` SAME stride-2 steps."""
    for _ in range(int(stride).bit_length() - 1):
        size = -(-size // 2)
    return size


def normalize_images(images: jax.Array) -> jax.Array:
    """Return images standardized by the ImageNet channel mean and std.

    uint8 pixels (what the input pipeline delivers, a quarter of float32's transfer) are divided by 255
    here, on the device; float images are taken to be in [0, 1] already.
    """
    if jnp.issubdtype(images.dtype, jnp.integer):
        images = images.astype(jnp.float32) / 255.0
    mean = jnp.array([0.485, 0.456, 0.406], images.dtype)
    std = jnp.array([0.229, 0.224, 0.225], images.dtype)
    return (images - mean) / std


def compile_initializer(init: Callable[[jax.Array], dict]) -> Callable[[jax.Array], dict]:
    """Return ``init(key) -> params`` compiled once, without backend optimization.

    Initialization runs once, so optimizing the dozens of per-parameter PRNG calls costs several
    times longer than running them. The compiled function takes a typed key (see ``typed_key``).
    """
    lowered = jax.jit(init).lower(jax.ShapeDtypeStruct((), jax.random.key(0).dtype))
    return lowered.compile(compiler_options={"xla_backend_optimization_level": 0})


def typed_key(key: jax.Array) -> jax.Array:
    """``key`` as a typed PRNG key (a legacy uint32 key from ``jax.random.PRNGKey`` is wrapped)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)
