"""Every operator of the table through every backend: NumPy and JAX in process, the exported JAX module and the
exported PyTorch module, at ordinary and extreme inputs (logits ±1e3 and ±100, areas 0 and 1e5), values and
full gradients in float64; the same for the zoo's losses. And the backends define the same words."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from export_checks import float64, inputs_with_extremes, load_module, require_torch

from autoloss.export_modules import loss_module_source
from symbolic import primitives
from symbolic.backends import WORDS, JaxArrays, NumpyArrays
from symbolic.candidate import Candidate
from symbolic.constants import lift_constants
from symbolic.forms import FORMS
from symbolic.lowering import evaluate_numpy
from symbolic.module_source import primitive_text
from symbolic.operators import OPERATORS
from symbolic.zoo import KNOWN_LOSSES

TOLERANCE = {"rtol": 1e-9, "atol": 1e-12}


def operator_formulas(form: str) -> dict[str, str]:
    """One formula per operator of the form (and the stable logs and powers the lowering writes)."""
    a, b, _ = FORMS[form].input_names
    formulas = {op.name: f"{op.name}({a}, {b})" if op.arity == 2 else f"{op.name}({a})"
                for op in FORMS[form].operators if op.name not in ("dot", "softmax")}
    formulas |= {"add": f"{a} + {b}", "sub": f"{a} - {b}", "mul": f"{a}*{b}", "div": f"{a}/{b}",
                 "log_sigmoid": f"log(sigmoid({a}))", "powers": f"{a}**3/{b}**2 + sqrt(sqrt({a}))/3",
                 "coefficient": f"-2*{a}/3 + {b}/(2*{a}) - 1"}
    if form == "softmax":
        formulas = {"dot": "dot(x, y)", "softmax": "dot(y, softmax(x))", "log_softmax": "dot(y, log(softmax(x)))",
                    **{name: f"dot(y, {text})" for name, text in formulas.items()}}
    return formulas


def cases():
    for form in FORMS:
        for name, text in operator_formulas(form).items():
            yield pytest.param(form, text, id=f"{form}-{name}")
    for name, loss in KNOWN_LOSSES.items():
        yield pytest.param(loss.form, loss.formula, id=f"zoo-{name}")


def jax_value_and_grads(function, args, constants=None):
    extra = [] if constants is None else [constants]
    value, pullback = jax.vjp(function, *extra, *args)
    return np.asarray(value), [np.asarray(g) for g in pullback(jnp.ones_like(value))]


def torch_value_and_grads(torch, function, args, constants=None):
    tensors = [torch.tensor(a, requires_grad=True) for a in ([] if constants is None else [constants]) + args]
    value = function(*tensors)
    grads = torch.autograd.grad(value.sum(), tensors, allow_unused=True)
    return value.detach().numpy(), [np.zeros(t.shape) if g is None else g.numpy() for g, t in zip(grads, tensors,
                                                                                                    strict=True)]


def assert_close(got, expected, what):
    np.testing.assert_allclose(got, expected, equal_nan=True, err_msg=what, **TOLERANCE)


@pytest.mark.parametrize("form, text", list(cases()))
def test_every_backend_gives_the_same_values_and_gradients(tmp_path, form, text):
    torch = require_torch()
    candidate = Candidate.parse(text, form)
    args = inputs_with_extremes(candidate.form)
    lifted = lift_constants(candidate)
    with float64():
        jax_args = [jnp.asarray(a) for a in args]
        value, grads = jax_value_and_grads(candidate.to_jax().__wrapped__, jax_args)
        assert np.isfinite(value).all() and all(np.isfinite(g).all() for g in grads), (value, grads)
        inputs = dict(zip(candidate.form.input_names, args, strict=True))
        numpy_value = evaluate_numpy(candidate.expr, candidate.form, inputs)
        assert_close(numpy_value, value, f"numpy value of {text}")
        backends = {"jax module": (jax_value_and_grads, jax_args), "torch module": (
            lambda f, a, c=None: torch_value_and_grads(torch, f, a, c), args)}
        for name, (run, inputs) in backends.items():
            backend = name.split()[0]
            module = load_module(loss_module_source(candidate, backend), tmp_path, f"{backend}_plain")
            got_value, got_grads = run(module.loss, inputs)
            assert_close(got_value, value, f"{name} value of {text}")
            for input_name, got, expected in zip(candidate.form.input_names, got_grads, grads, strict=True):
                assert_close(got, expected, f"{name} d/d{input_name} of {text}")
            trainable = load_module(loss_module_source(candidate, backend, trainable_constants=True), tmp_path,
                                    f"{backend}_trainable")
            constants = np.asarray(lifted.values)
            expected = jax_value_and_grads(lifted.to_jax().__wrapped__, jax_args, jnp.asarray(constants))
            got = run(trainable.loss, inputs, jnp.asarray(constants) if backend == "jax" else constants)
            assert_close(expected[0], value, f"lifted value of {text}")
            assert_close(got[0], value, f"{name} value with trainable constants of {text}")
            for got_grad, expected_grad in zip(got[1], expected[1], strict=True):
                assert_close(got_grad, expected_grad, f"{name} gradient with trainable constants of {text}")


def test_every_backend_defines_the_words_and_the_primitives_use_no_other():
    require_torch()
    from symbolic.backends.torch_arrays import TorchArrays

    for backend in (NumpyArrays, JaxArrays, TorchArrays):
        assert all(callable(getattr(backend, word, None)) for word in WORDS), backend
    used = set()
    for function in vars(primitives).values():
        if inspect.isfunction(function) and function.__module__ == primitives.__name__:
            used |= primitive_text(function).words
    assert used <= set(WORDS)
    assert all(getattr(primitives, op.compute.__name__) is op.compute for op in OPERATORS.values())
