"""Exported loss modules: standalone Python source of a candidate for JAX or PyTorch.

A module needs only its array library (and ``math``): its backend class, guard constants and
guarded primitives are copied from their one text in ``symbolic/`` (see
``symbolic.module_source``), and ``loss(x, y, w)`` / ``loss(i, u, e)`` runs the candidate's
lowered program, the very instructions ``Candidate.to_jax()`` runs. So the module gives the
same values and gradients as ``Candidate.to_jax()``; nothing is ``exec``'d and no SymPy printer
is used. A reg-form module also has ``box_inputs(pred, target)``, the (i, u, e) of aligned boxes.

With trainable constants the candidate's constants (``symbolic.constants``: which numbers they
are, in which order) are a parameter: ``CONSTANTS`` holds their values and the function is
``loss(constants, x, y, w)``; a torch module adds ``Loss``, an ``nn.Module`` whose
``constants`` is an ``nn.Parameter``.

The module's docstring says what the loss is (formula in infix and LaTeX, the authors' prefix,
form, CPV verdict) and where it comes from (run, branch, rank); the text depends on nothing
else (no time, no path), so the same loss exports to the same bytes.
"""

from __future__ import annotations

import dataclasses
import textwrap

from autoloss.markdown import percent
from symbolic import primitives
from symbolic.candidate import Candidate
from symbolic.constants import lift_constants
from symbolic.module_source import SourceWriter, loss_statements

TITLES = {"jax": "JAX", "torch": "PyTorch"}
_STDLIB = {"math", "functools"}
USAGE = {
    "jax": "as a pure JAX function: wrap it in jax.jit, jax.grad or jax.vmap as needed",
    "torch": "as a pure PyTorch function, differentiable by autograd; the inputs become tensors of one float dtype "
             "(at least float32) on the device of the first tensor",
}


class ExportError(ValueError):
    """The candidate, or the export's settings, cannot make the requested export."""


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a found loss comes from: its run (the directory's name), branch and hall-of-fame rank."""

    run: str
    branch: str
    rank: int
    proxy_ap: float | None = None

    def describe(self) -> str:
        """One line, e.g. ``rank 1 of the cls branch of run demo (proxy AP 14.63 %)``."""
        ap = "" if self.proxy_ap is None else f" (proxy AP {percent(self.proxy_ap, 2)} %)"
        return f"rank {self.rank} of the {self.branch} branch of search run {self.run}{ap}"


@dataclasses.dataclass(frozen=True)
class ExportHeader:
    """What a module's docstring says beyond the formula: the CPV verdict and the provenance."""

    cpv: str = "not checked (autoloss verify EXPR --form F checks it)"
    provenance: Provenance | None = None


@dataclasses.dataclass
class ModuleText:
    """A module being written: docstring, module-level names, the definitions its code needs, then its blocks.

    ``writer`` writes the code's calls of primitives and collects what they need, so code may be
    added (``writer.call``) until ``render``.
    """

    docstring: list[str]
    names: list[str]
    writer: SourceWriter
    blocks: list[str] = dataclasses.field(default_factory=list)

    def render(self) -> str:
        """The module's source text: the standard library's imports first, then the others."""
        imports = sorted(set(self.writer.imports()),
                         key=lambda line: (line.split()[1].split(".")[0] not in _STDLIB, line))
        standard = [line for line in imports if line.split()[1].split(".")[0] in _STDLIB]
        groups = ["\n".join(standard), "\n".join(imports[len(standard):]), "\n".join(self.names)]
        head = "\n\n".join(["\n".join(self.docstring)] + [group for group in groups if group])
        return "\n\n\n".join([head, *self.writer.definitions(), *self.blocks]) + "\n"


def module_text(candidate: Candidate, backend: str, *, header: ExportHeader | None = None,
                trainable_constants: bool = False) -> ModuleText:
    """The parts of the candidate's module for ``backend`` ("jax" or "torch"): its docstring, names and functions."""
    form = candidate.form
    lifted = lift_constants(candidate)
    writer = SourceWriter(backend)
    parameter = "constants" if trainable_constants else None
    body = loss_statements(lifted.program, form, writer, lifted_constants=parameter)
    signature = f"loss({', '.join(((parameter,) if parameter else ()) + form.input_names)})"
    shape = "one value per sample (the broadcast shape without its class axis)" if form.vector else \
        "the broadcast shape of the inputs"
    docstring = _docstring(candidate, backend, header or ExportHeader(), signature, shape, trainable_constants)
    names = [f"FORM = {form.name!r}", f"INPUTS = {form.input_names!r}", f"FORMULA = {candidate.infix()!r}",
             f"PREFIX = {candidate.prefix()!r}"]
    if trainable_constants:
        names.append(f"CONSTANTS = {lifted.values!r}  # {', '.join(map(str, lifted.exact)) or 'none'}")
    what = f"the values of CONSTANTS, {'a jax array' if backend == 'jax' else 'a tensor'}; then the inputs" \
        if trainable_constants else "the inputs"
    function = "\n".join([f"def {signature}:",
                          f'    """The unreduced {form.name}-form loss of FORMULA; takes {what}."""',
                          *(f"    {line}" for line in body)])
    blocks = [function]
    if form.name == "reg":
        areas = writer.call(primitives.box_areas, f"*{writer.word('as_inputs', 'pred', 'target')}")
        blocks.append("\n".join([
            "def box_inputs(pred, target):",
            '    """The inputs (i, u, e) of ``loss`` for aligned (x1, y1, x2, y2) box pairs of shape [..., 4]."""',
            f"    return {areas}"]))
    return ModuleText(docstring, names, writer, blocks)


def _docstring(candidate: Candidate, backend: str, header: ExportHeader, signature: str, shape: str,
               trainable: bool) -> list[str]:
    latex = candidate.latex()
    if '"""' in latex or latex.endswith("\\"):
        raise ExportError("the LaTeX of this candidate cannot be put in a docstring")
    form = candidate.form
    lines = [f'r"""{form.name}-form detection loss, exported by cse-autoloss as a {TITLES[backend]} module.',
             "",
             f"    formula: {candidate.infix()}",
             f"    LaTeX:   {latex}",
             f"    prefix:  {candidate.prefix()}",
             f"    key:     {candidate.key}",
             f"    CPV:     {header.cpv}"]
    if header.provenance is not None:
        lines.append(f"    found:   {header.provenance.describe()}")
    prose = f"Form {form.name!r}: {form.description}. ``{signature}`` returns the unreduced loss, {shape}, " \
        f"{USAGE[backend]}."
    if form.name == "reg":
        prose += " ``box_inputs(pred, target)`` gives its inputs for aligned boxes."
    if trainable:
        prose += " Its numeric constants are the parameter ``constants`` (initial values CONSTANTS, in the order " \
            "of cse-autoloss's symbolic/constants.py)."
    prose += " Guards as in cse-autoloss: log floors its argument, division keeps |denominator| >= DIV_FLOOR, " \
        "sqrt floors its argument and exp caps it."
    prose = prose.replace(signature, signature.replace(" ", "\0"))  # a signature stays on one line
    wrapped = [line.replace("\0", " ") for line in textwrap.wrap(prose, 100, break_on_hyphens=False)]
    return [*lines, "", *wrapped, '"""']


def loss_module_source(candidate: Candidate, backend: str, *, header: ExportHeader | None = None,
                       trainable_constants: bool = False) -> str:
    """Source of a standalone module defining the candidate as ``loss`` for ``backend`` ("jax" or "torch")."""
    text = module_text(candidate, backend, header=header, trainable_constants=trainable_constants)
    if backend == "torch" and trainable_constants:
        text.blocks.append(_TORCH_MODULE.format(inputs=", ".join(candidate.form.input_names)))
    return text.render()


_TORCH_MODULE = '''class Loss(torch.nn.Module):
    """The loss as a module whose numeric constants are the trainable parameter ``constants``."""

    def __init__(self):
        super().__init__()
        self.constants = torch.nn.Parameter(torch.tensor(CONSTANTS, dtype=torch.get_default_dtype()))

    def forward(self, {inputs}):
        """The unreduced loss, as ``loss`` (see the module docstring)."""
        return loss(self.constants, {inputs})'''
