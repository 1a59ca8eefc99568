"""Settings of a search: one frozen dataclass, its presets, TOML files and flag overrides, all validated.

Every setting is a field of :class:`SearchConfig` with its allowed values written beside it (``_int``,
``_choice``, ...); ``describe_settings()`` lists them for ``--help``. A config comes from a preset
(``demo``, the default; ``small``; ``paper``), then a TOML file (top-level keys are settings, an
optional ``preset = "small"`` picks the base, an optional ``[mos]`` table holds MOS settings), then
command-line flags. An unknown key or a value out of range raises :class:`SearchConfigError` naming
the setting, where it came from and what is allowed.

The paper's symbols: ``population`` is M (unique candidates per generation that pass CPV and are
scored by MOS), ``top_k`` is K (the MOS-best trained on the proxy task), ``parents`` is P (the
proxy-best that breed the next generation); CSE-Autoloss, Sec. 3 and Algorithm 1.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoloss.pareto import COMPLEXITY_MEASURES
from detection.dataset_spec import parse_dataset_spec
from detection.detectors import DETECTORS
from symbolic.zoo import KNOWN_LOSSES


@dataclasses.dataclass(frozen=True)
class Method:
    """A search method: which filters it applies before the proxy and whether it breeds from parents."""

    name: str
    cpv: bool
    mos: bool
    evolve: bool


# The search and the paper's ablation baselines, each under the same proxy budget (K trainings per generation);
# the one table of method names (settings, the evolution, the benchmarks).
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("cse", cpv=True, mos=True, evolve=True),
        Method("cpv-only", cpv=True, mos=False, evolve=True),
        Method("vanilla", cpv=False, mos=False, evolve=True),
        Method("random", cpv=False, mos=False, evolve=False),
    )
}
BRANCHES = ("cls", "reg", "both")
EXECUTION_KEYS = frozenset({"workers", "dask_scheduler", "dask_connect_timeout", "data_workers"})  # same results


class SearchConfigError(ValueError):
    """A setting that does not exist or has a value outside its allowed range."""


def _setting(default, kind: str, help: str, **allowed) -> Any:
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, **allowed})


def _int(default: int, low: int, high: int, help: str):
    return _setting(default, "int", help, low=low, high=high)


def _float(default: float, low: float, high: float, help: str, *, open_low: bool = False):
    return _setting(default, "float", help, low=low, high=high, open_low=open_low)


def _choice(default: str, choices: tuple[str, ...], help: str):
    return _setting(default, "choice", help, choices=choices)


def _text(default: str | None, help: str, *, optional: bool = True):
    return _setting(default, "text", help, optional=optional)


def _table(help: str):
    return dataclasses.field(default_factory=dict, metadata={"kind": "table", "help": help})


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Every setting of a search; construct with keywords, or use :meth:`preset` / :func:`load_config`."""

    # the problem
    detector: str = _choice("fcos", tuple(DETECTORS), "detector whose loss is searched (fcos: sigmoid-form cls, "
                            "faster-rcnn: softmax-form cls)")
    branch: str = _choice("cls", BRANCHES, "branch searched; the other keeps its default (focal or CE; GIoU); "
                          "both = search cls, then reg, then train the winners together")
    method: str = _choice("cse", tuple(METHODS), "cse (CPV + MOS), or a baseline under the same proxy budget: "
                          "cpv-only, vanilla (no CPV, no MOS) or random search")
    data: str = _text("shapes", "dataset spec: shapes, coco[,OPTIONS]:ANN.json:IMG_DIR or voc[,OPTIONS]:VOC_DIR "
                      "(a coco file keeps a seeded holdout part back for evaluation)", optional=False)
    search_val_data: str | None = _text(None, "dataset spec the proxy evaluates on (default: data's search_val split "
                                        "or held-out part)")
    final_val_data: str | None = _text(None, "dataset spec of the final evaluation (default: data's final_val split "
                                       "or held-out part)")
    data_root: str | None = _text(None, "cache folder of generated/converted data (default $AUTOLOSS_CACHE)")
    image_size: int = _int(128, 32, 4096, "shorter image side S in pixels (aspect ratio kept)")
    image_max_size: int = _int(0, 0, 8192, "longer image side at most L in pixels; 0: L = S (fit into a square)")
    data_workers: int = _int(0, 0, 64, "input pipeline worker processes per training (0: decode in threads)")
    detector_preset: str = _text("tiny", "detector size preset (tiny, resnet18, resnet50)", optional=False)
    backbone_weights: str | None = _text(None, "ImageNet-pretrained ResNet weights in torchvision's layout (.pth, "
                                         ".safetensors or .npz) for the resnet18/resnet50 presets: frozen BatchNorm, "
                                         "frozen stem and first stage (default: random init, GroupNorm)")
    precision: str = _choice("float32", ("float32", "bfloat16"), "compute dtype of proxy and final trainings "
                             "(bfloat16: faster on GPUs; parameters and losses stay float32)")
    seed: int = _int(0, 0, 2**31 - 1, "seed of every random choice, the proxy and the final training")
    # the evolution
    generations: int = _int(3, 1, 100_000, "number of generations")
    population: int = _int(48, 1, 1_000_000, "M: unique candidates per generation that pass CPV (scored by MOS)")
    max_generated: int = _int(300_000, 1, 10**9, "cap on raw candidates generated per generation")
    top_k: int = _int(3, 1, 100_000, "K: candidates per generation trained on the proxy task")
    parents: int = _int(3, 1, 100_000, "P: best proxy-trained candidates so far that breed the next generation")
    crossover_rate: float = _float(0.5, 0.0, 1.0, "share of offspring made by crossover (the rest by mutation)")
    max_size: int = _int(32, 3, 500, "largest candidate tree (nodes)")
    max_depth: int = _int(8, 1, 50, "deepest candidate tree")
    init_depth: int = _int(5, 1, 10, "largest depth of the random trees of generation 0 (ramped half-and-half)")
    zoo_seeds: tuple[str, ...] = _setting((), "names", "zoo losses added to generation 0 (e.g. focal, bce)",
                                          choices=tuple(KNOWN_LOSSES))
    verify_time_budget: float = _float(0.0, 0.0, 600.0, "CPU seconds of CPV proof attempts per candidate (0: the "
                                       "dense sampled check alone, which keeps a search exactly reproducible)")
    mos_batch_size: int = _int(64, 1, 1_000_000, "candidates per MOS call (a checkpoint follows each)")
    mos: Mapping[str, Any] = _table("MOS settings (simulate.SimulationConfig fields), a TOML [mos] table")
    hall_of_fame_size: int = _int(10, 1, 100_000, "entries kept in the hall of fame")
    complexity_penalty: float = _float(0.0, 0.0, 1.0, "parents are ranked by proxy AP (a fraction) less this per "
                                       "unit of complexity (as PySR's parsimony); 0: by AP alone")
    complexity_measure: str = _choice("size", COMPLEXITY_MEASURES, "complexity of the Pareto front and the penalty: "
                                      "tree size, or weighted (1 arithmetic, 2 standard nonlinearities, 3 exotic "
                                      "curves; autoloss.pareto)")
    # the proxy task and the final evaluation; 300 proxy steps rank losses like the trained schedule far better than
    # 150 for their cost (Kendall tau with 3000-step finals +0.61 against +0.33, benchmarks/RESULTS.md "Proxy fidelity")
    proxy_steps: int = _int(300, 1, 10**8, "S: training steps of one proxy evaluation")
    proxy_batch_size: int = _int(16, 1, 4096, "images per step on the proxy task")
    optimizer: str = _choice("adamw", ("adamw", "sgd"), "optimizer of proxy and final training")
    learning_rate: float = _float(2e-3, 0.0, 10.0, "peak learning rate of proxy and final training", open_low=True)
    proxy_time_limit: float = _float(600.0, 1.0, 10**7, "seconds one proxy evaluation may take")
    proxy_init: str = _choice("warm", ("warm", "scratch"), "start of a proxy training: warm = the MOS warm start "
                              "(mos.warm_start_steps with the default losses) with the searched branch's output "
                              "layer re-initialized; scratch = a freshly initialized detector")
    proxy_warm_start_steps: int = _int(0, 0, 10**9, "steps of the proxy's warm start, trained with the default "
                                       "losses (0: the MOS warm start, mos.warm_start_steps); proxy_init = warm")
    final_steps: int = _int(1000, 0, 10**9, "training steps of the final evaluation (0 skips it)")
    final_batch_size: int = _int(16, 1, 4096, "images per step of the final evaluation")
    final_learning_rate: float = _float(0.0, 0.0, 10.0, "peak learning rate of the final evaluation (0: "
                                        "learning_rate, the proxy's)")
    final_time_limit: float = _float(3600.0, 1.0, 10**8, "seconds one final training may take")
    final_seeds: int = _int(2, 1, 1000, "seeds every final row trains (seed, seed + 1, ...)")
    final_max_seeds: int = _int(3, 1, 1000, "seeds a found row and the baseline go up to while their AP difference "
                                "is within the seed spread (autoloss.final_comparison)")
    # execution (may differ on resume)
    workers: int = _int(2, 1, 4096, "local worker processes for proxy and final trainings")
    dask_scheduler: str | None = _text(None, "Dask scheduler address (tcp://HOST:PORT) instead of local workers")
    dask_connect_timeout: float = _float(5.0, 0.1, 600.0, "seconds to wait for the Dask scheduler")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _checked(field, getattr(self, field.name)))
        detector = DETECTORS[self.detector]
        if self.detector_preset not in detector.presets:
            raise SearchConfigError(f"setting 'detector_preset' must be one of {', '.join(detector.presets)} for "
                                    f"the {self.detector} detector, got {self.detector_preset!r}")
        forms = {detector.cls_form, "reg"} if self.branch == "both" else {self.form_of(self.branch)}
        for name in self.zoo_seeds:
            if KNOWN_LOSSES[name].form not in forms:
                raise SearchConfigError(f"setting 'zoo_seeds': {name!r} is a {KNOWN_LOSSES[name].form}-form loss; "
                                        f"this search takes {' or '.join(sorted(forms))}-form seeds")
        if self.init_depth > self.max_depth:
            raise SearchConfigError(f"setting 'init_depth' ({self.init_depth}) cannot exceed 'max_depth' "
                                    f"({self.max_depth})")
        if self.method == "cse" and self.top_k > self.population:
            raise SearchConfigError(f"setting 'top_k' (K = {self.top_k}) cannot exceed 'population' "
                                    f"(M = {self.population}): the proxy takes the K best of M")
        for name in ("data", "search_val_data", "final_val_data"):
            check_dataset_spec(name, getattr(self, name))
        if self.final_max_seeds < self.final_seeds:
            raise SearchConfigError(f"setting 'final_max_seeds' ({self.final_max_seeds}) cannot be below "
                                    f"'final_seeds' ({self.final_seeds}), the seeds every final row trains")
        if self.image_max_size and self.image_max_size < self.image_size:
            raise SearchConfigError(f"setting 'image_max_size' ({self.image_max_size}) cannot be below 'image_size' "
                                    f"({self.image_size}), the shorter side; 0 makes it equal")

    @property
    def branches(self) -> tuple[str, ...]:
        """The branches searched, in order."""
        return ("cls", "reg") if self.branch == "both" else (self.branch,)

    def form_of(self, branch: str) -> str:
        """The loss form of ``branch`` for this detector (sigmoid or softmax for cls, reg for reg)."""
        return "reg" if branch == "reg" else DETECTORS[self.detector].cls_form

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["zoo_seeds"], out["mos"] = list(self.zoo_seeds), dict(self.mos)
        return out

    def replace(self, **changes) -> SearchConfig:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def differences(self, other: SearchConfig, *, ignore=EXECUTION_KEYS) -> dict[str, tuple[Any, Any]]:
        """{setting: (ours, theirs)} for every setting that differs, except ``ignore``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {key: (mine[key], theirs[key]) for key in mine if key not in ignore and mine[key] != theirs[key]}

    @classmethod
    def preset(cls, name: str = "demo", **overrides) -> SearchConfig:
        """The preset ``name`` (demo, small, paper) with ``overrides``."""
        if name not in PRESETS:
            raise SearchConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return from_mapping({**PRESETS[name], **overrides}, source=f"preset {name!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> SearchConfig:
        """A config from a complete or partial dict of settings (missing ones take the defaults)."""
        return from_mapping(values, source=source)


SETTINGS: dict[str, dataclasses.Field] = {field.name: field for field in dataclasses.fields(SearchConfig)}


def allowed(field: dataclasses.Field) -> str:
    """The allowed values of a setting, in words (``an integer in [1, 100000]``)."""
    meta = field.metadata
    kind = meta["kind"]
    if kind == "int":
        return f"an integer in [{meta['low']}, {meta['high']}]"
    if kind == "float":
        return f"a number in {'(' if meta['open_low'] else '['}{meta['low']:g}, {meta['high']:g}]"
    if kind == "choice":
        return "one of " + ", ".join(meta["choices"])
    if kind == "names":
        return "a list of zoo names (" + ", ".join(meta["choices"]) + ")"
    if kind == "table":
        return "a table of MOS settings"
    return "a string" + (" or nothing" if meta["optional"] else "")


def check_dataset_spec(name: str, spec: str | None) -> None:
    """SearchConfigError naming setting ``name`` when ``spec`` is not a dataset spec (``None`` is allowed)."""
    if spec is None:
        return
    try:
        parse_dataset_spec(spec)
    except ValueError as error:
        raise SearchConfigError(f"setting {name!r}: {error}") from None


def _checked(field: dataclasses.Field, value):
    """``value`` converted to the setting's type; SearchConfigError if it is not allowed."""
    meta, name = field.metadata, field.name
    kind = meta["kind"]

    def refuse():
        return SearchConfigError(f"setting {name!r} must be {allowed(field)}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not meta["low"] <= value <= meta["high"]:
            raise refuse()
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise refuse()
        if not (meta["low"] < value if meta["open_low"] else meta["low"] <= value) or value > meta["high"]:
            raise refuse()
        return float(value)
    if kind == "choice":
        if value not in meta["choices"]:
            raise refuse()
        return value
    if kind == "names":
        if isinstance(value, str) or not all(isinstance(item, str) and item in meta["choices"] for item in value):
            raise refuse()
        return tuple(value)
    if kind == "table":
        if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
            raise refuse()
        return dict(value)
    if value is None and meta["optional"]:
        return None
    if not isinstance(value, str) or not value.strip():
        raise refuse()
    return value


def from_mapping(values: Mapping[str, Any], *, source: str = "config") -> SearchConfig:
    """A config from ``values`` (missing settings take the defaults); errors say where they came from."""
    unknown = [key for key in values if key not in SETTINGS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, SETTINGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SearchConfigError(f"{source}: unknown setting {key!r}{hint}; known settings: {', '.join(SETTINGS)}")
    try:
        return SearchConfig(**values)
    except SearchConfigError as error:
        raise SearchConfigError(f"{source}: {error}") from None


def parse_flag_value(name: str, text: str) -> Any:
    """The value of setting ``name`` written as command-line text (``--zoo-seeds focal,bce``)."""
    if name not in SETTINGS:
        raise SearchConfigError(f"unknown setting {name!r}")
    field = SETTINGS[name]
    kind = field.metadata["kind"]
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise SearchConfigError(f"--{name.replace('_', '-')}: must be {allowed(field)}, got {text!r}") from None
    if kind == "names":
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if kind == "text" and field.metadata["optional"] and text.lower() in ("", "none"):
        return None
    return text


def load_config(
    *, preset: str | None = None, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchConfig:
    """Preset (default demo, or the file's ``preset`` key), then the TOML file, then ``overrides``."""
    file_values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            file_values = tomllib.loads(path.read_text())
        except OSError as error:
            raise SearchConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SearchConfigError(f"{path}: not valid TOML ({error})") from None
        file_preset = file_values.pop("preset", None)
        if file_preset is not None and not isinstance(file_preset, str):
            raise SearchConfigError(f"{path}: 'preset' must be a preset name, got {file_preset!r}")
        preset = preset or file_preset
    name = preset or "demo"
    if name not in PRESETS:
        raise SearchConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name])
    if file_values:
        from_mapping({**values, **file_values}, source=str(path))  # names the file in its errors
        values.update(file_values)
    if overrides:
        from_mapping({**values, **overrides}, source="command line")
        values.update(overrides)
    return from_mapping(values, source="config")


def describe_settings() -> str:
    """One line per setting: name, default and allowed values (for ``--help`` and the docs)."""
    lines = []
    for field in SETTINGS.values():
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        lines.append(f"{field.name} = {default!r}: {field.metadata['help']}; {allowed(field)}")
    return "\n".join(lines)


# demo: the default, about 11 minutes on two CPU cores (benchmarks/search_demo.py); its 1000-step final is a short
# schedule's verdict. small: a longer CPU run whose final is 3000 steps at the FCOS default rate, which orders losses
# as the 6000-step default does (benchmarks/RESULTS.md, "Proxy fidelity"). paper: a COCO-scale GPU configuration
# with the paper's detector (FCOS, ImageNet-pretrained ResNet-50 FPN, 1x-style final schedule, Sec. 4.1) and a
# large M with few proxy trainings per generation. Not run in CI.
# Its files: `autoloss split-coco coco/annotations/instances_train2017.json --search-val 10000 --seed 0
# --final coco/annotations/instances_val2017.json --out coco/annotations/search` holds out the paper's 10k
# search-validation images, and torchvision's resnet50-0676ba61.pth goes into weights/ (README).
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    "small": {
        "generations": 6, "population": 96, "top_k": 4, "parents": 4, "proxy_steps": 400, "final_steps": 3000,
        "final_learning_rate": 5e-3,
    },
    "paper": {
        "data": "coco,holdout=0:coco/annotations/search/search_train.json:coco/train2017",
        "search_val_data": "coco:coco/annotations/search/search_val.json:coco/train2017",
        "final_val_data": "coco:coco/annotations/instances_val2017.json:coco/val2017",
        "image_size": 800, "image_max_size": 1333, "data_workers": 4, "detector_preset": "resnet50",
        "backbone_weights": "weights/resnet50-0676ba61.pth",
        "generations": 10, "population": 1000,
        "max_generated": 10**8, "top_k": 16, "parents": 8, "max_size": 48, "max_depth": 10, "mos_batch_size": 256,
        "proxy_steps": 7330, "proxy_batch_size": 16, "optimizer": "sgd", "learning_rate": 1e-2,
        "proxy_time_limit": 4 * 3600.0,
        "final_steps": 90_000, "final_batch_size": 16, "final_time_limit": 48 * 3600.0, "workers": 1,
        "final_seeds": 1, "final_max_seeds": 2,  # a second seed of both rows only when one cannot tell them apart
        "verify_time_budget": 1.0,  # proofs: worth their CPU here, at the cost of bit-identical reruns
    },
}
