"""The guarded primitives: the numerics of every operator, each written once, over an array backend.

A primitive is a plain function ``primitive(B, *arrays)``. ``B`` is an array backend
(``symbolic.backends``: NumPy, JAX or torch), a namespace of the few library functions the
primitives need under one set of names (``B.where``, ``B.log``, ``B.sigmoid``, ...). The same
function serves every consumer of the operator table:

* in process, ``symbolic.lowering.Program`` and the light-tree evaluator call it with the NumPy
  or the JAX backend;
* the exported JAX and PyTorch modules hold its source text, copied by ``symbolic.module_source``
  (``inspect.getsource``) beside the source of the backend they run on.

So each primitive has literally one text: a new operator is one function here and one entry of
the table in ``symbolic.operators``. The alternatives were a template per operator and per
exporter (the JAX export used to carry such a second copy; a torch export would have made a
third) or SymPy's code printers (wrong for ``erf`` under tracing and for ``Piecewise``, see
``symbolic.lowering``).

Rules for the text, which the exporter relies on: a primitive refers only to its arguments,
``B.<name>``, ``math``, the guard constants below and other primitives; its arguments are arrays
of the backend or Python floats, and the backend functions are given arrays (constants only
ever meet ``+``, ``*``, ``/`` or ``dot``, see ``symbolic.lowering``).

Guards live here, in the numerics, not in the mathematics: ``log`` floors its argument, ``/``
keeps the denominator away from 0, ``sqrt`` floors at a tiny positive value and ``exp`` caps its
argument, so each primitive gives finite values and finite gradients from 0 up to inputs of
magnitude 1e6 (logits of ±100, areas of 1e5 px² and what simple compositions make of them); a
composition can still overflow, which verification catches. Each ``where`` sees only safe
values on both branches, so no branch leaks a NaN gradient (the double-``where`` trick).
"""

from __future__ import annotations

import math

LOG_FLOOR = 1e-20  # log(a) = log(max(a, LOG_FLOOR)): the authors' eps, and finite in float32
DIV_FLOOR = 1e-12  # |denominator| >= DIV_FLOOR, keeping its sign
SQRT_FLOOR = 1e-30  # sqrt(a) = sqrt(max(a, SQRT_FLOOR)): gradient <= 5e14 instead of infinite at 0
EXP_CAP = 80.0  # exp(min(a, EXP_CAP)) <= 5.5e34, below the float32 maximum 3.4e38


def negate(B, a):
    """-a."""
    return -a


def add(B, a, b):
    """a + b."""
    return a + b


def subtract(B, a, b):
    """a - b."""
    return a - b


def multiply(B, a, b):
    """a * b."""
    return a * b


def safe_div(B, a, b):
    """a / b with |b| raised to at least DIV_FLOOR, keeping the sign of b (-0.0 included)."""
    safe = B.where(B.abs(b) > DIV_FLOOR, b, B.copysign(DIV_FLOOR, b))
    return a / safe


def capped_exp(B, a):
    """exp(min(a, EXP_CAP)); a NaN stays NaN."""
    return B.exp(B.where(a > EXP_CAP, EXP_CAP, a))


def safe_log(B, a):
    """log(max(a, LOG_FLOOR))."""
    return B.log(B.where(a > LOG_FLOOR, a, LOG_FLOOR))


def absolute(B, a):
    """|a|, with slope 1 at 0 in every backend (libraries differ there); + 0.0 makes -0.0 into +0.0."""
    return B.where(a < 0, -a, a + 0.0)


def safe_sqrt(B, a):
    """sqrt(max(a, SQRT_FLOOR))."""
    return B.sqrt(B.where(a > SQRT_FLOOR, a, SQRT_FLOOR))


def softmax(B, a):
    """softmax over the class axis (the last)."""
    return B.softmax(a)


def log_softmax(B, a):
    """log(softmax(a)) over the class axis, computed stably."""
    return B.log_softmax(a)


def softplus(B, a):
    """log(1 + exp(a)), computed stably."""
    return B.softplus(a)


def sigmoid(B, a):
    """The logistic function 1 / (1 + exp(-a))."""
    return B.sigmoid(a)


def log_sigmoid(B, a):
    """log(sigmoid(a)), computed stably."""
    return B.log_sigmoid(a)


def scaled_erf(B, a):
    """erf_s(a) = (erf(sqrt(pi) a / 4) + 1) / 2: an S-curve onto (0, 1) with slope 1/4 at 0."""
    # As erfc(-sqrt(pi) a / 4) / 2: no cancellation of erf against 1 as a -> -inf.
    return B.erfc(-math.sqrt(math.pi) * a / 4) / 2


def scaled_erfc(B, a):
    """erfc_s(a) = 1 - erf_s(a), which is erf_s(-a) (erf_s is odd around 1/2)."""
    return scaled_erf(B, -a)


def scaled_gd(B, a):
    """gd_s(a) = ((4/pi) atan(tanh(pi a / 8)) + 1) / 2, the scaled Gudermannian."""
    # It equals (2/pi) atan(exp(pi a / 4)); for a >= 0 it is written 1 - (2/pi) atan(exp(-pi a / 4)).
    # So neither side cancels against 1 nor overflows exp.
    z = math.pi * a / 4
    tail = 2 / math.pi * B.arctan(B.exp(B.where(a < 0, z, -z)))
    return B.where(a < 0, tail, 1 - tail)


def scaled_alf(B, a):
    """alf_s(a) = (h / sqrt(1 + h^2) + 1) / 2 with h = a / 2, the scaled algebraic S-curve."""
    # For |h| > 1, with r = sqrt(1 + 1/h^2): (r + 1) / (2 r) if h > 0, and 1 / (2 h^2 r (r + 1)) if h < 0,
    # which neither overflows h^2 inside a sqrt nor cancels against 1 as a -> -inf.
    h = a / 2
    big = B.abs(h) > 1
    h_small = B.where(big, 0.0, h)
    h_big = B.where(big, h, 1.0)
    r = B.sqrt(1 + 1 / h_big**2)
    tail = B.where(h_big > 0, (r + 1) / (2 * r), 1 / (2 * h_big**2 * r * (r + 1)))
    return B.where(big, tail, (h_small / B.sqrt(1 + h_small**2) + 1) / 2)


def tanh(B, a):
    """tanh(a)."""
    return B.tanh(a)


def relu(B, a):
    """max(a, 0), with +0.0 (never -0.0) below 0: it may become a denominator."""
    return B.where(a > 0, a, 0.0)


def sine(B, a):
    """sin(a)."""
    return B.sin(a)


def cosine(B, a):
    """cos(a)."""
    return B.cos(a)


def dot(B, a, b):
    """The sum of a * b over the class axis, kept as an axis of length 1."""
    return B.sum_classes(a * b)


# The forms' inputs and outputs, shared by the in-process lowering and the exported modules.


def elementwise_output(B, value, shape):
    """The loss of an elementwise form: ``value`` broadcast to the inputs' shape."""
    return B.broadcast_to(value, shape)


def per_sample_output(B, value, shape):
    """The loss of the softmax form: one value per sample, the inputs' shape without the class axis."""
    return B.broadcast_to(value, (*shape[:-1], 1))[..., 0]


def box_areas(B, pred, target):
    """(i, u, e): intersection, union and enclosing-box areas of aligned (x1, y1, x2, y2) box pairs.

    These are the reg form's inputs; an inverted box has area 0. Maxima and minima are written
    with ``where``, so a tie (a perfect prediction) has the same gradient in every backend.
    """
    p1, p2, t1, t2 = pred[..., :2], pred[..., 2:], target[..., :2], target[..., 2:]
    inter_wh = relu(B, B.where(p2 < t2, p2, t2) - B.where(p1 > t1, p1, t1))
    enclose_wh = relu(B, B.where(p2 > t2, p2, t2) - B.where(p1 < t1, p1, t1))
    pred_wh = relu(B, p2 - p1)
    target_wh = relu(B, t2 - t1)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = pred_wh[..., 0] * pred_wh[..., 1] + target_wh[..., 0] * target_wh[..., 1] - inter
    return inter, relu(B, union), enclose_wh[..., 0] * enclose_wh[..., 1]
