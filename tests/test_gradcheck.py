"""Gradient check: autograd against finite differences, with kinks flagged."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gdviz.cli import main
from gdviz.core.analysis.gradcheck import check_gradients
from gdviz.core.problem import ParamSpec, Problem


def problem(function, loss="y", **params):
    return Problem(function, loss, {k: ParamSpec(v) for k, v in params.items()})


@pytest.mark.parametrize("function, loss, params", [
    ("(1 - a)**2 + 100*(b - a**2)**2", "y", {"a": "-1.5", "b": "2.0"}),
    ("sin(a) * exp(b) + log(c)", "(y - 1)**2", {"a": "0.3", "b": "-0.7", "c": "2.5"}),
    ("sum(w * x)", "(y - 2)**2", {"w": "randn(3, 4)", "x": "randn(4)"}),
    ("X + 1", "(3 - y)**2 / 2", {"X": "rand(1)"}),
    ("2*x**2 + 3", "y", {"x": "full((2,3), 4)"}),
])
def test_smooth_functions_pass(function, loss, params):
    check = check_gradients(problem(function, loss, **params))
    assert check.passed and not check.kinks
    assert max(e.rel_error for e in check.elements) < 1e-6
    assert len(check.elements) == check.total


@pytest.mark.parametrize("function, params, kinked", [
    ("abs(a) + b**2", {"a": "0.0", "b": "1.0"}, {"a"}),
    ("relu(a) + relu(b)", {"a": "0.0", "b": "2.0"}, {"a"}),
    ("clamp(c, 0, 1)", {"c": "[0.0, 0.5, 1.0]"}, {"c[0]", "c[2]"}),
])
def test_kinks_are_flagged_not_hidden(function, params, kinked):
    check = check_gradients(problem(function, **params))
    assert {e.label for e in check.kinks} == kinked
    assert check.passed  # a kink is reported, not counted as a failure
    for e in check.kinks:
        assert e.left != pytest.approx(e.right)
    assert "at a kink" in check.summary()


def test_a_wrong_gradient_fails():
    # detach() is not in gdviz's language, so spoil autograd from outside: compare a
    # problem's autograd with another problem's finite differences
    good = problem("a**3", a="1.2")
    check = check_gradients(good)
    assert check.passed
    from gdviz.core.analysis import gradcheck

    real = gradcheck._autograd
    try:
        gradcheck._autograd = lambda p, row: real(p, row) * 1.01
        bad = check_gradients(good)
    finally:
        gradcheck._autograd = real
    assert not bad.passed and bad.failures[0].rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert "1 FAILED" in bad.summary()


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(0.1, 3))
def test_smooth_anywhere_in_its_domain(a, b):
    check = check_gradients(problem("a*sin(a) + log(b)*a + b**3", a=repr(a), b=repr(b)))
    assert check.passed and not check.kinks


def test_a_large_parameter_is_checked_in_part():
    check = check_gradients(problem("sum(w*w)", w="randn(300, 300)"))
    assert check.total == 90_000 and 0 < len(check.elements) < check.total
    assert check.passed and "of 90000 elements checked" in check.summary()


def test_grad_check_on_the_command_line(capsys):
    assert main(["grad", "-f", "abs(a) + b**2", "-p", "a=0.0", "-p", "b=1.0", "--check"]) == 0
    out = capsys.readouterr().out
    assert "kink: left -1, right 1" in out and "gradient check:" in out
    assert main(["grad", "--preset", "rosenbrock", "--check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["check"]["passed"] is True and data["check"]["checked"] == 2
    assert {e["param"] for e in data["check"]["elements"]} == {"a", "b"}
    assert all(np.isfinite(e["rel_error"]) for e in data["check"]["elements"])
