"""The compiler's edges: long and deep texts, huge numbers, folding, gradients, odd characters.

Every text up to MAX_LENGTH either compiles (and then evaluates and backpropagates) or is an
ExpressionError a student can read; nothing else escapes.
"""

import sys
import time

import pytest
import torch

from gdviz.core import expressions
from gdviz.core.errors import ExpressionError
from gdviz.core.expressions import MAX_LENGTH, FunctionSpec, compile_expression


def error(text, field="function", variables=None):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, field, variables=variables)
    return info.value


def long_function(limit=MAX_LENGTH):
    terms, text = 0, ""
    while True:
        more = (text + " + " if text else "") + f"w{terms % 7}*sin(x{terms % 5} - {terms % 9}.5)**2"
        if len(more) > limit:
            return text
        text, terms = more, terms + 1


def test_compiling_is_linear_in_the_text():
    text = long_function()
    assert len(text) > 0.99 * MAX_LENGTH
    start = time.perf_counter()
    expr = compile_expression(text)
    seconds = time.perf_counter() - start
    print(f"\ncompiled a {len(text)}-character function in {seconds * 1000:.0f} ms")
    assert seconds < 5  # a sanity bound; it takes about 0.1 s (it took 7.9 s when quadratic)
    assert expr.program[-1].text == text
    assert {ins.text for ins in expr.program if ins.kind == "name"} >= {"w0", "x4"}


def run_forward_backward(expr):
    env = {n: torch.tensor([0.5, 0.25], requires_grad=True) for n in expr.names}
    out = expr.evaluate(env)
    out.sum().backward()
    assert all(env[n].grad is not None for n in expr.names)
    return out


@pytest.mark.parametrize("text", [
    "+".join(["x"] * (MAX_LENGTH // 2)),          # a sum of 5,000 terms
    "-" * 5900 + "x",                              # deep unary chains
    "+-" * 2500 + "x",
    "**".join(["x"] * 2900),                       # right-nested powers
    "(" * 200 + "x" + ")" * 200,                   # Python's bracket limit, exactly
    "sin(" * 199 + "x" + ")" * 199,
    " + ".join(f"x*{i}" for i in range(1200)),
])
def test_long_and_deep_texts_compile_and_train(text):
    assert len(text) <= MAX_LENGTH
    limit = sys.getrecursionlimit()
    expr = compile_expression(text)
    assert sys.getrecursionlimit() == limit  # raised only around ast.parse
    assert torch.isfinite(run_forward_backward(expr)).all()
    expr.check({"x": torch.tensor([0.5, 0.25])}, backward=True)


@pytest.mark.parametrize("text, fragment, column", [
    ("-" * (MAX_LENGTH - 1) + "x", "nested too deeply", None),
    ("**".join(["x"] * 3300), "nested too deeply", None),
    ("(" * 201 + "x" + ")" * 201, "brackets are nested too deeply (the limit is 200)", 201),
    ("x + " * 2500 + "x", "too long", None),
])
def test_texts_beyond_the_limits_are_explained(text, fragment, column):
    limit = sys.getrecursionlimit()
    err = error(text)
    assert fragment in str(err) and err.column == column
    assert sys.getrecursionlimit() == limit


@pytest.mark.parametrize("text, fragment, column", [
    ("x + " + "9" * 400, "this number is too large", 5),      # float() would overflow
    ("x + " + "9" * 5000, "this number is too large", 5),     # beyond int's 4,300 digits
    ("x + 0x" + "f" * 5000, "this number is too large", 5),
    ("x * 1e400", "this number is too large", 5),
    ("x * 4e38", "this number is too large", 5),
    ("x + 10.0**400", "'10.0**400' is too large", 5),
    ("x + 2.0**200", "'2.0**200' is too large", 5),
    ("x + (-8)**(1/3)", "is not a real number", 5),
    ("x + 1/0", "'1/0' divides by zero", 5),
    ("x + 1 % (2 - 2)", "divides by zero", 5),
    ("x * 0**-1", "divides by zero", 5),
])
def test_numbers_out_of_range_are_refused_with_their_column(text, fragment, column):
    err = error(text)
    assert fragment in str(err) and err.column == column
    assert "3.4e38" in str(err) or "too large" not in str(err)


def test_numbers_computed_from_numbers_are_folded():
    expr = compile_expression("x * (2*pi) + -3")
    consts = [ins for ins in expr.program if ins.kind == "const"]
    assert {ins.text for ins in consts} >= {"2*pi", "-3"}
    assert float(expr.evaluate({"x": torch.tensor(1.0)})) == pytest.approx(2 * 3.14159265 - 3)
    assert [ins.kind for ins in expr.program].count("op") == 2


@pytest.mark.parametrize("text, column", [
    ("x + \ud800", 5), ("x\x00", 2), ("x +\x1b[31m", 4), ("x\x0c", 2),
])
def test_unreadable_characters(text, column):
    err = error(text)
    assert "cannot be used" in str(err) and err.column == column


def test_columns_count_characters_not_bytes():
    err = error("αβ + zz", "loss", variables=["αβ", "y"])
    assert err.column == 6 and "unknown name 'zz'" in str(err)
    expr = compile_expression("αβ * sin(γ)")
    assert [ins.text for ins in expr.program] == ["αβ", "γ", "sin(γ)", "αβ * sin(γ)"]
    assert [ins.column for ins in expr.program] == [1, 10, 6, 1]


def test_long_source_in_messages_is_clipped():
    err = error("x[" + "9" * 300 + " + 1]")
    assert len(str(err)) < 300


# --- gradients that used to crash at the first backward pass --------------------------

def grads(text, **values):
    expr = compile_expression(text)
    env = {n: torch.tensor(v, requires_grad=True) for n, v in values.items()}
    expr.evaluate(env).backward()
    return expr, {n: float(t.grad) for n, t in env.items()}


def test_number_modulo_tensor_has_a_gradient():
    expr, g = grads("1 % x", x=0.75)
    assert float(expr.evaluate({"x": torch.tensor(0.75)})) == pytest.approx(0.25)
    assert g["x"] == pytest.approx(-1.0)  # d/dx (1 - x*floor(1/x)) = -floor(1/x)


@pytest.mark.parametrize("a, b", [(7.0, 3.0), (-7.0, 3.0), (7.0, -3.0), (-7.0, -3.0), (1.0, 0.4)])
def test_modulo_keeps_pythons_sign_rule(a, b):
    expr = compile_expression("x % w")
    out = expr.evaluate({"x": torch.tensor(a, dtype=torch.float64),
                         "w": torch.tensor(b, dtype=torch.float64)})
    assert float(out) == pytest.approx(a % b)
    out = compile_expression(f"{a} % w").evaluate({"w": torch.tensor(b, dtype=torch.float64)})
    assert float(out) == pytest.approx(a % b)


def test_clamp_with_parameter_bounds_sends_gradients_to_the_bounds():
    _, g = grads("clamp(x, w, 3)", x=0.5, w=1.0)
    assert g == {"x": 0.0, "w": 1.0}
    _, g = grads("clamp(x, w, v)", x=5.0, w=1.0, v=2.0)
    assert g == {"x": 0.0, "w": 0.0, "v": 1.0}
    _, g = grads("clamp(x, w, 3)", x=2.0, w=1.0)
    assert g == {"x": 1.0, "w": 0.0}
    expr = compile_expression("clamp(x, w, v)")  # lo > hi gives hi, as torch.clamp does
    assert float(expr.evaluate({"x": torch.tensor(0.0), "w": torch.tensor(2.0),
                                "v": torch.tensor(1.0)})) == 1.0


def test_check_backward_passes_and_leaves_env_alone():
    expr = compile_expression("1 % x + clamp(x, w, 3) + sum(w)")
    env = {"x": torch.tensor(0.75), "w": torch.tensor([1.0, 2.0])}
    out = expr.check(env, backward=True)
    assert not out.requires_grad and out.shape == (2,)
    assert all(not v.requires_grad and v.grad is None for v in env.values())
    assert expr.check(env, backward=["x"]).shape == (2,)


def _no_backward(x):
    class NoBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("the derivative of twice is not implemented")

    return NoBackward.apply(x)


def test_check_backward_points_at_the_operation_that_fails(monkeypatch):
    monkeypatch.setitem(expressions.FUNCTIONS, "sin", FunctionSpec(_no_backward, 1, 1, "broken"))
    expr = compile_expression("x**2 + w * sin(x + 1)")
    env = {"x": torch.tensor(1.0), "w": torch.tensor(2.0)}
    expr.check(env)  # the forward pass is fine
    with pytest.raises(ExpressionError) as info:
        expr.check(env, backward=True)
    assert info.value.column == 12
    assert "cannot compute the gradient of 'sin(x + 1)'" in str(info.value)
    assert "not implemented" in str(info.value)
    with pytest.raises(ExpressionError):
        expr.check(env, backward=["x"])
    assert expr.check(env, backward=["w"]).shape == ()  # sin's backward is not needed


def test_check_turns_any_forward_failure_into_an_expression_error(monkeypatch):
    def explode(x):
        raise NotImplementedError("no kernel for this device")

    monkeypatch.setitem(expressions.FUNCTIONS, "cos", FunctionSpec(explode, 1, 1, "broken"))
    expr = compile_expression("x + cos(x)")
    with pytest.raises(ExpressionError) as info:
        expr.check({"x": torch.tensor(1.0)}, backward=True)
    assert info.value.column == 5 and "no kernel" in str(info.value)


@pytest.mark.parametrize("text, value", [("-(-(2))", 2), ("2 + 0*x - (1 + 1) + -(-2)", 2),
                                         ("pi - (pi - pi)", 3.141592653589793)])
def test_a_result_folded_to_an_earlier_number_is_still_the_result(text, value):
    expr = compile_expression(text, "loss", variables=["x"])
    assert float(expr.evaluate({"x": torch.tensor(1.0)})) == pytest.approx(value)
    assert expr.program[-1].text == text
