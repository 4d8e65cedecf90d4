"""The safe expression compiler: what it accepts, what it computes, what it refuses."""

import math

import pytest
import torch

from gdviz.core.errors import ExpressionError
from gdviz.core.expressions import MAX_LENGTH, compile_expression


def ev(text, **values):
    expr = compile_expression(text)
    return expr.evaluate({k: torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()})


def test_parameters_are_free_names_in_order():
    expr = compile_expression("b * sin(a) + pi + b")
    assert expr.names == ["b", "a"]


@pytest.mark.parametrize("text, expected", [
    ("2*x**2 + 3", 2 * 4.0**2 + 3),
    ("-x % 3", (-4.0) % 3),
    ("sqrt(x) + exp(0) + log(e)", 2 + 1 + 1),
    ("max(x, 10) + min(x, 10)", 14),
    ("clamp(x, 0, 1)", 1),
    ("relu(-x) + abs(-x)", 4),
    ("mse(x, 2) + mae(x, 1) + huber(x, 3.5, 1)", 4 + 3 + 0.125),
    ("y = x / 8", 0.5),
])
def test_values(text, expected):
    assert float(ev(text, x=4.0)) == pytest.approx(expected)


def test_indexing_and_reductions():
    w = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert float(ev("w[1, 2] - w[0, -1] + sum(w) + mean(w)", w=w)) == pytest.approx(3 + 21 + 3.5)
    assert float(ev("max(w) - min(w)", w=w)) == 5


def test_loss_may_use_y_and_parameters():
    loss = compile_expression("loss = (3 - y)**2 / 2 + X", "loss", variables=["X", "y"])
    out = loss.evaluate({"X": torch.tensor(1.0), "y": torch.tensor(1.0)})
    assert float(out) == 3


def test_batch_evaluation_matches_pointwise():
    expr = compile_expression("(1 - w[0])**2 + 100*(w[1] - w[0]**2)**2 + sum(w)")
    points = torch.randn(50, 2)
    batched = expr.evaluate_batch({"w": points})
    single = torch.stack([expr.evaluate({"w": p}) for p in points])
    assert batched.shape == (50,)
    torch.testing.assert_close(batched, single)


def test_batch_with_fixed_values():
    expr = compile_expression("a * b")
    out = expr.evaluate_batch({"a": torch.arange(4.0)}, {"b": torch.tensor(2.0)})
    assert out.tolist() == [0, 2, 4, 6]


def test_long_sum_does_not_overflow_recursion():
    text = " + ".join(f"x**{i % 5}" for i in range(900))
    assert len(text) < MAX_LENGTH
    expr = compile_expression(text)
    assert float(expr.evaluate({"x": torch.tensor(1.0)})) == 900


def error(text, field="function", variables=None):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, field, variables=variables, reserved=("y", "loss"))
    return info.value


def test_unknown_name_in_loss_names_column_and_parameters():
    err = error("y + 2*z", "loss", variables=["X", "y"])
    assert err.field == "loss" and err.column == 7
    assert str(err).startswith("unknown name 'z' in loss at column 7; the parameters are X")


@pytest.mark.parametrize("text, fragment, column", [
    ("x +* 2", "syntax error", 4),
    ("__import__('os')", "double underscores", 1),
    ("x.__class__", "attribute", 1),
    ("(lambda: 1)()", "named functions", 1),
    ("lambda: 1", "lambda", 1),
    ("x ^ 2", "x**2", 1),
    ("foo(x)", "unknown function 'foo'", 1),
    ("sin", "is a function", 1),
    ("x['a']", "whole numbers", 3),
    ("x[0.5]", "whole numbers", 3),
    ("'text'", "quotes", 1),
    ("x if x else 1", "if", 1),
    ("x < 1", "comparison", 1),
    ("[x, 1]", "list", 1),
    ("sin(x, 2)", "takes 1 argument", 1),
    ("3 + 4", "no parameters", None),
    ("y * 2", "reserved", 1),
    ("", "empty", None),
    ("  x + sin(x, y=1)", "named arguments", 7),
])
def test_mistakes_raise_with_position(text, fragment, column):
    err = error(text)
    assert fragment in str(err)
    assert err.column == column


def test_very_long_input_is_refused_before_parsing():
    err = error("x + " * 3000 + "x")
    assert "too long" in str(err)


def test_wrong_prefix():
    assert "may start with 'loss ='" in str(error("y = y * 2", "loss", variables=["y", "x"]))


def test_nothing_is_executed(monkeypatch):
    # If anything reached eval/exec, this import would be attempted; it never is.
    import builtins
    calls = []
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: calls.append(name) or real_import(name, *a, **k))
    for text in ["__import__('os').system('echo hi')", "().__class__.__bases__[0]",
                 "x.__globals__", "open('/etc/passwd')", "exec('1')", "eval('1')"]:
        with pytest.raises(ExpressionError):
            compile_expression(text)
    assert "os" not in calls


def test_check_reports_bad_index_with_column():
    expr = compile_expression("w[0] + w[5]")
    with pytest.raises(ExpressionError) as info:
        expr.check({"w": torch.zeros(3)})
    assert "out of range" in str(info.value) and info.value.column == 8


def test_check_reports_shape_mismatch():
    expr = compile_expression("a + b")
    with pytest.raises(ExpressionError) as info:
        expr.check({"a": torch.zeros(2), "b": torch.zeros(3)})
    assert "cannot compute 'a + b'" in str(info.value)


def test_constant_division_by_zero_is_refused_when_compiling():
    err = error("x + 1/0")
    assert "'1/0' divides by zero" in str(err) and err.column == 5


def test_constants():
    assert float(ev("pi + e + 0*x", x=0.0)) == pytest.approx(math.pi + math.e)


def test_common_subexpressions_are_computed_once():
    expr = compile_expression("(3 - x)*(3 - x) + (3 - x)")
    assert sum(1 for ins in expr.program if ins.text == "3 - x") == 1
    assert float(expr.evaluate({"x": torch.tensor(1.0)})) == 6


@pytest.mark.parametrize("text, column, op", [("a**", 2, "**"), ("x +", 3, "+"),
                                               ("2*", 2, "*"), ("w - ", 3, "-")])
def test_an_expression_cut_short_points_at_its_last_operator(text, column, op):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert info.value.column == column and f"missing after '{op}'" in str(info.value)
