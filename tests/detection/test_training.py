"""Training loop: smoke training, divergence, checkpoint resume, schedules and data parallelism."""

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
from synthetic_batches import synthetic_batch

from detection.checkpoints import METADATA_FILE, STATE_FILE
from detection.fcos import FCOSConfig
from detection.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from detection.training import TrainingDiverged, train

CONFIG = FCOSConfig(num_classes=3, image_size=64)
OPTIMIZER = OptimizerConfig(learning_rate=1e-3, warmup_steps=4)
STEPS = 20
REPO_ROOT = Path(__file__).resolve().parents[2]




BATCHES = [synthetic_batch(8, 64, 0), synthetic_batch(8, 64, 1)]


def batch_for_step(step):
    return BATCHES[step % 2]


def run(**kwargs):
    options = dict(steps=STEPS, optimizer=OPTIMIZER, seed=0, progress=False)
    return train(CONFIG, batch_for_step, **{**options, **kwargs})


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


def test_resume_refuses_a_checkpoint_with_other_settings(uninterrupted):
    _, out_dir = uninterrupted
    with pytest.raises(ValueError, match="different seed"):
        run(out_dir=out_dir, resume=True, seed=1)


def test_non_finite_loss_stops_training_with_a_clear_error():
    # NaN pixels make every loss term NaN, exactly as a NaN-returning loss would (that case is
    # covered at the loss level in test_fcos); going through the data reuses the compiled step.
    poisoned = {**BATCHES[0], "images": np.full_like(BATCHES[0]["images"], np.nan)}
    data = lambda step: poisoned if step == 2 else batch_for_step(step)
    with pytest.raises(TrainingDiverged, match="diverged at step 3") as info:
        train(CONFIG, data, steps=STEPS, optimizer=OPTIMIZER, progress=False)
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
