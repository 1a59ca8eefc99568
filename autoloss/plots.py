"""Plots of losses and of search runs (matplotlib, no display needed), and the ``autoloss plot`` command.

Every function returns a ``matplotlib.figure.Figure`` and, given ``path=``, also writes it there:

* ``plot_classification_loss(candidate)``: loss and dL/dx against the logit, positives at several
  IoUs and negatives, beside BCE/focal (``sigmoid``) or CE (``softmax``);
* ``plot_regression_loss(candidate)``: loss against IoU and against the distance a box is moved,
  at several box sizes, beside IoU/GIoU;
* ``plot_loss(candidate)``: whichever of the two fits the candidate's form;
* ``plot_search_progress(generations)``, ``plot_funnel(funnel)`` and ``plot_pareto(front)``: a search run
  (data layout in ``autoloss.plots_search``).
"""

from __future__ import annotations

import argparse

from autoloss.export import resolve_candidate
from autoloss.plots_losses import (
    DEFAULT_BASELINES,
    plot_classification_loss,
    plot_loss,
    plot_regression_loss,
    save_figure,
)
from autoloss.plots_search import FUNNEL_STAGES, plot_funnel, plot_pareto, plot_search_progress
from symbolic.forms import FORMS

__all__ = [
    "DEFAULT_BASELINES",
    "FUNNEL_STAGES",
    "plot_classification_loss",
    "plot_funnel",
    "plot_loss",
    "plot_pareto",
    "plot_regression_loss",
    "plot_search_progress",
    "save_figure",
]


def run_plot(args: argparse.Namespace) -> dict:
    """``autoloss plot EXPR --form F -o FILE``: draw the formula beside its form's baselines."""
    candidate = resolve_candidate(args.expr, args.form)
    baselines = DEFAULT_BASELINES[candidate.form.name] if args.baseline is None else tuple(args.baseline)
    plot_loss(candidate, baselines=baselines, path=args.output)
    return {"path": args.output, "form": candidate.form.name, "infix": candidate.infix(), "key": candidate.key,
            "baselines": list(baselines)}


def format_plot(report: dict) -> str:
    """Text report of ``plot``: what was drawn and where."""
    beside = f" beside {', '.join(report['baselines'])}" if report["baselines"] else ""
    return f"plotted {report['infix']} ({report['form']}){beside} to {report['path']}"


PLOT_COMMANDS = {"plot": (run_plot, format_plot)}


def add_plot_parser(sub, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``plot`` subcommand to the CLI's subparsers."""
    plot = sub.add_parser("plot", parents=[json_flag], help="plot a formula's loss (and slope) beside baselines")
    plot.add_argument("expr", metavar="EXPR", help="the formula, infix or the authors' prefix format")
    plot.add_argument("--form", choices=sorted(FORMS), help="the loss form of the formula (required)")
    plot.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="image file to write; the extension picks the format (png, svg, pdf)")
    plot.add_argument("--baseline", action="append", metavar="NAME",
                      help="a zoo loss of the same form to draw dashed (repeatable; default: "
                      "bce and focal, ce, or iou and giou)")
