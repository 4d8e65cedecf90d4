"""Curvature: the Hessian against known answers, its eigenvalues and the stable learning rates."""

import math

import numpy as np
import pytest
import torch

from gdviz.core.analysis.curvature import (hessian_at, hessian_matrix, lambda_max_at,
                                           stability_limits)
from gdviz.core.errors import GdvizError
from gdviz.core.presets import load_preset
from gdviz.core.problem import ParamSpec, Problem


def test_rosenbrock_hessian_at_the_minimum():
    problem = load_preset("rosenbrock").build_problem()
    np.testing.assert_array_equal(hessian_matrix(problem, np.array([1.0, 1.0])),
                                  [[802.0, -400.0], [-400.0, 200.0]])
    c = hessian_at(problem, np.array([1.0, 1.0]))
    expected = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))
    np.testing.assert_allclose(c.eigenvalues, expected)
    assert c.exact and c.columns == ["a", "b"]
    assert list(c.eigenvalues) == sorted(c.eigenvalues)
    assert c.condition_number == pytest.approx(expected[1] / expected[0])
    summary = c.summary(0.9)
    assert set(summary) == {"eigenvalues", "condition_number", "lr_limit_sgd",
                            "lr_limit_momentum"}
    assert summary["lr_limit_sgd"] == pytest.approx(2 / expected[1])
    assert summary["lr_limit_momentum"] == pytest.approx(3.8 / expected[1])
    # eigenvectors: H v = lambda v
    h = c.hessian
    for k in range(2):
        np.testing.assert_allclose(h @ c.eigenvectors[:, k], c.eigenvalues[k] * c.eigenvectors[:, k],
                                   atol=1e-9)


def test_matches_torch_autograd_functional_hessian():
    problem = Problem("sin(a)*exp(b) + a**3*b**2 + log1p(c**2)*a",
                      specs={"a": ParamSpec("0.3"), "b": ParamSpec("-0.7"), "c": ParamSpec("1.1")})
    point = problem.initial_flat()

    def f(x):
        a, b, c = x
        return torch.sin(a) * torch.exp(b) + a ** 3 * b ** 2 + torch.log1p(c ** 2) * a

    reference = torch.autograd.functional.hessian(f, torch.tensor(point, dtype=torch.float64))
    np.testing.assert_allclose(hessian_matrix(problem, point), reference.numpy(), rtol=1e-6)


def test_quadratic_limits_are_two_over_lambda():
    problem = Problem("0.5*(a**2 + 100*b**2)", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    c = hessian_at(problem)
    np.testing.assert_allclose(c.eigenvalues, [1.0, 100.0])
    limits = stability_limits(c.eigenvalues, 0.9)
    assert limits["lr_limit_sgd"] == pytest.approx(0.02)
    assert limits["lr_limit_momentum"] == pytest.approx(0.038)
    assert c.condition_number == pytest.approx(100.0)


def test_no_upward_curvature_has_no_limit_and_singular_has_infinite_condition():
    problem = Problem("-(a**2) + 0*b", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    c = hessian_at(problem)
    assert math.isinf(c.condition_number)
    assert stability_limits(c.eigenvalues) == {"lr_limit_sgd": math.inf,
                                               "lr_limit_momentum": math.inf}
    with pytest.raises(GdvizError, match="momentum"):
        stability_limits([1.0], 1.0)


def test_frozen_parameters_are_not_in_the_hessian():
    problem = Problem("a**2 * c + 3*b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1"),
                                                   "c": ParamSpec("5", frozen=True)})
    c = hessian_at(problem)
    assert c.columns == ["a", "b"]
    np.testing.assert_allclose(c.eigenvalues, [6.0, 10.0])


def test_lanczos_finds_the_top_eigenvalues_of_a_large_problem():
    n = 600
    weights = " + ".join(f"{k + 1}*w[{k}]**2" for k in range(0, n, 60))  # a few distinct ones
    problem = Problem(f"sum(w**2) + {weights}", specs={"w": ParamSpec(f"randn({n})")})
    c = hessian_at(problem, top=4)
    assert not c.exact and c.condition_number is None and c.hessian is None
    # 2 + 2 (k + 1) for the weighted elements: the top four are 2 + 2*(41, 51, 61... )
    expected = sorted(2.0 + 2.0 * (k + 1) for k in range(0, n, 60))[-4:]
    np.testing.assert_allclose(c.eigenvalues, expected, rtol=1e-6)
    assert c.eigenvectors.shape == (n, 4)
    assert abs(c.eigenvectors[540, -1]) == pytest.approx(1.0, abs=1e-6)


def test_lambda_max_along_points_batched_and_one_by_one():
    problem = load_preset("rosenbrock").build_problem()
    points = np.array([[1.0, 1.0], [-1.5, 2.0], [0.0, 0.0]])
    batched = lambda_max_at(problem, points)
    for row, point in enumerate(points):
        assert batched[row] == pytest.approx(hessian_at(problem, point).lambda_max)
    lanczos = lambda_max_at(problem, points, exact_limit=0)
    np.testing.assert_allclose(lanczos, batched, rtol=1e-8)


def test_lambda_max_is_nan_where_the_hessian_is_not_finite():
    problem = Problem("sqrt(a) + b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    values = lambda_max_at(problem, np.array([[1.0, 1.0], [0.0, 1.0], [4.0, 0.0]]))
    assert values[0] == pytest.approx(2.0) and np.isnan(values[1]) and values[2] == pytest.approx(2.0)


def test_a_point_where_the_hessian_is_not_finite_gets_a_clear_message():
    problem = Problem("sqrt(a) + b**2", specs={"a": ParamSpec("0"), "b": ParamSpec("1")})
    with pytest.raises(GdvizError, match="not finite at this point \\(a = 0, b = 1\\)"):
        hessian_at(problem)
    problem = Problem("abs(a)**1.5 + b**2", specs={"a": ParamSpec("0"), "b": ParamSpec("1")})
    with pytest.raises(GdvizError, match="the Hessian of the loss is not finite"):
        hessian_at(problem)
