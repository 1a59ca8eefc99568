"""``autoloss train`` and ``autoloss evaluate``: train a detector (FCOS or Faster R-CNN) with chosen losses,
evaluate a saved one.

Both print the COCO AP table (or one JSON object with ``--json``); the training progress bar goes to
stderr. Dataset and loss errors are usage errors (exit 2), see :mod:`autoloss.cli_contract`. ``train``
writes only into a missing or empty ``--out`` folder, or one of its own runs (which it resumes).
"""

from __future__ import annotations

import argparse
import datetime
import math
from pathlib import Path

from autoloss.cli_contract import UsageError
from autoloss.loss_specs import losses_of, resolve_cls_loss, resolve_reg_loss
from detection.backbone import PRECISIONS
from detection.detectors import DETECTORS, get_detector
from detection.evaluation import format_ap_table
from detection.experiment import (
    EXPERIMENT_FILE,
    evaluate_checkpoint,
    read_experiment_metadata,
    run_directory,
    run_experiment,
)
from detection.experiment_spec import DEFAULT_BATCH_SIZE, DataSpec, ExperimentSpec, ModelSpec, Schedule
from detection.geometry import Geometry
from detection.plan import experiment_problems, format_plan, plan_stage
from detection.shapes import SPLITS

DATA_HELP = ("dataset: shapes (built-in, generated on first use), shapes:KEY=VALUE,... (a variant, e.g. "
             "shapes:seed=1,classes=6), coco:ANN.json:IMG_DIR or voc:VOC_DIR (any classes); options before the "
             "first colon, e.g. coco,holdout=0.2:ANN.json:IMG_DIR or voc,classes=cat+dog:DIR. Without --eval-data, "
             "a coco file (or a VOC folder without split lists) keeps a seeded 10%% back for evaluation")


def run_train(args: argparse.Namespace) -> dict:
    """``autoloss train``: train a detector, save it to --out and report its metrics on the eval split.

    With ``--dry-run``: check every setting, path and file first, exit 2 naming every problem, else report the plan.
    """
    problems: list[Exception] = []
    spec = _train_spec(args, problems)
    out_dir = args.out or f"runs/train-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    _collect(problems, check_train_directory, out_dir)
    if args.dry_run and spec is not None:
        problems += [UsageError(problem) for problem in experiment_problems(spec)]
    raise_problems(problems)
    if args.dry_run:
        return {"command": "train", "dry_run": True, "plan": [plan_stage(spec, "train").to_dict()]}
    result = run_experiment(spec, out_dir)
    return {"command": "train", "detector": args.detector, "data": args.data, **_finite(result.to_dict())}


def _train_spec(args: argparse.Namespace, problems: list[Exception]) -> ExperimentSpec | None:
    """The experiment of ``autoloss train``'s flags; None (with ``problems`` added) when they do not make one."""
    detector = _collect(problems, get_detector, args.detector)
    for flag, value, low in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                             ("--image-size", args.image_size, 32), ("--data-workers", args.data_workers, 0)):
        if value is not None and value < low:
            problems.append(UsageError(f"{flag} must be at least {low}, got {value}", where=flag))
    if args.max_size is not None and args.max_size < args.image_size:
        problems.append(UsageError(f"--max-size must be at least --image-size ({args.image_size}), got "
                                   f"{args.max_size}", where="--max-size"))
    if detector is None:
        return None
    if args.preset not in detector.presets:  # before the data is loaded
        problems.append(UsageError(f"unknown {args.detector} preset {args.preset!r}", where="--preset",
                                   hint=f"choose one of {', '.join(detector.presets)}"))
    cls_spec = _collect(problems, resolve_cls_loss, args.loss_cls or detector.default_cls_loss, detector.cls_form)
    reg_spec = _collect(problems, resolve_reg_loss, args.loss_reg)
    geometry = _collect([], Geometry, args.image_size, args.max_size)  # its problems are the flags' above
    if None in (cls_spec, reg_spec, geometry) or args.preset not in detector.presets:
        return None
    return ExperimentSpec(
        data=DataSpec(train=args.data, eval=args.eval_data, eval_split=args.eval_split, workers=args.data_workers),
        geometry=geometry,
        model=ModelSpec(detector=args.detector, preset=args.preset, backbone_weights=args.backbone_weights,
                        precision=args.precision),
        schedule=Schedule(steps=args.steps, batch_size=args.batch_size, seed=args.seed),
        losses=losses_of(cls_spec, reg_spec),
    )


def _collect(problems: list[Exception], check, *args):
    """``check(*args)``, or None with its error added to ``problems`` when it raises a usage error."""
    try:
        return check(*args)
    except (ValueError, OSError) as error:
        problems.append(error)
        return None


def raise_problems(problems: list[Exception]) -> None:
    """Raise the one problem, or a UsageError listing every problem; nothing when there is none."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        listed = "\n".join(f"  - {_message(problem)}" for problem in problems)
        raise UsageError(f"{len(problems)} problems, nothing was run:\n{listed}")


def _message(problem: Exception) -> str:
    where = getattr(problem, "where", None)
    return (f"{where}: " if where else "") + str(problem)


def check_train_directory(out_dir: str) -> None:
    """UsageError unless ``out_dir`` is missing, an empty folder, or a run of ``autoloss train`` (to resume)."""
    path = Path(out_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder", where="--out", hint="choose another --out")
    if any(path.iterdir()) and not (path / EXPERIMENT_FILE).is_file():
        raise UsageError(f"{path} is not empty and not a run of autoloss train (no {EXPERIMENT_FILE})",
                         where="--out", hint="choose a new or empty --out (nothing in it was changed)")


def format_train(report: dict) -> str:
    """Text report of ``train``: the run's settings and speed, then the AP table (or the plan of a dry run)."""
    if report.get("dry_run"):
        return format_plan(report["plan"])
    loss = report["final_loss"]
    lines = [
        f"trained {report['steps']} steps (batch {report['batch_size']}, seed {report['seed']}) in "
        f"{report['train_seconds']:.0f} s, {report['images_per_second']:.0f} images/s; final loss "
        + ("-" if loss is None else f"{loss:.4f}"),
        describe_datasets(report["datasets"]),
        f"model saved to {report['out_dir']}; AP:",
    ]
    return "\n".join([*lines, format_ap_table(_nan(report["metrics"]))])


def describe_datasets(datasets: dict) -> str:
    """One line: what a training saw and what it was evaluated on, and whether the two share images."""
    shared = datasets["shared_images"]
    return (f"trained on {datasets['train_images']} images of {datasets['train']}; evaluated on "
            f"{datasets['eval_images']} images of {datasets['eval']} "
            + (f"({shared} of them also training images)" if shared else "(none of them trained on)"))


def run_evaluate(args: argparse.Namespace) -> dict:
    """``autoloss evaluate``: the COCO metrics of a saved model on a dataset."""
    try:
        metadata = read_experiment_metadata(args.checkpoint)
        metrics = evaluate_checkpoint(args.checkpoint, data=args.data, split=args.split)
    except FileNotFoundError as error:
        raise UsageError(str(error), where="RUN_DIR") from None
    return {
        "command": "evaluate",
        "checkpoint": str(run_directory(args.checkpoint)),
        "data": args.data or metadata["eval_data"],
        "split": args.split or metadata["eval_split"],
        "metrics": _finite(metrics),
    }


def format_evaluate(report: dict) -> str:
    """Text report of ``evaluate``: the AP table."""
    header = f"{report['checkpoint']} on {report['data']} {report['split']}:"
    return "\n".join([header, format_ap_table(_nan(report["metrics"]))])


def _finite(value):
    """Return ``value`` with NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _nan(metrics: dict) -> dict:
    return {key: math.nan if value is None else value for key, value in metrics.items()}


def add_detector_commands(sub: argparse._SubParsersAction, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``train`` and ``evaluate`` subparsers to the ``autoloss`` parser."""
    train = sub.add_parser("train", parents=[json_flag], help="train a detector with chosen losses and report its AP")
    train.add_argument("--detector", default="fcos", metavar="{" + ",".join(DETECTORS) + "}",
                       help="one-stage fcos (sigmoid-form cls loss, default) or two-stage faster-rcnn (softmax form)")
    train.add_argument("--data", default="shapes", help=DATA_HELP)
    train.add_argument("--eval-data", metavar="SPEC", help="separate evaluation data, read whole unless it has "
                       "splits of its own (default: --data's evaluation split or held-out part)")
    train.add_argument("--data-workers", type=int, default=0, help="input pipeline worker processes (default 0: "
                       "decode in background threads; use a few for large images)")
    train.add_argument(
        "--loss-cls",
        metavar="NAME_OR_EXPR",
        help="classification loss: for fcos focal (default), bce, a zoo name (cse_b_cls) or a sigmoid-form "
        "formula; for faster-rcnn cross_entropy (default), a zoo name (cse_a_cls) or a softmax-form formula",
    )
    train.add_argument(
        "--loss-reg",
        default="giou",
        metavar="NAME_OR_EXPR",
        help="regression loss: giou, iou, diou, ciou, l1, smooth_l1, a zoo name (cse_b_reg) "
        "or a reg-form formula over i, u, e",
    )
    train.add_argument("--steps", type=int, help="training steps (default: the detector's schedule, "
                       + ", ".join(f"{name} {d.default_steps}" for name, d in DETECTORS.items()) + ")")
    train.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per step, split over all local devices (default {DEFAULT_BATCH_SIZE})",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of initialization and data order (default 0)")
    train.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default runs/train-TIMESTAMP); "
        "an existing one with a checkpoint of the same settings is resumed",
    )
    train.add_argument("--image-size", type=int, default=128, help="shorter image side S in pixels, aspect ratio "
                       "kept (default 128)")
    train.add_argument("--max-size", type=int, help="longer image side at most L (default: --image-size, i.e. fit "
                       "into a square; the paper uses 800 and 1333)")
    train.add_argument("--preset", default="tiny", help="detector size: tiny (default), resnet18 (fcos), resnet50")
    train.add_argument("--backbone-weights", metavar="FILE", help="ImageNet-pretrained ResNet weights in torchvision's "
                       "layout (.pth state dict, or .safetensors/.npz with the same names) for --preset resnet18 or "
                       "resnet50; the backbone then has frozen BatchNorm and a frozen stem and first stage")
    train.add_argument("--dry-run", action="store_true", help="check every setting, path and file, report every "
                       "problem (exit 2) or the plan: images per split, canvas, per-step memory, steps and the time "
                       "estimated from a few timed steps; nothing is trained (the built-in dataset is generated if "
                       "missing)")
    train.add_argument("--precision", choices=tuple(PRECISIONS), default="float32", help="compute dtype of the "
                       "layers: bfloat16 for speed on GPUs/TPUs (parameters and losses stay float32; default float32)")
    train.add_argument(
        "--eval-split",
        default="final_val",
        choices=SPLITS,
        help="split evaluated after training (shapes and voc; default final_val)",
    )

    evaluate = sub.add_parser("evaluate", parents=[json_flag], help="COCO AP of a model saved by autoloss train")
    evaluate.add_argument("checkpoint", help="run directory written by autoloss train (or its checkpoint.msgpack)")
    evaluate.add_argument("--data", help="dataset spec as for train (default: the one it was evaluated on)")
    evaluate.add_argument("--split", choices=SPLITS, help="split (default: the one it was evaluated on)")


DETECTOR_COMMANDS = {
    "train": (run_train, format_train),
    "evaluate": (run_evaluate, format_evaluate),
}
