"""The authors' screening stack, the reference our CPV screening is measured against.

Their released primitives (``tools/search_space.py`` of the CSE-Autoloss release) on NumPy,
DEAP's ``genHalfAndHalf`` (depth 1-5) to generate ``sigmoid``-form trees, ``gp.compile`` to
compile them, and the sampled-point monotonicity and convergence check the first author
described for their verification (linspace(-10, 10, 200), absolute tolerances). No dedup,
no proofs. Our batched check applies the same ``passes`` rule verbatim on top of its own
(``symbolic.cpv.rules``), and ``tests/symbolic/cpv/test_batch.py`` rebuilds it on our trees.

    python -m benchmarks.authors_screen [N]     (needs ``pip install deap``: a benchmark-only tool)

prints one line: "<N> candidates in <s>s = <rate> cand/s; passed <k>; crashed <c>".
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings

import numpy as np

EPS = 1e-20
XS = np.linspace(-10, 10, 200)


def _add(a, b):
    return np.add(a, b)


def _sub(a, b):
    return np.subtract(a, b)


def _mul(a, b):
    return np.multiply(a, b)


def _div(a, b):
    return np.divide(a, np.add(b, EPS))


def _neg(a):
    return np.negative(a)


def _exp(a):
    return np.exp(np.minimum(a, 88.0))


def _log(a):
    return np.log(np.add(a, EPS))


def _abs(a):
    return np.abs(a)


def _sqrt(a):
    return np.sqrt(a)


def _softplus(a):
    return np.logaddexp(0.0, a)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-np.asarray(a, dtype=float)))


def _tanh(a):
    return np.tanh(a)


def _relu(a):
    return np.maximum(a, 0.0)


def _sin(a):
    return np.sin(a)


def _cos(a):
    return np.cos(a)


_erf = np.vectorize(math.erf)


def _serf(a):
    return (_erf(math.sqrt(math.pi) / 2 * np.asarray(a, dtype=float) / 2) + 1) / 2


def _salf(a):
    a = np.asarray(a, dtype=float) / 2
    return (a / np.sqrt(1 + a * a) + 1) / 2


def _sgdf(a):
    a = np.asarray(a, dtype=float) * math.pi / 4
    return (2 * np.arctan(np.tanh(a / 2)) * 2 / math.pi + 1) / 2


UNARY = {"Neg": _neg, "Exp": _exp, "Log": _log, "Abs": _abs, "Sqrt": _sqrt, "Softplus": _softplus, "Sig": _sig,
         "Sgdf": _sgdf, "Salf": _salf, "Serf": _serf, "Tanh": _tanh, "Sin": _sin, "Cos": _cos, "Relu": _relu}
BINARY = {"Add": _add, "Sub": _sub, "Mul": _mul, "Div": _div}


def primitive_set():
    """The ``sigmoid``-form primitive set of the release: inputs X, Q, PY, NY and constants 1, 2, 3."""
    from deap import gp

    pset = gp.PrimitiveSet("CLS", 4)
    for name, function in UNARY.items():
        pset.addPrimitive(function, 1, name=name)
    for name, function in BINARY.items():
        pset.addPrimitive(function, 2, name=name)
    pset.addEphemeralConstant("c", lambda: random.choice([1, 2, 3]))
    pset.renameArguments(ARG0="X", ARG1="Q", ARG2="PY", ARG3="NY")
    return pset


def passes(f) -> bool:
    """The sampled check: a positive (IoU 1) falls, a negative rises, both flatten at the label's end."""
    with np.errstate(all="ignore"):
        pos = np.broadcast_to(f(XS, 1.0, 1.0, 0.0), XS.shape)
        neg = np.broadcast_to(f(XS, 0.0, 0.0, 1.0), XS.shape)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        return False
    dp, dn = np.diff(pos), np.diff(neg)
    mono = np.all(dp <= 1e-9) and np.all(dn >= -1e-9) and dp.min() < -1e-6 and dn.max() > 1e-6
    conv = abs(dp[-1]) < 1e-3 * max(1.0, abs(dp).max()) and abs(dn[0]) < 1e-3 * max(1.0, abs(dn).max())
    return bool(mono and conv)


def screen(count: int, seed: int = 0) -> dict:
    """Generate, compile and check ``count`` trees; seconds, candidates/s, passed and crashed."""
    from deap import gp

    warnings.filterwarnings("ignore")
    pset = primitive_set()
    random.seed(seed)
    start, passed, crashed = time.perf_counter(), 0, 0
    for _ in range(count):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, min_=1, max_=5))
        try:
            passed += passes(gp.compile(tree, pset))
        except Exception:  # noqa: BLE001 - the reference counts crashes, as the authors' loop did
            crashed += 1
    seconds = time.perf_counter() - start
    return {"count": count, "seconds": seconds, "rate": count / seconds, "passed": passed, "crashed": crashed}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    result = screen(count)
    print(f"{result['count']} candidates in {result['seconds']:.2f}s = {result['rate']:.0f} cand/s; "
          f"passed {result['passed']}; crashed {result['crashed']}")


if __name__ == "__main__":
    main()
