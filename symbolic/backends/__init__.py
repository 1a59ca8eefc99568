"""Array backends: the library functions the guarded primitives are written with, per array library.

A backend is a class used as a namespace (``B`` in ``symbolic.primitives``); each defines the
same ``WORDS``. NumPy and JAX run in process; the torch backend runs in the exported PyTorch
modules (and in the tests, where torch is installed), so it is imported only on demand. The
exporter copies a backend's class, trimmed to the words a loss uses, with its module's imports
(``symbolic.module_source``): the class below is the one text of each backend.
"""

from __future__ import annotations

from symbolic.backends.jax_arrays import JaxArrays
from symbolic.backends.numpy_arrays import NumpyArrays

# Every backend defines these, with the same meaning (see numpy_arrays.py for each one's docstring).
WORDS = (
    "where", "abs", "sign", "log", "exp", "sqrt", "tanh", "arctan", "sin", "cos", "erf", "erfc", "copysign",
    "sigmoid", "log_sigmoid", "softplus", "softmax", "log_softmax", "sum_classes", "as_inputs", "broadcast_shapes",
    "broadcast_to",
)

# Backend name -> (module, class): the exporter reads the module's source without importing it.
BACKEND_CLASSES = {
    "numpy": ("symbolic.backends.numpy_arrays", "NumpyArrays"),
    "jax": ("symbolic.backends.jax_arrays", "JaxArrays"),
    "torch": ("symbolic.backends.torch_arrays", "TorchArrays"),
}

__all__ = ["BACKEND_CLASSES", "WORDS", "JaxArrays", "NumpyArrays"]
