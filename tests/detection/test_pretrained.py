"""Pretrained backbone import: torchvision's ResNet forward pass reproduced, bad files refused, frozen parts fixed."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch

from detection.backbone import BACKBONES, ResNet
from detection.fcos import FCOSConfig
from detection.pretrained import (
    BackboneWeightsError,
    backbone_params_from_state_dict,
    load_backbone_params,
    read_state_dict,
    torchvision_names,
)

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


@functools.cache
def torchvision_resnet(name: str):
    """A torchvision ResNet with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def state_of(name: str) -> dict[str, np.ndarray]:
    return {key: value.numpy() for key, value in torchvision_resnet(name).state_dict().items()}


def backbone_template(backbone: str) -> dict:
    module = ResNet(BACKBONES[backbone], norm="frozen_bn")
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))["params"]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_imported_weights_give_torchvision_features_per_stage(name):
    model = torchvision_resnet(name)
    images = np.random.default_rng(0).normal(size=(2, 3, 40, 56)).astype(np.float32)  # odd feature sizes too
    with torch.no_grad():
        x = model.maxpool(model.relu(model.bn1(model.conv1(torch.from_numpy(images)))))
        expected = {}
        for stride, layer in zip((4, 8, 16, 32), (model.layer1, model.layer2, model.layer3, model.layer4), strict=True):
            x = layer(x)
            expected[stride] = x.numpy().transpose(0, 2, 3, 1)  # NCHW -> NHWC
    params = backbone_params_from_state_dict(state_of(name), name, backbone_template(name))
    features = ResNet(BACKBONES[name], norm="frozen_bn").apply({"params": params}, images.transpose(0, 2, 3, 1))
    for stride in (8, 16, 32):
        assert features[stride].shape == expected[stride].shape
        scale = np.abs(expected[stride]).max()
        np.testing.assert_allclose(features[stride], expected[stride], atol=2e-5 * scale, rtol=1e-4)


def test_mapping_covers_every_backbone_parameter():
    for backbone in ("resnet18", "resnet50"):
        leaves = {
            tuple(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(backbone_template(backbone))
        }
        assert set(torchvision_names(BACKBONES[backbone]).values()) == leaves


def test_safetensors_and_npz_files_hold_the_same_tensors(tmp_path):
    state = {"conv1.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn1.bias": np.ones(2, np.float32)}
    np.savez(tmp_path / "w.npz", **state)
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    safetensors.torch.save_file(tensors, tmp_path / "w.safetensors")  # as a user converts torchvision's file
    torch.save(tensors, tmp_path / "w.pth")
    for file in ("w.npz", "w.safetensors", "w.pth"):
        read = read_state_dict(tmp_path / file)
        assert set(read) == set(state)
        for name in state:
            np.testing.assert_array_equal(read[name], state[name])


def test_another_architecture_is_named():
    with pytest.raises(BackboneWeightsError, match="holds ResNet-18 weights; the resnet50 backbone needs ResNet-50"):
        backbone_params_from_state_dict(state_of("resnet18"), "resnet50", backbone_template("resnet50"))


def test_missing_extra_and_misshaped_tensors_are_listed():
    state = state_of("resnet18")
    del state["layer2.1.bn2.running_var"]
    state["layer9.weight"] = np.zeros(3, np.float32)
    state["layer3.0.conv1.weight"] = np.zeros((256, 64, 3, 3), np.float32)
    with pytest.raises(BackboneWeightsError) as raised:
        backbone_params_from_state_dict(state, "resnet18", backbone_template("resnet18"))
    message = str(raised.value)
    assert "missing: layer2.1.bn2.running_var" in message
    assert "unexpected: layer9.weight" in message
    assert "wrong shape: layer3.0.conv1.weight [256, 64, 3, 3] (needs [256, 128, 3, 3])" in message


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(BackboneWeightsError, match="not found"):
        read_state_dict(tmp_path / "none.pth")
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(BackboneWeightsError, match="unknown weights format"):
        read_state_dict(tmp_path / "w.bin")
    for name in ("w.pth", "w.npz", "w.safetensors"):
        (tmp_path / name).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a weights file at all")
        with pytest.raises(BackboneWeightsError, match=f"{name}: unreadable weights file"):
            read_state_dict(tmp_path / name)


def test_weights_replace_the_detectors_backbone(tmp_path):
    config = FCOSConfig(num_classes=3, image_size=32, backbone="resnet18", backbone_norm="frozen_bn")
    torch.save(torchvision_resnet("resnet18").state_dict(), tmp_path / "resnet18.pth")
    params = load_backbone_params(tmp_path / "resnet18.pth", config)
    np.testing.assert_array_equal(
        params["BasicBlock_7"]["Conv_1"]["kernel"],
        state_of("resnet18")["layer4.1.conv2.weight"].transpose(2, 3, 1, 0),
    )
    with pytest.raises(BackboneWeightsError, match="frozen BatchNorm"):
        load_backbone_params(tmp_path / "resnet18.pth", FCOSConfig(backbone="resnet18"))
