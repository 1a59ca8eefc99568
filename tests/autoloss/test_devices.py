"""GPUs per worker process and JAX's memory settings for processes that share a GPU."""

from autoloss import devices
from autoloss.devices import dask_worker_environment, local_worker_environment, visible_gpus


def gpus_of(environment: dict) -> str | None:
    return environment.get("CUDA_VISIBLE_DEVICES")


def test_fewer_workers_than_gpus_get_a_group_each_and_need_no_memory_cap(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    gpus = ["0", "1", "2", "3"]
    environments = [local_worker_environment(slot, 2, gpus) for slot in range(2)]
    assert [gpus_of(e) for e in environments] == ["0,1", "2,3"]
    assert all(e["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in e
               for e in environments)


def test_more_workers_than_gpus_take_them_in_turn_and_share_the_memory(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    environments = [local_worker_environment(slot, 5, ["0", "1"]) for slot in range(5)]
    assert [gpus_of(e) for e in environments] == ["0", "1", "0", "1", "0"]
    assert {e["XLA_PYTHON_CLIENT_MEM_FRACTION"] for e in environments} == {"0.300"}  # three share GPU 0


def test_without_gpus_only_the_compilation_cache_is_set_and_user_settings_win(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOLOSS_CACHE", str(tmp_path))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert local_worker_environment(0, 2, []) == {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-compilation")}
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    assert local_worker_environment(0, 4, ["0"]) == {"CUDA_VISIBLE_DEVICES": "0",
                                                     "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def test_a_dask_worker_trains_on_its_first_visible_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,0,1")  # as dask-cuda lists a worker's own GPU first
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    assert visible_gpus() == ["2", "3", "0", "1"]
    assert gpus_of(dask_worker_environment(1)) == "2"
    assert dask_worker_environment(2)["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == [] and "CUDA_VISIBLE_DEVICES" not in dask_worker_environment(1)


def test_without_cuda_visible_devices_nvidia_smi_lists_the_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    class Listed:
        returncode, stdout = 0, "0\n1\n"

    monkeypatch.setattr(devices.subprocess, "run", lambda *args, **kwargs: Listed())
    assert visible_gpus() == ["0", "1"]

    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(devices.subprocess, "run", missing)
    assert visible_gpus() == []
