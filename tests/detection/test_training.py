"""Training loop: smoke training, divergence, checkpoint resume, schedules and data parallelism."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from synthetic_batches import synthetic_batch

from detection import training
from detection.backbone import frozen_mask
from detection.checkpoints import METADATA_FILE, STATE_FILE
from detection.datasets import load_coco
from detection.detectors import detector_of
from detection.fcos import FCOSConfig, apply_model, init_params
from detection.fcos_loss import fcos_loss_from_params
from detection.geometry import Geometry
from detection.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from detection.pipeline import training_stream
from detection.training import TrainingDiverged, train

CONFIG = FCOSConfig(num_classes=3, image_size=64)
OPTIMIZER = OptimizerConfig(learning_rate=1e-3, warmup_steps=4)
STEPS = 20
REPO_ROOT = Path(__file__).resolve().parents[2]


def pipeline_batch(batch):
    """A synthetic batch as the input pipeline delivers it: uint8 pixels and per-image scales."""
    images = np.round(batch["images"] * 255).astype(np.uint8)
    return {**batch, "images": images, "scales": np.ones(len(images), np.float32)}


# One compiled step serves every test of this module: the same config, schedule and batch structure.
BATCHES = [pipeline_batch(synthetic_batch(8, 64, 0)), pipeline_batch(synthetic_batch(8, 64, 1))]


def batch_for_step(step):
    return BATCHES[step % 2]


def run(data=batch_for_step, **kwargs):
    options = dict(steps=STEPS, optimizer=OPTIMIZER, seed=0, progress=False)
    return train(CONFIG, data, **{**options, **kwargs})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    return run(log_every=1, out_dir=out_dir), out_dir


def test_smoke_training_lowers_the_loss(uninterrupted):
    result, _ = uninterrupted
    losses = [entry["loss"] for entry in result.history]
    assert len(losses) == STEPS and int(result.state.step) == STEPS
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])
    assert result.history[-1]["mean_iou"] > result.history[0]["mean_iou"]


def test_checkpoint_files_are_written_atomically(uninterrupted):
    _, out_dir = uninterrupted
    assert sorted(os.listdir(out_dir)) == sorted([STATE_FILE, METADATA_FILE])
    metadata = json.loads((out_dir / METADATA_FILE).read_text())
    assert metadata["step"] == STEPS and metadata["losses"]["cls_loss"] == "sigmoid_focal_loss"


class Interrupted(Exception):
    pass


def interrupt_at(step_to_stop):
    def callback(step, metrics):
        if step == step_to_stop:
            raise Interrupted

    return callback


def test_resume_continues_to_the_same_parameters(uninterrupted, tmp_path):
    expected, _ = uninterrupted
    with pytest.raises(Interrupted):
        run(log_every=10, out_dir=tmp_path, checkpoint_every=10, callback=interrupt_at(10))
    assert json.loads((tmp_path / METADATA_FILE).read_text())["step"] == 10
    resumed = run(log_every=10, out_dir=tmp_path, resume=True)
    assert int(resumed.state.step) == STEPS
    assert resumed.history[0]["step"] == STEPS  # only the second half ran
    for got, want in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(expected.params), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    """The index of 16 synthetic 64x64 images (1-3 boxes of 3 classes each) written as PNG files."""
    folder = tmp_path_factory.mktemp("synthetic")
    batch = pipeline_batch(synthetic_batch(16, 64, 5))
    images, annotations = [], []
    for row in range(16):
        Image.fromarray(batch["images"][row]).save(folder / f"{row}.png")
        images.append({"id": row, "file_name": f"{row}.png", "width": 64, "height": 64})
        for (x1, y1, x2, y2), label in zip(batch["boxes"][row][batch["valid"][row]],
                                           batch["labels"][row][batch["valid"][row]], strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": row, "category_id": int(label),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    categories = [{"id": k, "name": name} for k, name in enumerate(("red", "green", "blue"))]
    (folder / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                 "categories": categories}))
    return load_coco(folder / "ann.json", folder, max_boxes=3)


def test_resume_from_a_stream_reads_the_same_batches_from_its_saved_position(synthetic_files, tmp_path):
    def run_on_stream(**kwargs):
        with training_stream(synthetic_files, Geometry(64), batch_size=8, seed=0, steps=STEPS) as batches:
            return run(data=batches, **kwargs)

    expected = run_on_stream()
    with pytest.raises(Interrupted):
        run_on_stream(out_dir=tmp_path, checkpoint_every=5, log_every=5, callback=interrupt_at(10))
    assert json.loads((tmp_path / METADATA_FILE).read_text())["data_state"] == {"position": 10}
    resumed = run_on_stream(out_dir=tmp_path, resume=True, log_every=5)
    assert [entry["step"] for entry in resumed.history] == [15, 20]  # only the second half ran
    for got, want in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(expected.params), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)


def test_each_batch_runs_with_the_config_of_its_canvas(uninterrupted, monkeypatch):
    canvases = fake_steps(monkeypatch, [1.0] * 3)
    config = FCOSConfig(num_classes=3, image_size=(32, 48))
    landscape = {"images": np.zeros((2, 32, 48, 3), np.uint8)}
    portrait = {"images": np.zeros((2, 48, 32, 3), np.uint8)}
    train(config, lambda step: (landscape, portrait)[step % 2], steps=3, optimizer=OPTIMIZER,
          params=uninterrupted[0].params, progress=False)
    assert canvases == [(32, 48), (48, 32), (32, 48)]


def test_resume_refuses_a_checkpoint_with_other_settings(uninterrupted):
    _, out_dir = uninterrupted
    with pytest.raises(ValueError, match="different seed"):
        run(out_dir=out_dir, resume=True, seed=1)


def fake_steps(monkeypatch, losses):
    """Replace the compiled step by one that returns ``losses[step]``; returns the canvases it was built for."""
    canvases = []

    def step_for(config, *args):
        canvases.append(config.image_size)
        return lambda state, batch, key: (state.replace(step=state.step + 1), {"loss": losses[int(state.step)]})

    monkeypatch.setattr(training, "make_train_step", step_for)
    return canvases


def test_non_finite_loss_stops_training_with_a_clear_error(uninterrupted, monkeypatch):
    # A NaN-returning loss at the loss level is covered in test_fcos; here the loop's check.
    fake_steps(monkeypatch, [1.0, 1.0, float("nan")] + [1.0] * STEPS)
    with pytest.raises(TrainingDiverged, match="diverged at step 3") as info:
        train(CONFIG, batch_for_step, steps=STEPS, optimizer=OPTIMIZER, params=uninterrupted[0].params,
              progress=False)
    assert info.value.step == 3 and np.isnan(info.value.metrics["loss"])


def test_schedule_warms_up_then_decays_at_two_thirds_and_eight_ninths():
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=0.1, warmup_steps=10, warmup_factor=0.0), 90)
    values = [float(schedule(step)) for step in (0, 5, 10, 59, 60, 79, 80, 89)]
    np.testing.assert_allclose(values, [0.0, 0.05, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_applies_to_kernels_only(name):
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    config = OptimizerConfig(name=name, learning_rate=0.1, weight_decay=0.5, warmup_steps=0)
    optimizer = make_optimizer(config, 10)
    updates, _ = optimizer.update(zero_grads, optimizer.init(params), params)
    np.testing.assert_allclose(updates["kernel"], -0.05)
    np.testing.assert_allclose(updates["bias"], 0.0)


TINY_FROZEN = FCOSConfig(num_classes=3, image_size=32, strides=(8,), head_convs=0, fpn_width=8,
                         backbone_norm="frozen_bn", frozen_stages=1)  # stages 3 and 4 feed nothing at strides (8,)


def bfloat16(config):
    return dataclasses.replace(config, precision="bfloat16")


def test_bfloat16_computes_in_bfloat16_and_its_float32_loss_is_close():
    params, batch = init_params(TINY_FROZEN, jax.random.key(0)), synthetic_batch(2, 32, 0)
    assert "bf16[2,16,16,16]" in str(jax.make_jaxpr(lambda p: apply_model(p, batch["images"], bfloat16(TINY_FROZEN)))(
        params))
    options = dict(detector_of(TINY_FROZEN).loss_options("focal", "giou"))
    losses = [jax.jit(lambda p, c=c: fcos_loss_from_params(p, batch, c, **options)[0])(params)
              for c in (TINY_FROZEN, bfloat16(TINY_FROZEN))]
    assert losses[1].dtype == jnp.float32 and float(losses[1]) != float(losses[0])
    assert float(losses[1]) == pytest.approx(float(losses[0]), rel=0.02)
    with pytest.raises(ValueError, match="precision='float16'; choose one of float32, bfloat16"):
        FCOSConfig(precision="float16")


@pytest.mark.slow  # about 10 s of CPU: the step's compile
def test_a_bfloat16_step_keeps_float32_parameters_and_leaves_the_frozen_ones_unchanged():
    config, params = bfloat16(TINY_FROZEN), init_params(TINY_FROZEN, jax.random.key(0))
    batch = synthetic_batch(2, 32, 0)
    options = detector_of(config).loss_options("focal", "giou")
    float32_loss = fcos_loss_from_params(params, batch, TINY_FROZEN, **dict(options))[0]
    state = training.create_train_state(config, OPTIMIZER, 10, jax.random.key(0), params)
    new, metrics = training.make_train_step(config, OPTIMIZER, 10, options, training.data_parallel_mesh())(
        state, batch, jax.random.key(1))
    assert float(metrics["loss"]) == pytest.approx(float(float32_loss), rel=0.02)
    assert {leaf.dtype for leaf in jax.tree.leaves(new.params)} == {jnp.dtype(jnp.float32)}
    mask = frozen_mask(params, config)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, new.params)
    pairs = list(zip(jax.tree.leaves(mask), jax.tree.leaves(changed), strict=True))
    assert not any(moved for frozen, moved in pairs if frozen)
    assert changed["backbone"]["BasicBlock_1"]["Conv_0"]["kernel"] and changed["fpn"]["lateral_8"]["kernel"]
    assert mask["backbone"]["Conv_0"]["kernel"] and mask["backbone"]["BasicBlock_0"]["Conv_0"]["kernel"]
    assert not mask["backbone"]["BasicBlock_1"]["Conv_0"]["kernel"]  # stage 2
    assert mask["backbone"]["BasicBlock_1"]["FrozenBatchNorm_0"]["scale"]


def test_bad_optimizer_name_is_rejected():
    with pytest.raises(ValueError, match="choose 'adamw' or 'sgd'"):
        OptimizerConfig(name="adam")


TWO_DEVICE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, sys.argv[1])
    from detection.fcos import FCOSConfig
    from detection.losses import as_cls_loss, as_reg_loss
    from detection.optim import OptimizerConfig
    from detection.training import create_train_state, data_parallel_mesh, make_train_step, replicate, shard_batch

    config = FCOSConfig(num_classes=3, image_size=64, strides=(8,), head_convs=0)
    optimizer = OptimizerConfig(warmup_steps=0)
    rng = np.random.default_rng(0)
    batch = {"images": rng.random((4, 64, 64, 3), dtype=np.float32),
             "boxes": np.array([[[4, 4, 40, 30], [30, 30, 60, 60]]] * 4, np.float32),
             "labels": np.array([[0, 2]] * 4, np.int32), "valid": np.ones((4, 2), bool)}
    options = (("alpha_balance", None), ("cls_loss", as_cls_loss("focal")), ("quality_weight", 1.0),
               ("reg_loss", as_reg_loss("giou")), ("reg_weight", 1.0))
    state = create_train_state(config, optimizer, 10, jax.random.key(0))
    results = {}
    for name, devices in (("one", jax.devices()[:1]), ("two", jax.devices())):
        mesh = data_parallel_mesh(devices)
        step = make_train_step(config, optimizer, 10, options, mesh)
        sharded = shard_batch(batch, mesh)
        new_state, metrics = step(replicate(state, mesh), sharded, jax.random.key(0))
        leaf = new_state.params["head"]["ltrb"]["kernel"]
        results[name] = {"devices": len(devices), "loss": float(metrics["loss"]),
                         "num_positive": float(metrics["num_positive"]),
                         "batch_shards": len(sharded["images"].addressable_shards),
                         "param_sum": float(np.abs(np.asarray(leaf)).sum())}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module", autouse=True)
def two_device_process():
    """Start the 2-device subprocess when the module starts: XLA compiles on one core, so the
    subprocess's compilation overlaps with this module's own instead of adding to it."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    process = subprocess.Popen(
        [sys.executable, "-c", TWO_DEVICE_SCRIPT, str(REPO_ROOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_two_device_step_matches_one_device_step(two_device_process):
    stdout, stderr = two_device_process.communicate(timeout=300)
    completed = subprocess.CompletedProcess(two_device_process.args, two_device_process.returncode, stdout, stderr)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    one, two = results["one"], results["two"]
    assert (one["devices"], two["devices"], two["batch_shards"]) == (1, 2, 2)
    assert one["num_positive"] == two["num_positive"]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(two["param_sum"], one["param_sum"], rtol=1e-4)
