"""Loss combinations on each detector: CSE-Autoloss Tables 6 and 7 in miniature.

    python -m benchmarks.loss_combination --preset smoke|demo|default|small|paper [--detectors fcos,faster-rcnn]
        [--seeds N] [--found RUN_DIR] [--only TEXT] [--work-dir DIR] [--records DIR [--report-only]]
        [--workers N] [--dask-scheduler ADDRESS] [--write]

Rows per detector, each trained from scratch at every seed and evaluated on final_val (AP, AP50,
AP75, AP_S, AP_M, AP_L as mean ± std over the seeds, and minutes per run):

* the baseline pair: FCOS focal + GIoU; Faster R-CNN cross-entropy + L1 and cross-entropy + GIoU
  (GIoU is this project's default regression loss, so that pair is the reference "ref");
* the published searched classification loss with the default regression loss, the default
  classification loss with the searched regression loss, and the searched pair (FCOS:
  CSE-Autoloss-B, Faster R-CNN: CSE-Autoloss-A, as released by the authors; ``symbolic.zoo``);
* the regression variants IoU, GIoU, DIoU and CIoU with the default classification loss;
* with ``--found RUN_DIR``: the best losses of that ``autoloss search`` run, where their form fits
  the detector (the regression loss always; the classification loss on the detector searched).

Presets (``benchmarks.loss_rows.PRESETS``): ``smoke`` (2 steps on 8 tiny images, checks that
every row runs), ``demo`` (FCOS 600 / Faster R-CNN 300 steps, batch 16, 2 seeds: 42 minutes for
both detectors on two CPU cores that other work shared; far from trained detectors), ``default`` (each
tiny detector's `autoloss train` schedule, FCOS 6000 steps at 5e-3 and Faster R-CNN 3000 at 2e-3, 3 seeds:
trained detectors near 50 AP, 8-12 minutes a run on two CPU cores, about 7 hours for both tables),
``small`` (2000 / 1000 steps, 3 seeds) and ``paper`` (the default 5000-step schedule with ResNet-50
detectors on 512 px images, 3 seeds: for GPUs). Every (row, seed) is an independent training, so a
large preset is spread over a cluster with ``--dask-scheduler tcp://HOST:PORT`` (one Dask task each;
the workers need this package installed) or over local processes with ``--workers N``. ``--only``
selects rows and ``--work-dir`` keeps the run directories, where finished runs are reused, so machines
sharing that folder can also split a table by hand (see ``benchmarks.loss_rows``). ``--records DIR`` keeps
each finished (row, seed) as a small JSON file that later runs read instead of training (the default
preset's are committed in ``benchmarks/records/loss_tables/default``), and ``--report-only`` writes the
table of what that folder holds without training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loss_rows import PUBLISHED, Loss, Row  # noqa: E402
from benchmarks.loss_table import found_rows, main_of  # noqa: E402
from detection.detectors import get_detector  # noqa: E402

TITLE = "Loss combinations, CSE-Autoloss Tables 6-7 in miniature"
REG_VARIANTS = {"iou": "IoU", "giou": "GIoU", "diou": "DIoU", "ciou": "CIoU"}


def detector_rows(detector: str) -> list[Row]:
    """The baseline, published-searched and regression-variant rows of ``detector`` on the main dataset."""
    spec = get_detector(detector)
    default_cls, default_reg = Loss.named(spec.default_cls_loss), Loss.named(spec.default_reg_loss)
    cls_name, reg_name, pair_name = PUBLISHED[detector]
    searched_cls, searched_reg = Loss.named(cls_name), Loss.named(reg_name)
    rows = []
    if detector == "faster-rcnn":
        rows.append(Row(detector, "baseline (L1)", default_cls, Loss.named("l1")))
    rows += [
        Row(detector, "baseline", default_cls, default_reg, reference=True),
        Row(detector, f"searched cls ({pair_name}) + default reg", searched_cls, default_reg),
        Row(detector, f"default cls + searched reg ({pair_name})", default_cls, searched_reg),
        Row(detector, f"searched pair ({pair_name})", searched_cls, searched_reg),
    ]
    rows += [Row(detector, f"reg variant: {title}", default_cls, Loss.named(name))
             for name, title in REG_VARIANTS.items()]
    return rows


def build_rows(args: argparse.Namespace, found: dict[str, Loss] | None, source: str | None) -> list[Row]:
    """All rows of the chosen detectors, with the found losses' rows where they fit."""
    rows = []
    for detector in args.detectors:
        rows += detector_rows(detector)
        if found:
            rows += found_rows(found, source, detector, "shapes", show_unfit=False)
    return rows


def main(argv: list[str] | None = None) -> str:
    """Run the table from the command line; return its RESULTS.md section."""
    return main_of("benchmarks.loss_combination", TITLE, __doc__.splitlines()[0], build_rows, detectors=True,
                   argv=argv)


if __name__ == "__main__":
    main()
