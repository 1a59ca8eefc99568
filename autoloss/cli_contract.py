"""What the command line answers when a command does not simply succeed: the one place that decides it.

* **Usage errors** (exit 2): bad input, as explicit exception types (:data:`USAGE_ERRORS`) — this
  package's :class:`UsageError` and the typed errors of the other packages (a formula that does not
  parse, a dataset that cannot be read, a setting out of range, ...). A bare ``ValueError`` is *not*
  one (it would hide a bug as a user's mistake), except from the few functions listed in
  :data:`INPUT_CHECKS`, which validate their input with one.
* **A failed check** (exit 1): the command ran and its verdict is negative (``autoloss verify`` of a
  formula that fails CPV); the report is printed as usual.
* **Internal errors** (exit 1): anything else; the traceback goes to stderr with a line asking for
  a bug report.
* **Interrupted** (exit 130): Ctrl-C.

With ``--json`` every outcome is one JSON object on stdout, errors included:
``{"error": {"message": ..., "where": ..., "hint": ..., "kind": "usage" | "internal" | "interrupted",
"type": ...}}``. ``where`` is the argument, setting, file or position of the problem and ``hint`` how to
fix it, each None when unknown.
"""

from __future__ import annotations

import re
import traceback

from autoloss.executors import ExecutorUnavailable
from autoloss.export import ExportError
from autoloss.run_store import RunDirectoryError
from autoloss.search_config import SearchConfigError
from detection.errors import DatasetError
from detection.pretrained import BackboneWeightsError
from detection.training import TrainingDiverged
from symbolic.canonical import InvalidCandidate
from symbolic.parser import ParseError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
BUG_REPORT = ("this is a bug in cse-autoloss; please report it with the command you ran and the traceback "
              "above (on stderr)")


class UsageError(ValueError):
    """Bad input from the user: what is wrong, where (an argument, setting, file or position), how to fix it."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message if hint is None else f"{message}; {hint}")
        self.message, self.where, self.hint = message, where, hint


class Interrupted(Exception):
    """The user interrupted the command (Ctrl-C); ``hint`` says how to continue."""

    def __init__(self, message: str = "interrupted", *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.where, self.hint = message, where, hint


USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, ParseError, InvalidCandidate, DatasetError, SearchConfigError, RunDirectoryError,
    ExecutorUnavailable, ExportError, TrainingDiverged, BackboneWeightsError,
)
# Functions that validate their (user-given) input with a bare ValueError: one raised in their own body is a
# usage error. They belong to other packages; once they raise a typed error, their entry goes.
INPUT_CHECKS = frozenset({
    ("detection.experiment", "write_experiment_metadata"),  # --out holds a run with other settings
    ("detection.experiment", "read_experiment_metadata"),  # a run's experiment.json is not JSON
    ("detection.experiment", "load_trained_model"),  # a run's checkpoint cannot be read
    ("detection.experiment", "check_same_classes"),  # evaluation data with other classes
    ("detection.training", "_check_resumable"),  # a checkpoint of other settings
    ("detection.checkpoints", "load_checkpoint"),  # a checkpoint of another model
    ("detection.training", "shard_batch"),  # a batch size the devices cannot split
    ("autoloss.export", "resolve_candidate"),  # neither a run directory nor a formula; --form missing
    ("autoloss.export", "found_loss"),  # --branch or --rank a run does not have
    ("autoloss.export", "write_output"),  # -o FILE cannot be written
    ("autoloss.loss_specs", "_resolve"),  # --loss-cls/--loss-reg names no loss of the form
    ("autoloss.plots_losses", "_baselines"),  # plot --baseline of another form
    ("symbolic.zoo", "known_loss"),  # a name the zoo does not have
    ("detection.datasets", "load_dataset"),  # a dataset spec of no known form
    ("detection.shapes_spec", "parse_shapes_options"),  # shapes:KEY=VALUE with an unknown key or bad value
    ("detection.detectors", "get_detector"),  # an unknown detector
    ("detection.detectors", "make_config"),  # a preset the detector does not have
})
_HINT_VERBS = ("choose", "use", "give", "put", "check", "continue", "resume", "restore", "write", "retrain",
               "run", "start", "leave", "fix", "lower", "evaluate", "delete", "remove", "set", "try", "install",
               "point", "copy")


def is_usage_error(error: BaseException) -> bool:
    """Whether ``error`` means bad input (see the module docstring)."""
    if isinstance(error, USAGE_ERRORS):
        return True
    if type(error) is not ValueError or error.__traceback__ is None:
        return False
    frame = traceback.extract_tb(error.__traceback__)[-1]
    module = frame.filename.replace("\\", "/").removesuffix(".py").replace("/", ".")
    return any(module.endswith(name) and frame.name == function for name, function in INPUT_CHECKS)


def error_object(error: BaseException, kind: str) -> dict:
    """The JSON error object of ``error`` (``kind``: usage, internal or interrupted)."""
    if kind == "internal":
        last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        where = f"{last[0].filename}:{last[0].lineno} in {last[0].name}" if last else None
        message = f"internal error: {type(error).__name__}: {error}"
        return {"message": message, "where": where, "hint": BUG_REPORT, "kind": kind, "type": type(error).__name__}
    message, where, hint = describe(error)
    return {"message": message, "where": where, "hint": hint, "kind": kind, "type": type(error).__name__}


def describe(error: BaseException) -> tuple[str, str | None, str | None]:
    """(message, where, hint) of a usage error: from its attributes, else split from its text."""
    if isinstance(error, ParseError):
        hint = f"expected {error.expected}" if error.expected else None
        return error.message, f"column {error.position + 1} of {error.text[:60]!r}", hint
    message, hint = getattr(error, "message", None), getattr(error, "hint", None)
    if not isinstance(message, str) or hint is None:
        message, hint = _split_hint(str(error))
    return message, getattr(error, "where", None), hint


def _split_hint(text: str) -> tuple[str, str | None]:
    """(what is wrong, how to fix it) of a message written as ``problem; fix``."""
    for match in re.finditer(r"; ", text):
        tail = text[match.end():]
        if tail.split(" ", 1)[0].lower() in _HINT_VERBS:
            return text[:match.start()], tail
    return text, None
