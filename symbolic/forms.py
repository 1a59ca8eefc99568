"""The three loss forms: their inputs, the authors' input names, and the probe inputs.

| form      | inputs  | meaning                                                               |
|-----------|---------|-----------------------------------------------------------------------|
| `softmax` | x, y, w | x logits over C+1 classes (background last), y one-hot, w the RoI's   |
|           |         | IoU on positive rows and 1 on background rows; reduces with dot        |
| `sigmoid` | x, y, w | x a per-class logit, y its binary label, w the IoU at the positive     |
|           |         | class entry and 0 elsewhere; elementwise                               |
| `reg`     | i, u, e | intersection, union and enclosing-box areas of aligned box pairs       |

The authors' prefix strings name the inputs differently; the parser accepts those names:
softmax X, Y, Z (= x, y, w); sigmoid X, Q, PY, NY with Q = w·y, PY = y, NY = 1 − y;
reg I, U, E. Because the `sigmoid` form defines w as 0 off the positive entry, Q = w·y
equals w on every input the form admits, so Q is read as w and w is printed as Q.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import sympy

from symbolic.operators import REG_FORM, SIGMOID_FORM, SOFTMAX_FORM, Operator, operators_for

x = sympy.Symbol("x", real=True)
y = sympy.Symbol("y", nonnegative=True)
w = sympy.Symbol("w", nonnegative=True)
i = sympy.Symbol("i", nonnegative=True)
u = sympy.Symbol("u", nonnegative=True)
e = sympy.Symbol("e", nonnegative=True)

PROBE_SEED = 20210209  # fixed: fingerprints must mean the same thing in every run
PROBE_SIZE = 48


@dataclasses.dataclass(frozen=True)
class Form:
    """A loss form: its input symbols, the input it must depend on, and its operators."""

    name: str
    symbols: tuple[sympy.Symbol, ...]
    required: sympy.Symbol
    vector: bool  # inputs are vectors over classes, reduced by dot
    authors_inputs: dict[str, object]  # authors' name -> light tree over our input names
    authors_names: dict[str, str]  # our input name -> authors' name, for printing
    description: str

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs in argument order, e.g. ("x", "y", "w")."""
        return tuple(s.name for s in self.symbols)

    @property
    def operators(self) -> tuple[Operator, ...]:
        """The operators this form may use."""
        return operators_for(self.name)

    def symbol(self, name: str) -> sympy.Symbol:
        """The input symbol called ``name``."""
        return self.symbols[self.input_names.index(name)]

    def probe_inputs(self, size: int = PROBE_SIZE, seed: int = PROBE_SEED) -> dict[str, np.ndarray]:
        """Seeded float64 inputs from the form's domain, as a detector would feed them."""
        rng = np.random.default_rng(seed)
        return _PROBES[self.name](rng, size)


def _sigmoid_probes(rng, n):
    positive = np.arange(n) % 2 == 0
    logits = np.concatenate([rng.uniform(-12, 12, n - n // 4), rng.normal(0, 2, n // 4)])
    y_ = positive.astype(np.float64)
    w_ = np.where(positive, rng.uniform(0.05, 1.0, n), 0.0)
    return {"x": rng.permutation(logits), "y": y_, "w": w_}


def _softmax_probes(rng, n, num_classes=4):
    logits = rng.normal(0.0, 3.0, (n, num_classes))
    background = np.arange(n) % 3 == 2
    target = np.where(background, num_classes - 1, rng.integers(0, num_classes - 1, n))
    onehot = np.eye(num_classes)[target]
    iou = np.where(background, 1.0, rng.uniform(0.3, 1.0, n))
    return {"x": logits, "y": onehot, "w": np.repeat(iou[:, None], num_classes, axis=1)}


def _reg_probes(rng, n):
    size = np.exp(rng.uniform(np.log(1.0), np.log(300.0), (n, 2)))
    gt = np.concatenate([np.zeros((n, 2)), size], axis=1)
    shift = rng.normal(0.0, 0.4, (n, 2)) * size
    scale = np.exp(rng.normal(0.0, 0.4, (n, 2)))
    pred = np.concatenate([shift, shift + size * scale], axis=1)
    return dict(zip("iue", box_areas(pred, gt), strict=True))


def box_areas(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intersection, union, enclosing-box area) of aligned x1,y1,x2,y2 box pairs."""
    area_p = np.prod(np.clip(pred[:, 2:] - pred[:, :2], 0, None), axis=1)
    area_t = np.prod(np.clip(target[:, 2:] - target[:, :2], 0, None), axis=1)
    inter_wh = np.clip(np.minimum(pred[:, 2:], target[:, 2:]) - np.maximum(pred[:, :2], target[:, :2]), 0, None)
    inter = np.prod(inter_wh, axis=1)
    enclose = np.prod(np.maximum(pred[:, 2:], target[:, 2:]) - np.minimum(pred[:, :2], target[:, :2]), axis=1)
    return inter, area_p + area_t - inter, enclose


_PROBES = {SOFTMAX_FORM: _softmax_probes, SIGMOID_FORM: _sigmoid_probes, REG_FORM: _reg_probes}

FORMS: dict[str, Form] = {
    SOFTMAX_FORM: Form(
        name=SOFTMAX_FORM,
        symbols=(x, y, w),
        required=x,
        vector=True,
        authors_inputs={"X": "x", "Y": "y", "Z": "w"},
        authors_names={"x": "X", "y": "Y", "w": "Z"},
        description="two-stage classification over C+1 classes: (x[N,C+1], y[N,C+1], w[N,C+1]) -> [N]",
    ),
    SIGMOID_FORM: Form(
        name=SIGMOID_FORM,
        symbols=(x, y, w),
        required=x,
        vector=False,
        authors_inputs={"X": "x", "Q": "w", "PY": "y", "NY": ("sub", 1, "y")},
        authors_names={"x": "X", "y": "PY", "w": "Q"},
        description="one-stage per-class classification: (x, y, w) elementwise -> same shape",
    ),
    REG_FORM: Form(
        name=REG_FORM,
        symbols=(i, u, e),
        required=i,
        vector=False,
        authors_inputs={"I": "i", "U": "u", "E": "e"},
        authors_names={"i": "I", "u": "U", "e": "E"},
        description="box regression on aligned pairs: (i[N], u[N], e[N]) -> [N]",
    ),
}


@functools.cache
def probe_inputs(form_name: str) -> dict[str, np.ndarray]:
    """The default probe inputs of a form, computed once and read-only (for fingerprints)."""
    inputs = FORMS[form_name].probe_inputs()
    for array in inputs.values():
        array.setflags(write=False)
    return inputs


def get_form(name: str | Form) -> Form:
    """The form called ``name`` (a Form passes through); a clear error for unknown names."""
    if isinstance(name, Form):
        return name
    try:
        return FORMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss form {name!r}; choose one of {', '.join(FORMS)}") from None
