"""A loss that is a mean over the data's rows is computed chunk by chunk on large data:
which losses qualify, and that chunks give the loss, gradient and steps of one pass."""

import re

import numpy as np
import pytest
from hypothesis import event, given, settings, strategies as st

from gdviz.core import rowwise
from gdviz.core.data import Dataset
from gdviz.core.engine import Engine
from gdviz.core.errors import GdvizError
from gdviz.core.model import RunSet, RunSettings
from gdviz.core.params import ParamSpec
from gdviz.core.problem import Problem

ROWS = 101


def make_problem(function, loss, specs, rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, rows)
    data = Dataset({"x": x, "t": (rng.uniform(0, 1, rows) < 0.5) * 1.0}, "test")
    return Problem(function, loss, {n: ParamSpec(v) for n, v in specs.items()}, data=data)


@pytest.mark.parametrize("function, loss, specs, separable", [
    ("w*x + b", "mse(y, t)", {"w": "0", "b": "0"}, True),
    ("w*x + b", "mean((y - t)**2)", {"w": "0", "b": "0"}, True),
    ("w*x + b", "mse(y, t) + 0.01*w**2", {"w": "0", "b": "0"}, True),  # a weight penalty
    ("w*x + b", "2*mse(y, t) - mae(y, t)/3", {"w": "0", "b": "0"}, True),
    ("sigmoid(stack(x, t) @ W + c) @ v", "bce(y, t)",
     {"W": "randn(2, 4)", "c": "zeros(4)", "v": "randn(4)"}, True),
    ("w", "mse(y, t)", {"w": "0"}, True),
    ("w*x + b", "sum((y - t)**2)", {"w": "0", "b": "0"}, False),  # a sum, not a mean
    ("w*x + b", "(y - t)**2", {"w": "0", "b": "0"}, False),      # summed by the engine
    ("w*x + b", "mse(y, t)*mse(y, t)", {"w": "0", "b": "0"}, False),
    ("w*x + b", "log(mse(y, t))", {"w": "0", "b": "0"}, False),
    ("w*x + b", "max(y) + mse(y, t)", {"w": "0", "b": "0"}, False),
    ("w*(x - mean(x))", "mse(y, t)", {"w": "0"}, False),          # a mean inside
    ("w*x + b", "mse(y, t)", {"w": f"zeros({ROWS})", "b": "0"}, False),  # as long as the data
    ("x @ w", "mse(y, t)", {"w": f"zeros({ROWS})"}, False),
])
def test_which_losses_are_means_over_rows(function, loss, specs, separable):
    assert make_problem(function, loss, specs).mean_over_rows is separable


def losses_and_steps(problem, chunked, steps=3, runs=("sgd", "adam")):
    """The loss at the start and every run's values after a few steps, with the data in
    chunks of 10 rows or in one pass."""
    saved = rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS
    rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS = (10, 10) if chunked else (1 << 40, 1)
    try:
        runset = RunSet(problem.layout, problem.initial_flat(), steps)
        for optimizer in runs:
            runset.add(RunSettings(optimizer, {"lr": 0.01}))
        engine = Engine(problem, "cpu", steps)
        used = engine._chunks(len(runs))
        for run in runset.engine_runs():
            engine.add_run(run)
        start = engine.loss_at(problem.initial_flat())
        for batch in engine.run():
            runset.apply(batch)
        return used, start, np.stack([r.values for r in engine.export().values()])
    finally:
        rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS = saved


def test_chunks_give_the_loss_and_steps_of_one_pass():
    problem = make_problem("sigmoid(tanh(stack(x, t) @ W + c) @ v)", "bce(y, t) + 0.1*sum(v**2)",
                           {"W": "randn(2, 4)", "c": "zeros(4)", "v": "randn(4)"})
    chunks, loss, values = losses_and_steps(problem, chunked=True)
    assert len(chunks) == 11 and sum(b - a for a, b, _, _ in chunks) == ROWS
    assert sum(share for _, _, share, _ in chunks) == pytest.approx(1)
    plain, loss_once, values_once = losses_and_steps(problem, chunked=False)
    assert plain is None
    assert loss == pytest.approx(loss_once, rel=1e-5)
    np.testing.assert_allclose(values, values_once, rtol=1e-5, atol=1e-6)


def test_no_chunks_where_they_would_change_the_loss_or_do_not_pay():
    summed = make_problem("w*x + b", "sum((y - t)**2)", {"w": "0", "b": "0"})
    assert losses_and_steps(summed, chunked=True)[0] is None
    small = make_problem("w*x + b", "mse(y, t)", {"w": "0", "b": "0"})
    assert Engine(small, "cpu")._chunks(1) is None  # 101 rows: one pass


def test_mini_batches_and_epoch_losses_with_chunks():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 60)
    data = Dataset({"x": x, "t": 3 * x + 1}, "test")

    def fit(chunked):
        problem = Problem("w*x + b", "mse(y, t)", {"w": ParamSpec("0"), "b": ParamSpec("0")},
                          data=data, batch_size=16)
        saved = rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS
        rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS = \
            (8, 8) if chunked else (1 << 40, 1)
        try:
            runset = RunSet(problem.layout, problem.initial_flat(), 20)
            runset.add(RunSettings("sgd", {"lr": 0.05}))
            engine = Engine(problem, "cpu", 20)
            for run in runset.engine_runs():
                engine.add_run(run)
            for batch in engine.run():
                runset.apply(batch)
            return [loss for _, loss in runset.runs[0].epoch_losses]
        finally:
            rowwise.CHUNK_VALUES, rowwise.CHUNK_MIN_ROWS = saved

    chunked, once = fit(True), fit(False)
    assert len(chunked) >= 4
    np.testing.assert_allclose(chunked, once, rtol=1e-5)


# --- any expression the analysis accepts gives one pass's numbers in chunks ------------------

_leaves = st.sampled_from(["x", "t", "w", "b", "v", "1.5", "w*x", "x*t"])


def _combine(inner):
    unary = st.builds(lambda f, a: f"{f}({a})",
                      st.sampled_from(["sin", "exp", "tanh", "sigmoid", "abs", "mean", "sum",
                                       "max", "softplus"]), inner)
    binary = st.builds(lambda a, op, b: f"({a} {op} {b})", inner,
                       st.sampled_from(["+", "-", "*", "/"]), inner)
    helper = st.builds(lambda f, a, b: f"{f}({a}, {b})",
                       st.sampled_from(["mse", "mae", "huber", "max", "min"]), inner, inner)
    return unary | binary | helper | st.builds(lambda a: f"stack({a}, x) @ M", inner)


expressions = st.recursive(_leaves, _combine, max_leaves=6)


@settings(max_examples=150, deadline=None, database=None)
@given(expressions, st.sampled_from(["mse(y, t)", "mean(y)", "mae(y, t) + 0.5*mse(y, x)",
                                     "mse(y, t) * mse(y, t)", "huber(y, t, abs(x)) - 0.1",
                                     "bce_logits(y, t)"]))
def test_chunks_match_one_pass_wherever_the_analysis_allows_them(function, loss):
    function = f"w*({function})"  # at least one parameter
    specs = {"w": "0.5", "b": "-0.25", "v": "randn(1)", "M": "randn(2)"}
    try:
        problem = make_problem(function, loss, {n: s for n, s in specs.items()
                                                if re.search(rf"\b{n}\b", function)})
    except GdvizError:  # not a valid problem (no parameter, a shape that does not fit...)
        event("not a problem")
        return
    event(f"mean over rows: {problem.mean_over_rows}")
    if not problem.mean_over_rows:
        return
    _, loss_chunked, values_chunked = losses_and_steps(problem, chunked=True, runs=("sgd",))
    _, loss_once, values_once = losses_and_steps(problem, chunked=False, runs=("sgd",))
    np.testing.assert_allclose(loss_chunked, loss_once, rtol=1e-4, atol=1e-5, equal_nan=True)
    np.testing.assert_allclose(values_chunked, values_once, rtol=1e-4, atol=1e-5,
                               equal_nan=True)



def test_sweeps_and_lr_range_tests_go_in_chunks_with_the_same_results(monkeypatch):
    from gdviz.core.analysis.lr_range import log_lrs, lr_range_test

    problem = make_problem("w*x + b", "mse(y, t)", {"w": "0", "b": "0"})
    lrs = log_lrs(1e-3, 3.0, 12)
    once = lr_range_test(problem, "adam", {"lr": 0.1}, lrs=lrs, steps=20)
    monkeypatch.setattr(rowwise, "CHUNK_VALUES", 40)
    monkeypatch.setattr(rowwise, "CHUNK_MIN_ROWS", 10)
    assert len(problem.chunked_losses(12, "cpu")) == 11
    chunked = lr_range_test(problem, "adam", {"lr": 0.1}, lrs=lrs, steps=20)
    np.testing.assert_allclose(chunked.final_loss, once.final_loss, rtol=1e-4, equal_nan=True)
    assert chunked.suggested_lr == pytest.approx(once.suggested_lr)
