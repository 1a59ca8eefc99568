"""The trainings a search hands its workers: the task spec of a proxy or final training, the warm start a proxy
starts from, the detector's default losses, and the MOS simulation settings both derive from.

A task spec is the plain dict ``autoloss.proxy.train_and_evaluate`` takes (its docstring lists the fields);
the search (``autoloss.search_driver``), its dry run (``autoloss.search_plan``), its final stage
(``autoloss.final_stage``), refinement and the benchmarks all build theirs here, so each measures the
search's own trainings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax

from autoloss.search_config import SearchConfig, SearchConfigError
from detection.detectors import get_detector

WARM_START_FIELDS = ("detector", "data", "data_root", "image_size", "image_max_size", "preset", "seed",
                     "backbone_weights", "warm_start_steps", "warm_start_batch_size")


class MosUnavailable(ValueError):
    """The cse method needs model optimization simulation, and none could be built."""


def simulation_config(config: SearchConfig, branch: str):
    """The ``simulate.SimulationConfig`` of ``branch``: the search's detector and data, plus ``config.mos``."""
    try:
        from simulate import SimulationConfig
    except ImportError as error:
        raise MosUnavailable(f"the cse method needs model optimization simulation (simulate.Simulator), which "
                             f"cannot be imported ({error}); run a baseline method (--method cpv-only)") from None
    fields = {field.name for field in dataclasses.fields(SimulationConfig)}
    unknown = sorted(set(config.mos) - fields)
    if unknown:
        raise SearchConfigError(f"setting 'mos': unknown MOS setting {unknown[0]!r}; "
                                f"known: {', '.join(sorted(fields))}")
    values = {"detector": config.detector, "data": config.data, "data_root": config.data_root,
              "image_size": config.image_size, "image_max_size": config.image_max_size or None,
              "preset": config.detector_preset, "backbone_weights": config.backbone_weights, "branch": branch,
              "seed": config.seed}
    values = {key: value for key, value in values.items() if key in fields}
    try:
        return SimulationConfig(**{**values, **config.mos})
    except (TypeError, ValueError) as error:
        raise SearchConfigError(f"setting 'mos': {error}") from None


def make_simulator(config: SearchConfig, branch: str, *, progress: bool = True):
    """The MOS simulator of ``branch`` (builds or loads its cached warm start)."""
    from simulate import Simulator

    return Simulator(simulation_config(config, branch), progress=progress)


def task_spec(config: SearchConfig, losses: Mapping[str, dict], *, final: bool = False, out_dir=None,
              branch: str | None = None, warm_start=None, return_model: bool = False) -> dict:
    """The plain-dict spec of one proxy (or final) training for :func:`autoloss.proxy.train_and_evaluate`.

    A proxy training of ``branch`` with ``proxy_init = "warm"`` starts from the MOS warm start with that
    branch's output layer fresh: its ``warm_start`` parameters when given (workers without this machine's
    files), else the worker reads them from the warm-start cache. Final trainings start from scratch.
    """
    init = None
    if branch is not None and not final and config.proxy_init == "warm":
        init = {"warm_start": warm_start_settings(config, branch), "fresh_branch": branch}
        if warm_start is not None:
            init["params"] = warm_start
    return {
        "detector": config.detector, "detector_preset": config.detector_preset,
        "backbone_weights": config.backbone_weights, "precision": config.precision, "data": config.data,
        "data_root": config.data_root, "image_size": config.image_size, "image_max_size": config.image_max_size or None,
        "data_workers": config.data_workers, "optimizer": config.optimizer,
        "learning_rate": (final and config.final_learning_rate) or config.learning_rate, "seed": config.seed,
        "eval_data": config.final_val_data if final else config.search_val_data,
        "eval_split": "final_val" if final else "search_val",
        "steps": config.final_steps if final else config.proxy_steps,
        "batch_size": config.final_batch_size if final else config.proxy_batch_size,
        "cls": dict(losses["cls"]), "reg": dict(losses["reg"]), "out_dir": None if out_dir is None else str(out_dir),
        "return_model": return_model, "init": init,
    }


def proxy_warm_start_config(config: SearchConfig, branch: str):
    """The ``SimulationConfig`` whose warm start proxy trainings of ``branch`` start from: the MOS warm start, or
    with ``proxy_warm_start_steps`` set, the same training with the default losses run that many steps."""
    simulation = simulation_config(config, branch)
    if config.proxy_warm_start_steps:
        simulation = dataclasses.replace(simulation, warm_start_steps=config.proxy_warm_start_steps)
    return simulation


def warm_start_settings(config: SearchConfig, branch: str) -> dict:
    """The ``SimulationConfig`` fields that determine the proxy's warm start (JSON-ready)."""
    simulation = proxy_warm_start_config(config, branch)
    return {name: getattr(simulation, name) for name in WARM_START_FIELDS}


def warm_start_params(config: SearchConfig, branch: str, *, progress: bool = True):
    """The parameters (host arrays) of the warm start that proxy trainings of ``branch`` start from.

    Read from the disk cache, or trained here once (``simulate.simulation.warm_start_of``).
    """
    from simulate.simulation import warm_start_of

    return jax.device_get(warm_start_of(proxy_warm_start_config(config, branch), progress=progress)[0])


def default_losses(config: SearchConfig) -> dict[str, dict]:
    """The detector's default loss of each branch (focal or cross_entropy; giou)."""
    detector = get_detector(config.detector)
    return {"cls": {"name": detector.default_cls_loss}, "reg": {"name": detector.default_reg_loss}}

