"""Import ImageNet-pretrained ResNet weights in torchvision's layout into a backbone of ``detection.backbone``.

The file is local (nothing is downloaded): a ``.pth`` state dict as torchvision publishes it (read with torch), or
the same tensors, under the same names, in a ``.safetensors`` or ``.npz`` file (read without torch). Names map as::

    conv1.weight                         -> Conv_0/kernel               (stem)
    bn1.{weight,bias,running_mean,running_var} -> FrozenBatchNorm_0/{scale,bias,mean,var}
    layerS.I.convJ.weight                -> {Block}_K/Conv_{J-1}/kernel (K counts blocks over all stages)
    layerS.I.bnJ.*                       -> {Block}_K/FrozenBatchNorm_{J-1}/*
    layerS.I.downsample.{0,1}.*          -> {Block}_K/Conv_last, FrozenBatchNorm_last

Convolution kernels go from torch's ``[out, in, kh, kw]`` to flax's ``[kh, kw, in, out]`` (images are NHWC here,
NCHW in torch). ``fc.*`` (the ImageNet classifier) and ``num_batches_tracked`` are not used.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from detection.backbone import BACKBONES, BackboneSpec, backbone_of

SUFFIXES = (".pth", ".pt", ".safetensors", ".npz")
UNREADABLE = (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile,
              SafetensorError)
UNUSED = re.compile(r"^fc\.|\.num_batches_tracked$")
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_ARCHITECTURES = {  # (block, depths) -> torchvision's name
    ("basic", (2, 2, 2, 2)): "ResNet-18",
    ("basic", (3, 4, 6, 3)): "ResNet-34",
    ("bottleneck", (3, 4, 6, 3)): "ResNet-50",
    ("bottleneck", (3, 4, 23, 3)): "ResNet-101",
    ("bottleneck", (3, 8, 36, 3)): "ResNet-152",
}


class BackboneWeightsError(ValueError):
    """A weights file that cannot be read, or whose tensors do not fit the backbone."""


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Return the tensors of a ``.pth``, ``.safetensors`` or ``.npz`` file as ``{name: float32 array}``."""
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(
            f"backbone weights file {path} not found; download torchvision's ResNet weights "
            "(see the README) and give the file's path"
        )
    if path.suffix not in SUFFIXES:
        raise BackboneWeightsError(f"{path}: unknown weights format {path.suffix!r}; give a {', '.join(SUFFIXES)} file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                tensors = {name: archive[name] for name in archive.files}
        elif path.suffix == ".safetensors":
            tensors = safetensors.numpy.load_file(path)
        else:
            tensors = _read_torch(path)
    except BackboneWeightsError:
        raise
    except UNREADABLE as error:
        raise BackboneWeightsError(f"{path}: unreadable weights file ({error})") from None
    return {name: np.asarray(value, np.float32) for name, value in tensors.items()}


def _read_torch(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise BackboneWeightsError(
            f"{path}: reading a .pth file needs torch (pip install 'cse-autoloss[torch]'); "
            "or convert it once to .safetensors or .npz with the same tensor names"
        ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise BackboneWeightsError(
            f"{path}: not a state dict (a mapping of names to tensors), as torchvision's model.state_dict() is"
        )
    return {name: value.float().numpy() for name, value in state.items()}


def architecture_of(state: dict[str, np.ndarray]) -> tuple[str, tuple[int, ...]]:
    """Return (block type, blocks per stage) of a torchvision ResNet state dict."""
    depths: dict[int, int] = {}
    bottleneck = False
    for name in state:
        match = re.match(r"layer(\d+)\.(\d+)\.(\w+)", name)
        if match:
            stage, index = int(match[1]), int(match[2])
            depths[stage] = max(depths.get(stage, 0), index + 1)
            bottleneck |= match[3] == "conv3"
    if not depths:
        raise BackboneWeightsError(
            "not a torchvision ResNet state dict: no layer1.* tensors (its names begin "
            f"{', '.join(sorted(state)[:5]) or 'nowhere: it is empty'})"
        )
    return ("bottleneck" if bottleneck else "basic"), tuple(depths.get(s, 0) for s in range(1, max(depths) + 1))


def describe_architecture(block: str, depths: tuple[int, ...]) -> str:
    """Return torchvision's name of an architecture (``ResNet-50``), or its block type and depths."""
    return _ARCHITECTURES.get((block, tuple(depths)), f"a ResNet of {block} blocks, depths {list(depths)}")


def torchvision_names(spec: BackboneSpec) -> dict[str, tuple[str, ...]]:
    """Return ``{torchvision tensor name: path in the backbone's flax params}`` of every tensor ``spec`` uses."""
    block_name = {"basic": "BasicBlock", "bottleneck": "Bottleneck"}[spec.block]
    convs = 2 if spec.block == "basic" else 3
    names: dict[str, tuple[str, ...]] = {}

    def add(prefix: str, conv: tuple[str, ...], norm: tuple[str, ...]) -> None:
        names[f"{prefix[0]}.weight"] = (*conv, "kernel")
        for torch_name, flax_name in _BN.items():
            names[f"{prefix[1]}.{torch_name}"] = (*norm, flax_name)

    add(("conv1", "bn1"), ("Conv_0",), ("FrozenBatchNorm_0",))
    block, channels = 0, spec.stem_width
    for stage, (width, depth) in enumerate(zip(spec.widths, spec.depths, strict=True)):
        out_width = width * (1 if spec.block == "basic" else 4)
        for index in range(depth):
            module, prefix = f"{block_name}_{block}", f"layer{stage + 1}.{index}"
            for j in range(convs):
                add(
                    (f"{prefix}.conv{j + 1}", f"{prefix}.bn{j + 1}"),
                    (module, f"Conv_{j}"),
                    (module, f"FrozenBatchNorm_{j}"),
                )
            if index == 0 and (stage > 0 or channels != out_width):
                add(
                    (f"{prefix}.downsample.0", f"{prefix}.downsample.1"),
                    (module, f"Conv_{convs}"),
                    (module, f"FrozenBatchNorm_{convs}"),
                )
            block, channels = block + 1, out_width
    return names


def backbone_params_from_state_dict(state: dict[str, np.ndarray], backbone: str, template: dict) -> dict:
    """Return the flax params of ``backbone`` (a key of BACKBONES) from a torchvision state dict.

    ``template`` is the backbone's initialized params (their shapes are checked). Raises BackboneWeightsError for
    another architecture, and for missing, extra or mis-shaped tensors, listing their names.
    """
    spec = BACKBONES[backbone]
    found = architecture_of(state)
    wanted = (spec.block, spec.depths)
    if found != wanted:
        raise BackboneWeightsError(
            f"the file holds {describe_architecture(*found)} weights; the {backbone} backbone needs "
            f"{describe_architecture(*wanted)} weights (give that file, or the preset that matches it)"
        )
    names = torchvision_names(spec)
    missing = sorted(set(names) - set(state))
    extra = sorted(name for name in set(state) - set(names) if not UNUSED.search(name))
    leaves = {tuple(str(k.key) for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(template)}
    params: dict = {}
    misshaped = []
    for name, path in names.items():
        if name not in state:
            continue
        value = state[name].transpose(2, 3, 1, 0) if path[-1] == "kernel" else state[name]
        expected = tuple(np.shape(leaves[path]))
        if value.shape != expected:
            misshaped.append(f"{name} {list(state[name].shape)} (needs {_torch_shape(expected)})")
            continue
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    problems = [
        f"{label}: {', '.join(items)}"
        for label, items in (("missing", missing), ("unexpected", extra), ("wrong shape", misshaped))
        if items
    ]
    if problems:
        raise BackboneWeightsError(f"the weights do not fit the {backbone} backbone; " + "; ".join(problems))
    return params


def _torch_shape(flax_shape: tuple[int, ...]) -> list[int]:
    return [flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1]] if len(flax_shape) == 4 else list(flax_shape)


def backbone_template(config) -> dict:
    """Return the shapes and dtypes of the backbone params of a detector config (nothing is computed)."""
    module = backbone_of(config)
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))["params"]


def load_backbone_params(path: str | Path, config) -> dict:
    """Return the backbone params of a detector config read from the pretrained weights file ``path``.

    ``config``'s backbone must have frozen BatchNorm (``backbone_norm="frozen_bn"``). Raises BackboneWeightsError
    naming the file and what does not fit.
    """
    if config.backbone_norm != "frozen_bn":
        raise BackboneWeightsError(
            "pretrained weights go into a backbone with frozen BatchNorm; this config has "
            f"backbone_norm={config.backbone_norm!r} (set 'frozen_bn')"
        )
    state = read_state_dict(path)
    try:
        return backbone_params_from_state_dict(state, config.backbone, backbone_template(config))
    except BackboneWeightsError as error:
        raise BackboneWeightsError(f"{path}: {error}") from None


# The backbone settings of a detector fine-tuned from pretrained weights (detectron2, mmdetection).
PRETRAINED_BACKBONE = {"backbone_norm": "frozen_bn", "frozen_stages": 1}


def pretrained_params(config, path: str | Path, seed: int) -> dict:
    """Return initial params of ``config``'s detector: the backbone from the weights file, the rest from ``seed``."""
    from detection.detectors import detector_of

    backbone = load_backbone_params(path, config)
    return {**detector_of(config).init_params(config, jax.random.key(seed)), "backbone": backbone}
