"""The batched sweep driver: the engine's arithmetic and stop conditions without its history."""

import numpy as np
import pytest
import torch

from gdviz.core.analysis.sweep import Outcome, sweep
from gdviz.core.engine import Engine
from gdviz.core.model import RunSet, RunSettings
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.presets import load_preset
from gdviz.core.problem import ParamSpec, Problem
from gdviz.core.status import Status


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: one intra-op thread (two stall on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def engine_run(problem, optimizer, hypers, start, steps, tol=None):
    """One run through the engine (the reference): (values, step, status)."""
    runset = RunSet(problem.layout, problem.initial_flat(), steps, tol)
    runset.add(RunSettings(optimizer, normalize_hypers(optimizer, hypers), start=start))
    engine = Engine(problem, "cpu", steps, tol)
    for run in runset.engine_runs():
        engine.add_run(run)
    for batch in engine.run():
        runset.apply(batch)
    run = engine.export()[runset.runs[0].id]
    return run.values, run.step, run.status


def columns(problem):
    return [i for _, i in problem.layout.trainable_axes()]


@pytest.mark.parametrize("optimizer, hypers", [
    ("adam", {"lr": 0.01}), ("sgd", {"lr": 1e-3, "momentum": 0.9}),
    ("rmsprop", {"lr": 0.01}), ("adagrad", {"lr": 0.1}), ("sgd", {"lr": 1e-3})])
def test_each_row_matches_the_engine(optimizer, hypers):
    problem = load_preset("rosenbrock").build_problem()
    starts = np.array([[-1.5, 2.0], [0.5, -0.5], [1.2, 1.4]])
    result = sweep(problem, optimizer, normalize_hypers(optimizer, hypers),
                   problem.initial_flat(), starts, columns(problem), 150)
    for row, start in enumerate(starts):
        values, step, status = engine_run(problem, optimizer, hypers, start, 150)
        assert status == Status.FINISHED and step == 150
        np.testing.assert_allclose(result.points[row], values, rtol=1e-6, atol=1e-7)
    assert (result.steps == 150).all()
    assert set(result.outcome) <= {Outcome.UNFINISHED, Outcome.SETTLED}


def test_per_row_hypers_match_separate_runs():
    problem = load_preset("rosenbrock").build_problem()
    lrs = [1e-4, 1e-3, 3e-3]
    rows = [normalize_hypers("adam", {"lr": lr}) for lr in lrs]
    start = problem.initial_flat()
    result = sweep(problem, "adam", rows, start, np.repeat(start[None], 3, axis=0),
                   columns(problem), 80)
    for row, lr in enumerate(lrs):
        values, _, _ = engine_run(problem, "adam", {"lr": lr}, start, 80)
        np.testing.assert_allclose(result.points[row], values, rtol=1e-6, atol=1e-7)


def test_divergence_keeps_the_last_finite_point_like_the_engine():
    problem = Problem("x**2", specs={"x": ParamSpec("1")})
    hypers = normalize_hypers("sgd", {"lr": 1.5})
    result = sweep(problem, "sgd", hypers, problem.initial_flat(), np.array([[1.0], [0.0]]),
                   [0], 1000)
    values, step, status = engine_run(problem, "sgd", {"lr": 1.5}, np.array([1.0]), 1000)
    assert status == Status.DIVERGED
    assert result.outcome[0] == Outcome.DIVERGED
    assert result.steps[0] == step + 1  # the first step that was not finite
    np.testing.assert_array_equal(result.points[0], values)
    assert np.isfinite(result.loss[0]) and result.loss[0] == pytest.approx(values[0] ** 2, rel=1e-6)
    assert result.outcome[1] == Outcome.UNFINISHED or result.outcome[1] == Outcome.SETTLED
    assert result.points[1, 0] == 0.0


def test_tolerance_stops_a_row_at_the_step_the_engine_does():
    problem = Problem("x**2", specs={"x": ParamSpec("1")})
    starts = np.array([[1.0], [3.0], [0.001]])
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), problem.initial_flat(),
                   starts, [0], 500, tol=1e-6)
    for row, start in enumerate(starts):
        values, step, status = engine_run(problem, "sgd", {"lr": 0.1}, start, 500, tol=1e-6)
        assert status == Status.CONVERGED
        assert result.outcome[row] == Outcome.CONVERGED and result.steps[row] == step
        np.testing.assert_array_equal(result.points[row], values)
        assert result.loss[row] <= 1e-6


def test_a_start_outside_the_domain_diverges_at_step_0():
    problem = Problem("log(a) + a", specs={"a": ParamSpec("1")})
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), problem.initial_flat(),
                   np.array([[-1.0], [2.0]]), [0], 50)
    assert result.outcome[0] == Outcome.DIVERGED and result.steps[0] == 0
    assert result.points[0, 0] == -1.0 and np.isnan(result.loss[0])
    assert np.isnan(result.initial_loss[0]) and np.isfinite(result.initial_loss[1])


def test_settled_and_unfinished():
    problem = Problem("a**2 + b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    starts = np.array([[1.0, 1.0], [2.0, -1.0]])
    fast = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.3}), problem.initial_flat(),
                 starts, [0, 1], 200, xtol=1e-5)
    assert (fast.outcome == Outcome.SETTLED).all()
    # x_k = x_0 0.4^k, so step k moves 0.6 |x_k|: above 1e-5 for the last time at k = 12
    assert fast.steps[0] == 13
    slow = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 1e-4}), problem.initial_flat(),
                 starts, [0, 1], 200, xtol=1e-5)
    assert (slow.outcome == Outcome.UNFINISHED).all() and (slow.steps == 200).all()


def test_rows_cut_down_when_most_have_stopped_give_the_same_answers():
    # most rows converge early; the few left go on in smaller tensors
    problem = Problem("a**2 + 10*b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    rng = np.random.default_rng(0)
    starts = rng.uniform(-2, 2, size=(300, 2))
    starts[::10] *= 1e3  # these take longer
    hypers = normalize_hypers("adam", {"lr": 0.05})
    together = sweep(problem, "adam", hypers, problem.initial_flat(), starts, [0, 1], 400,
                     tol=1e-4, xtol=1e-6)
    for row in range(0, 300, 7):
        alone = sweep(problem, "adam", hypers, problem.initial_flat(), starts[row:row + 1],
                      [0, 1], 400, tol=1e-4, xtol=1e-6)
        assert together.outcome[row] == alone.outcome[0]
        assert together.steps[row] == alone.steps[0]
        np.testing.assert_allclose(together.points[row], alone.points[0], rtol=1e-6)
    assert (together.outcome == Outcome.CONVERGED).sum() > 200


def test_held_elements_stay_at_the_base_values():
    problem = Problem("(a - c)**2 + (b + c)**2", specs={"a": ParamSpec("0"), "b": ParamSpec("0"),
                                                        "c": ParamSpec("2")})
    assert problem.names == ["a", "c", "b"]
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), problem.initial_flat(),
                   np.array([[0.0, 0.0], [5.0, 5.0]]), [0, 2], 200)
    np.testing.assert_allclose(result.points, [[2.0, -2.0], [2.0, -2.0]], atol=1e-5)


def test_some_elements_of_a_vector_trained():
    problem = Problem("w[0]**2 + w[1]**2 + w[2]**2", specs={"w": ParamSpec("[1, 2, 3]")})
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), problem.initial_flat(),
                   np.array([[1.0, 3.0]]), [0, 2], 10)
    np.testing.assert_allclose(result.points[0], [0.8 ** 10, 3 * 0.8 ** 10], rtol=1e-5)
    # w[1] is held at 2: the loss includes its 4
    assert result.loss[0] == pytest.approx(4 + 10 * 0.8 ** 20, rel=1e-5)


def test_should_stop_ends_the_sweep_early():
    problem = Problem("a**2 + b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 1e-4}), problem.initial_flat(),
                   np.ones((4, 2)), [0, 1], 10_000, should_stop=lambda: True)
    assert (result.outcome == Outcome.UNFINISHED).all()
    assert (result.steps < 100).all()


def test_a_row_that_never_moves_has_settled_at_step_0():
    problem = Problem("a**2 + b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})
    result = sweep(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), problem.initial_flat(),
                   np.zeros((2, 2)), [0, 1], 50, xtol=1e-6)
    assert (result.outcome == Outcome.SETTLED).all() and (result.steps == 0).all()


def test_matrix_parameters_and_frozen_ones_match_the_engine():
    problem = Problem("sum(W**2 * c) + sum(v) * W[0, 1] + v[1]**2",
                      specs={"W": ParamSpec("randn((2, 3))"), "v": ParamSpec("[1, -2]"),
                             "c": ParamSpec("1.5", frozen=True)})
    start = problem.initial_flat()
    cols = columns(problem)
    assert len(cols) == 8  # W and v, not c
    result = sweep(problem, "adam", normalize_hypers("adam", {"lr": 0.05}), start,
                   start[None, cols], cols, 60)
    values, _, _ = engine_run(problem, "adam", {"lr": 0.05}, start, 60)
    np.testing.assert_allclose(result.points[0], values[cols], rtol=1e-6, atol=1e-7)
