"""Atomic, resumable training checkpoints: flax msgpack of the train state plus JSON metadata.

A checkpoint directory holds ``checkpoint.msgpack`` (the whole ``TrainState`` pytree: params,
optimizer state, step) and ``checkpoint.json`` (step, config, optimizer settings, seed). Each
file is written to a temporary file in the same directory and moved into place with
``os.replace``, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import jax
from flax import serialization

STATE_FILE = "checkpoint.msgpack"
METADATA_FILE = "checkpoint.json"


def write_atomically(path: str | os.PathLike, data: str | bytes) -> None:
    """Write text or bytes to ``path`` (its folder made) via a temporary file and ``os.replace``: never partly."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_name = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # Mode 0o666 less the umask, as for any new file (mkstemp's would be private); no umask call, which would
    # change the whole process's umask for a moment under the other threads.
    fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def save_checkpoint(out_dir: str | os.PathLike, state: Any, metadata: dict) -> Path:
    """Save ``state`` and JSON-serializable ``metadata`` to ``out_dir``; return the state file path."""
    out = Path(out_dir)
    state_path = out / STATE_FILE
    write_atomically(state_path, serialization.to_bytes(jax.device_get(state)))
    # The state file carries its own step, so a crash between the two writes stays consistent.
    write_atomically(out / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True).encode())
    return state_path


def load_checkpoint(out_dir: str | os.PathLike, template: Any) -> tuple[Any, dict] | None:
    """Return ``(state, metadata)`` restored into the structure of ``template``, or None if absent."""
    out = Path(out_dir)
    state_path, metadata_path = out / STATE_FILE, out / METADATA_FILE
    if not state_path.is_file():
        return None
    try:
        state = serialization.from_bytes(jax.device_get(template), state_path.read_bytes())
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{state_path}: checkpoint does not match the model/optimizer being trained ({error}); "
            "use a fresh out_dir or the settings it was written with"
        ) from error
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    return state, metadata
