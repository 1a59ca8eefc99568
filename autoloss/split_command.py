"""``autoloss split-coco``: carve a seeded search-validation split out of a COCO training annotation file."""

from __future__ import annotations

import argparse

from detection.coco_split import DEFAULT_SEARCH_VAL, split_coco


def run_split_coco(args: argparse.Namespace) -> dict:
    """``autoloss split-coco ANN.json --search-val N --seed S --out DIR``: write the two files, report their counts."""
    split = split_coco(args.annotations, args.out, search_val=args.search_val, seed=args.seed, final=args.final)
    return {"command": "split-coco", "source": args.annotations, **split.to_dict()}


def format_split_coco(report: dict) -> str:
    """Text report of ``split-coco``: the two files and their counts."""
    return "\n".join(
        [
            f"search training: {report['train_images']} images, {report['train_annotations']} annotations -> "
            f"{report['train_file']}",
            f"search validation: {report['val_images']} images, {report['val_annotations']} annotations -> "
            f"{report['val_file']} (seed {report['seed']})",
        ]
    )


def add_split_parser(sub: argparse._SubParsersAction, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``split-coco`` subparser."""
    parser = sub.add_parser(
        "split-coco",
        parents=[json_flag],
        help="hold out a seeded search-validation split of a "
        "COCO training file (the paper's 10k images) and write the remaining training file",
    )
    parser.add_argument("annotations", metavar="ANN.json", help="COCO instances file of the training images")
    parser.add_argument(
        "--search-val",
        type=int,
        default=DEFAULT_SEARCH_VAL,
        help=f"images held out for the search's validation (default {DEFAULT_SEARCH_VAL})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    parser.add_argument(
        "--final",
        metavar="FINAL.json",
        help="annotation file of the final evaluation: refused when it shares images with ANN.json",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for search_train.json and search_val.json")


SPLIT_COMMANDS = {"split-coco": (run_split_coco, format_split_coco)}
