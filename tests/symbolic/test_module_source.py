"""Module source: primitives are copied from their one text, written in place when they are one expression, and
the backend class is trimmed to the words the loss uses."""

import ast

from symbolic import primitives
from symbolic.lowering import Program
from symbolic.module_source import SourceWriter, loss_statements, primitive_text
from symbolic.zoo import KNOWN_LOSSES


def test_one_expression_primitives_are_written_in_place_and_the_others_called():
    writer = SourceWriter("torch")
    assert writer.call(primitives.add, "t0", "x") == "t0 + x"
    assert writer.call(primitives.multiply, "(-2.0)", "t1") == "-2.0 * t1"
    assert writer.call(primitives.sigmoid, "t3") == "B.sigmoid(t3)"
    assert writer.call(primitives.safe_log, "t4") == "safe_log(B, t4)"  # uses its argument twice and LOG_FLOOR
    assert writer.call(primitives.scaled_erfc, "x") == "scaled_erfc(B, x)"
    assert primitive_text(primitives.scaled_erfc).needs == ("scaled_erf",)
    definitions = "\n\n".join(writer.definitions())
    assert definitions.index("LOG_FLOOR = 1e-20") < definitions.index("def safe_log(B, a):")
    assert definitions.index("def scaled_erf(B, a):") < definitions.index("def scaled_erfc(B, a):")
    assert "import math" in writer.imports() and "import torch" in writer.imports()


def test_the_backend_class_keeps_only_the_words_the_loss_uses():
    candidate = KNOWN_LOSSES["ce"].candidate
    writer = SourceWriter("jax")
    body = loss_statements(Program(candidate.expr, candidate.form.input_names), candidate.form, writer)
    backend = writer.definitions()[0]
    members = {node.name if isinstance(node, ast.FunctionDef) else node.targets[0].id
               for node in ast.parse(backend).body[0].body if not isinstance(node, ast.Expr)}
    assert members == {"log_softmax", "sum_classes", "as_inputs", "broadcast_shapes", "broadcast_to"}
    assert body[-1] == "return B.broadcast_to(t2, (*shape[:-1], 1))[..., 0]"
