"""The JAX backend of the guarded primitives: the jitted lowering and the exported JAX modules."""

import jax
import jax.numpy as jnp
import jax.scipy.special


class JaxArrays:
    """The primitives' array functions over jax.numpy arrays."""

    where = staticmethod(jnp.where)
    abs = staticmethod(jnp.abs)
    sign = staticmethod(jnp.sign)
    log = staticmethod(jnp.log)
    exp = staticmethod(jnp.exp)
    sqrt = staticmethod(jnp.sqrt)
    tanh = staticmethod(jnp.tanh)
    arctan = staticmethod(jnp.arctan)
    sin = staticmethod(jnp.sin)
    cos = staticmethod(jnp.cos)
    erf = staticmethod(jax.scipy.special.erf)
    erfc = staticmethod(jax.scipy.special.erfc)
    copysign = staticmethod(jnp.copysign)
    sigmoid = staticmethod(jax.nn.sigmoid)
    log_sigmoid = staticmethod(jax.nn.log_sigmoid)

    @staticmethod
    def softplus(a):
        """log(1 + exp(a)) without overflow."""
        return jnp.logaddexp(0.0, a)

    @staticmethod
    def softmax(a):
        """softmax over the last (class) axis."""
        return jax.nn.softmax(a, axis=-1)

    @staticmethod
    def log_softmax(a):
        """log softmax over the last (class) axis."""
        return jax.nn.log_softmax(a, axis=-1)

    @staticmethod
    def sum_classes(a):
        """The sum over the last (class) axis, kept as an axis of length 1."""
        return jnp.sum(a, axis=-1, keepdims=True)

    @staticmethod
    def as_inputs(*arrays):
        """The loss's inputs as arrays of JAX's default float type (float32, or float64 with x64)."""
        dtype = jnp.result_type(float)
        return tuple(jnp.asarray(a, dtype) for a in arrays)

    @staticmethod
    def broadcast_shapes(*arrays):
        """The shape the arrays broadcast to."""
        return jnp.broadcast_shapes(*(jnp.shape(a) for a in arrays))

    broadcast_to = staticmethod(jnp.broadcast_to)
