"""The NumPy backend of the guarded primitives: float64 evaluation in process (screening, CPV)."""

import numpy as np
import scipy.special


class NumpyArrays:
    """The primitives' array functions over NumPy arrays."""

    where = staticmethod(np.where)  # where(condition, a, b): a where condition holds, else b
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    log = staticmethod(np.log)
    exp = staticmethod(np.exp)
    sqrt = staticmethod(np.sqrt)
    tanh = staticmethod(np.tanh)
    arctan = staticmethod(np.arctan)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    erf = staticmethod(scipy.special.erf)
    erfc = staticmethod(scipy.special.erfc)
    copysign = staticmethod(np.copysign)  # copysign(magnitude, b): magnitude with the sign bit of b
    sigmoid = staticmethod(scipy.special.expit)
    log_sigmoid = staticmethod(scipy.special.log_expit)

    @staticmethod
    def softplus(a):
        """log(1 + exp(a)) without overflow."""
        return np.logaddexp(0.0, a)

    @staticmethod
    def softmax(a):
        """softmax over the last (class) axis."""
        return scipy.special.softmax(a, axis=-1)

    @staticmethod
    def log_softmax(a):
        """log softmax over the last (class) axis."""
        return scipy.special.log_softmax(a, axis=-1)

    @staticmethod
    def sum_classes(a):
        """The sum over the last (class) axis, kept as an axis of length 1."""
        return np.sum(a, axis=-1, keepdims=True)

    @staticmethod
    def as_inputs(*arrays):
        """The loss's inputs as float64 arrays."""
        return tuple(np.asarray(a, np.float64) for a in arrays)

    @staticmethod
    def broadcast_shapes(*arrays):
        """The shape the arrays broadcast to."""
        return np.broadcast_shapes(*(np.shape(a) for a in arrays))

    broadcast_to = staticmethod(np.broadcast_to)
