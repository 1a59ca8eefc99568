"""Export a loss: a standalone JAX, PyTorch, MMDetection or torchvision module, SymPy text, LaTeX, or the
authors' prefix string.

The modules (``autoloss.export_modules``, ``export_mmdet``, ``export_torchvision``) are Python
source generated from the operator table's one text of each guarded primitive and the
candidate's lowered program, so they compute exactly what ``Candidate.to_jax()`` computes; their
docstring carries the formula, its CPV verdict and, for a found loss, its run, branch and rank.
``--trainable-constants`` makes the loss's numeric constants a parameter (``symbolic.constants``).

The prefix export is the authors' format, which their MMDetection ``tools/train.py`` takes
as ``--loss_cls`` / ``--loss_reg``.

What is exported is a formula of a form, or a loss a search found: given a run directory, the
best (or ``--rank N``-th) loss of its hall of fame for ``--branch`` (the run's only branch by default).
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from autoloss.export_mmdet import mmdet_module_source
from autoloss.export_modules import ExportError, ExportHeader, Provenance, loss_module_source
from autoloss.export_torchvision import torchvision_module_source
from detection.checkpoints import write_atomically
from symbolic.candidate import Candidate
from symbolic.canonical import InvalidCandidate
from symbolic.forms import FORMS
from symbolic.lowering import LoweringError
from symbolic.parser import ParseError

MODULE_FORMATS = ("jax", "torch", "mmdet", "torchvision")
TEXT_FORMATS = ("sympy", "latex", "prefix")
EXPORT_FORMATS = MODULE_FORMATS + TEXT_FORMATS
TRAINABLE_FORMATS = ("jax", "torch", "mmdet")  # where --trainable-constants has a meaning
NEEDS_TORCH = ("torch", "mmdet", "torchvision")

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportHeader", "Provenance", "export_text", "jax_module_source"]


def jax_module_source(candidate: Candidate, *, header: ExportHeader | None = None,
                      trainable_constants: bool = False) -> str:
    """Source of a standalone module (only jax and math) defining the candidate as ``loss``."""
    return loss_module_source(candidate, "jax", header=header, trainable_constants=trainable_constants)


def export_text(candidate: Candidate, to: str, *, header: ExportHeader | None = None,
                trainable_constants: bool = False) -> str:
    """The candidate in the format ``to`` (one of EXPORT_FORMATS), as text ending in a newline.

    ExportError when the candidate cannot map to ``to`` (a softmax-form loss for torchvision's FCOS)
    or ``trainable_constants`` is asked of a format without parameters.
    """
    if to not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if trainable_constants and to not in TRAINABLE_FORMATS:
        raise ExportError(f"--trainable-constants (the constants as a parameter) applies to --to jax, torch and "
                          f"mmdet, not {to}: leave it out, or export --to torch")
    try:
        if to in ("jax", "torch"):
            return loss_module_source(candidate, to, header=header, trainable_constants=trainable_constants)
        if to == "mmdet":
            return mmdet_module_source(candidate, header=header, trainable_constants=trainable_constants)
        if to == "torchvision":
            return torchvision_module_source(candidate, header=header)
    except LoweringError as error:
        raise ExportError(f"{candidate.infix()} cannot be exported: {error}") from None
    return {"sympy": f"{candidate.expr}\n", "latex": f"{candidate.latex()}\n", "prefix": f"{candidate.prefix()}\n"}[to]


def resolve_candidate(source: str, form: str | None, *, branch: str | None = None,
                      rank: int | None = None) -> Candidate:
    """The candidate a command is about: a formula (infix or prefix) of ``form``, or a run directory's found loss."""
    if os.path.isdir(source):
        return found_loss(source, branch=branch, rank=rank, form=form).candidate
    if branch is not None or rank is not None:
        raise ValueError(f"--branch and --rank pick a found loss of a search run directory; {source} is not a "
                         "directory")
    if form is None:
        raise ValueError("give the loss form of the formula with --form (or give a search run directory)")
    try:
        return Candidate.parse(source, form)
    except (ParseError, InvalidCandidate) as error:
        if os.sep not in source:
            raise
        raise ValueError(f"{source} is neither a search run directory (no such directory) nor a formula "
                         f"({error})") from None


def found_loss(run_dir: str | os.PathLike, *, branch: str | None = None, rank: int | None = None,
               form: str | None = None):
    """The ``rank``-th (default: best) hall-of-fame loss of ``branch`` (default: the only one) of a run, a FoundLoss."""
    from autoloss.search_result import SearchResult  # the search's modules only when a run is asked for

    result = SearchResult.load(run_dir)
    searched = result.config.branches
    if branch is None:
        if len(searched) > 1:
            raise ValueError(f"{run_dir} searched the {' and '.join(searched)} branches; choose one with --branch")
        branch = searched[0]
    elif branch not in searched:
        raise ValueError(f"{run_dir} searched only the {searched[0]} branch, not {branch}; give --branch "
                         f"{searched[0]} or leave it out")
    ranked = [loss for loss in result.hall_of_fame if loss.branch == branch]
    if not ranked:
        raise ValueError(f"{run_dir} has no found {branch} loss yet: no candidate of that branch finished the "
                         "proxy task")
    rank = 1 if rank is None else rank
    if not 1 <= rank <= len(ranked):
        raise ValueError(f"{run_dir}: the {branch} hall of fame holds {len(ranked)} loss"
                         f"{'es' if len(ranked) > 1 else ''}; give --rank from 1 to {len(ranked)}")
    loss = ranked[rank - 1]
    if form is not None and form != loss.form:
        raise ValueError(f"the {branch} losses of {run_dir} are of the {loss.form} form, not {form}; leave out --form")
    return loss


def write_output(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a file the user asked for (``write_atomically``); a ValueError saying why if it cannot be written."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}; choose another path") from None


def run_export(args: argparse.Namespace) -> dict:
    """``autoloss export (EXPR --form F | RUN_DIR [--branch B] [--rank N]) --to FORMAT``: the loss as text."""
    header = None
    if os.path.isdir(args.expr):
        loss = found_loss(args.expr, branch=args.branch, rank=args.rank, form=args.form)
        candidate, found = loss.candidate, {"run_dir": args.expr, "branch": loss.branch, "rank": loss.rank}
        run_name = os.path.basename(os.path.normpath(os.path.abspath(args.expr)))
        header = ExportHeader(f"{loss.cpv} (the search's verdict)",
                              Provenance(run_name, loss.branch, loss.rank, loss.proxy_ap))
    else:
        candidate, found = resolve_candidate(args.expr, args.form, branch=args.branch, rank=args.rank), None
    if args.to in MODULE_FORMATS and header is None:
        header = ExportHeader(verdict_line(candidate))
    text = export_text(candidate, args.to, header=header, trainable_constants=args.trainable_constants)
    if args.output is not None:
        write_output(args.output, text)
    note = None
    if args.to in NEEDS_TORCH and not torch_installed():
        note = (f"torch is not installed here; the module is written all the same and needs torch"
                f"{' and torchvision' if args.to == 'torchvision' else ''} where it runs")
    return {"format": args.to, "text": text, "path": args.output, "form": candidate.form.name,
            "infix": candidate.infix(), "key": candidate.key, "found": found,
            "trainable_constants": args.trainable_constants, "note": note}


def torch_installed() -> bool:
    """Whether torch can be imported here (the torch exports are written either way)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def verdict_line(candidate: Candidate) -> str:
    """The CPV verdict of a formula in one line, e.g. ``passed (monotonicity proved, finiteness sampled)``."""
    from symbolic.cpv import verify

    verdict = verify(candidate)
    statuses = ", ".join(f"{p.name} {p.status}" for p in verdict.properties if p.required)
    return f"{'passed' if verdict.passed else 'FAILED'} ({statuses})"


def format_export(report: dict) -> str:
    """Text report of ``export``: the exported text itself, or where it was written."""
    if report["path"] is None:
        return report["text"].rstrip("\n") + (f"\n# note: {report['note']}" if report.get("note") else "")
    found = report.get("found")
    origin = f", rank {found['rank']} of the {found['branch']} branch of {found['run_dir']}," if found else ""
    note = f"\nnote: {report['note']}" if report.get("note") else ""
    return f"wrote the {report['format']} export of {report['infix']} ({report['form']}){origin} to {report['path']}" \
        f"{note}"


EXPORT_COMMANDS = {"export": (run_export, format_export)}


def add_export_parser(sub, json_flag: argparse.ArgumentParser) -> None:
    """Add the ``export`` subcommand to the CLI's subparsers."""
    export = sub.add_parser("export", parents=[json_flag], help="a formula, or a loss a search found, as a "
                            "standalone JAX, PyTorch, MMDetection or torchvision module, SymPy, LaTeX or the authors' "
                            "prefix string")
    export.add_argument("expr", metavar="EXPR|RUN_DIR", help="the formula, infix or the authors' prefix format; or "
                        "the run directory of a search, to export a loss it found")
    export.add_argument("--form", choices=sorted(FORMS), help="the loss form of the formula (required for a formula)")
    export.add_argument("--branch", choices=("cls", "reg"), help="with RUN_DIR: the branch whose found loss to "
                        "export (default: the run's only branch)")
    export.add_argument("--rank", type=int, metavar="N", help="with RUN_DIR: the N-th loss of the branch's hall "
                        "of fame (default 1, the best)")
    export.add_argument("--to", required=True, choices=EXPORT_FORMATS,
                        help="jax: a module of pure JAX functions needing only jax; torch: pure PyTorch functions "
                        "needing only torch; mmdet: the torch module with an MMDetection loss class of the form; "
                        "torchvision: the torch module with install(model) for torchvision's FCOS; sympy; latex; "
                        "prefix: the authors' format, for --loss_cls/--loss_reg of their MMDetection tools/train.py")
    export.add_argument("--trainable-constants", action="store_true",
                        help="jax, torch, mmdet: the loss's numeric constants as a parameter (loss(constants, ...); "
                        "torch adds an nn.Module Loss with them as an nn.Parameter)")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (atomically) instead of stdout")
