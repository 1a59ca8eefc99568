"""Transfer of searched losses: to the other detector and to a dataset with other statistics.

    python -m benchmarks.transfer --preset smoke|demo|default|small|paper [--seeds N] [--found RUN_DIR]
        [--only TEXT] [--work-dir DIR] [--records DIR [--report-only]] [--workers N]
        [--dask-scheduler ADDRESS] [--write]

The published CSE-Autoloss-A (searched on Faster R-CNN) and -B (searched on FCOS) on both detectors
and on two datasets, each beside that detector's baseline (focal + GIoU, cross-entropy + GIoU) on
the same data: the built-in ``shapes`` and a ``variant`` generated with another seed family, 6
instead of 8 classes, other object sizes and fewer objects per image
(``benchmarks.loss_rows.VARIANT_OPTIONS``). A pair is trained where its form allows: A's
classification loss is of the softmax form and only trains Faster R-CNN's classifier, B's is of the
sigmoid form and only trains FCOS's; both regression losses train both detectors (with the
detector's default classification loss). A pair that cannot be trained is a row saying why.

``--found RUN_DIR`` adds the best losses of a search run on both detectors and datasets: the
regression loss everywhere, the classification loss where its form is the detector's (a sigmoid-form
loss found with FCOS cannot train the softmax head of Faster R-CNN; the table says so).

Presets, workers, Dask, ``--work-dir`` and ``--records`` are those of ``benchmarks.loss_combination``; with
the same ``--work-dir`` (or ``--records``) and preset, the runs both tables share (baselines, the published
pairs on shapes) are trained once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loss_rows import DETECTOR_ORDER, PUBLISHED, Loss, Row  # noqa: E402
from benchmarks.loss_table import found_rows, main_of  # noqa: E402
from detection.detectors import get_detector  # noqa: E402
from symbolic.zoo import KNOWN_LOSSES  # noqa: E402

TITLE = "Transfer of searched losses across detectors and datasets"
DATASETS = ("shapes", "variant")


def published_rows(detector: str, data: str) -> list[Row]:
    """The baseline and both published pairs (or why not) and regression losses on ``detector`` and ``data``."""
    spec = get_detector(detector)
    default_cls, default_reg = Loss.named(spec.default_cls_loss), Loss.named(spec.default_reg_loss)
    rows = [Row(detector, "baseline", default_cls, default_reg, data, reference=True)]
    for searched_on in sorted(PUBLISHED, key=lambda name: name != detector):  # its own pair first
        cls_name, reg_name, pair_name = PUBLISHED[searched_on]
        where = "" if searched_on == detector else f" (searched on {searched_on})"
        form = KNOWN_LOSSES[cls_name].form
        unfit = (f"{cls_name} is a {form}-form loss; the {detector} classifier takes the {spec.cls_form} form"
                 if form != spec.cls_form else None)
        rows.append(Row(detector, f"{pair_name} pair{where}", Loss.named(cls_name), Loss.named(reg_name), data,
                        not_applicable=unfit))
        rows.append(Row(detector, f"default cls + {pair_name} reg{where}", default_cls, Loss.named(reg_name), data))
    return rows


def build_rows(args: argparse.Namespace, found: dict[str, Loss] | None, source: str | None) -> list[Row]:
    """Rows of both detectors on both datasets, with the found losses' rows (and why not) when given."""
    rows = []
    for data in DATASETS:
        for detector in DETECTOR_ORDER:
            rows += published_rows(detector, data)
            if found:
                rows += found_rows(found, source, detector, data, show_unfit=True)
    return rows


def main(argv: list[str] | None = None) -> str:
    """Run the table from the command line; return its RESULTS.md section."""
    return main_of("benchmarks.transfer", TITLE, __doc__.splitlines()[0], build_rows, detectors=False, argv=argv)


if __name__ == "__main__":
    main()
