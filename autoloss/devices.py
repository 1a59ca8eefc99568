"""Which GPUs each worker process of a search gets, and JAX's settings for processes that share a device.

Local workers (``--workers N`` on a machine with G visible GPUs): with N <= G each worker gets its own
group of G // N GPUs (a training in it is data-parallel over its group); with N > G the workers take
the GPUs in turn, one each, so ceil(N / G) processes share a GPU. A Dask worker's trainings use the
first GPU the Dask worker sees (start one Dask worker per GPU, e.g. ``dask cuda worker``, which lists
each worker's own GPU first); the Dask worker's threads share it.

JAX preallocates 75 % of a GPU's memory in the first process that uses it, so two processes on one
GPU fail. Every worker process therefore gets ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (memory is
taken as needed), and where k processes share a GPU ``XLA_PYTHON_CLIENT_MEM_FRACTION=0.9/k`` caps
each. A value the user set in the environment wins. Workers also share JAX's persistent compilation
cache (``JAX_COMPILATION_CACHE_DIR``, default ``$AUTOLOSS_CACHE/jax-compilation``), so a worker that
replaces a killed one, or a resumed search, loads its compiled programs instead of compiling again.
"""

from __future__ import annotations

import math
import os
import subprocess

from detection.shapes import default_cache_root

MEMORY_FRACTION = 0.9  # of a GPU, split between the processes that share it


def visible_gpus() -> list[str]:
    """The ids of the GPUs processes here may use: ``CUDA_VISIBLE_DEVICES``, else nvidia-smi's list; [] without."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [device.strip() for device in listed.split(",") if device.strip() not in ("", "-1")]
    try:
        query = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in query.stdout.splitlines() if line.strip()] if query.returncode == 0 else []


def gpu_settings(devices: list[str], sharing: int) -> dict[str, str]:
    """Environment of a process that uses ``devices`` and shares each with ``sharing`` - 1 others."""
    if not devices:
        return {}
    settings = {"CUDA_VISIBLE_DEVICES": ",".join(devices), "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if sharing > 1:
        settings["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{MEMORY_FRACTION / sharing:.3f}"
    return settings


def local_worker_environment(slot: int, workers: int, gpus: list[str]) -> dict[str, str]:
    """Environment of local worker ``slot`` of ``workers``: its GPUs (see the module docstring) and the caches."""
    if not gpus:
        devices, sharing = [], 1
    elif workers <= len(gpus):
        size = len(gpus) // workers
        devices, sharing = gpus[slot * size:(slot + 1) * size], 1
    else:
        devices, sharing = [gpus[slot % len(gpus)]], math.ceil(workers / len(gpus))
    return _without_user_settings({**gpu_settings(devices, sharing), **compilation_cache()})


def dask_worker_environment(threads: int) -> dict[str, str]:
    """Environment of the training processes of a Dask worker with ``threads`` threads: its first GPU, the caches."""
    gpus = visible_gpus()
    return _without_user_settings({**gpu_settings(gpus[:1], threads), **compilation_cache()})


def compilation_cache() -> dict[str, str]:
    """JAX's persistent compilation cache under the autoloss cache (programs that took over a second to compile)."""
    return {"JAX_COMPILATION_CACHE_DIR": str(default_cache_root() / "jax-compilation")}


def _without_user_settings(settings: dict[str, str]) -> dict[str, str]:
    """``settings`` less those the user set (the device list is ours to split, so it always stays)."""
    return {key: value for key, value in settings.items()
            if key == "CUDA_VISIBLE_DEVICES" or key not in os.environ}
