"""The learning-rate range test: the divergence edge where theory puts it."""

import numpy as np
import pytest
import torch

from gdviz.core.analysis.lr_range import log_lrs, lr_range_test, max_stable_lr, suggest_lr
from gdviz.core.errors import GdvizError
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.presets import load_preset
from gdviz.core.problem import ParamSpec, Problem


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: one intra-op thread (two stall on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quadratic():
    return Problem("0.5*(a**2 + 100*b**2)", specs={"a": ParamSpec("1"), "b": ParamSpec("1")})


def test_quadratic_edge_is_two_over_lambda_max():
    result = lr_range_test(quadratic(), "sgd", normalize_hypers("sgd", {}))
    assert len(result.lrs) == 200 and result.lrs[0] == pytest.approx(1e-6)
    assert result.lrs[-1] == pytest.approx(10)
    # 2 / 100: the largest lr whose final loss is below the initial loss is within 10%
    assert 0.018 <= result.max_stable_lr < 0.02
    assert result.initial_loss == pytest.approx(50.5)
    above = result.lrs > 0.0201
    assert not np.any(result.final_loss[above] < result.initial_loss)
    # the suggestion lies where the loss falls, below the edge
    assert 1e-6 < result.suggested_lr < result.max_stable_lr
    assert result.diverged[-1] and np.isnan(result.final_loss[-1])
    assert set(result.summary()) == {"lrs", "final_loss", "suggested_lr", "max_stable_lr"}


def test_finer_spacing_finds_the_edge_closer():
    lrs = log_lrs(1e-3, 0.1, 400)
    result = lr_range_test(quadratic(), "sgd", normalize_hypers("sgd", {}), lrs=lrs)
    assert result.max_stable_lr == pytest.approx(0.02, rel=0.012)


def test_momentum_moves_the_edge_to_two_one_plus_beta_over_lambda():
    lrs = log_lrs(1e-3, 1.0, 400)
    result = lr_range_test(quadratic(), "sgd", normalize_hypers("sgd", {"momentum": 0.5}),
                           lrs=lrs, steps=300)
    assert result.max_stable_lr == pytest.approx(2 * 1.5 / 100, rel=0.03)


def test_adam_and_a_start_of_our_choosing():
    problem = load_preset("rosenbrock").build_problem()
    result = lr_range_test(problem, "adam", normalize_hypers("adam", {}),
                           start=np.array([0.0, 0.0]), lrs=log_lrs(1e-4, 1.0, 30), steps=50)
    assert result.initial_loss == pytest.approx(1.0)
    assert result.max_stable_lr is not None and result.suggested_lr is not None
    assert np.isfinite(result.final_loss).any()


def test_helpers():
    lrs = np.array([1e-3, 1e-2, 1e-1, 1.0])
    assert max_stable_lr(lrs, np.array([1.0, 0.5, 2.0, np.nan]), 1.0) == 1e-2
    assert max_stable_lr(lrs, np.array([1.0, 1.5, 2.0, np.nan]), 1.0) is None
    steepest = np.array([1.0, 0.95, 0.3, 0.28, np.nan])  # falls fastest around 1e-3
    assert suggest_lr(np.geomspace(1e-4, 1, 5), steepest, 0.1) == pytest.approx(1e-3)
    assert suggest_lr(lrs, np.array([1.0, 1.0, 1.0, 1.0]), 1.0) is None


@pytest.mark.parametrize("args, message", [
    ((1.0, 0.1, 10), "the lowest learning rate \\(1\\) must be below the highest"),
    ((1e-3, 1e-3, 10), "must be below"),
    ((1e-3, 1.0, 0), "the number of learning rates must be 2 to 10000"),
    ((1e-3, 1.0, 100_000), "the number of learning rates must be 2 to 10000"),
    ((0.0, 1.0, 10), "the lowest learning rate must be between"),
    ((1e-3, 1e3, 10), "the highest learning rate must be between"),
    ((float("nan"), 1.0, 10), "the lowest learning rate must be between"),
])
def test_bad_ranges_are_refused(args, message):
    with pytest.raises(GdvizError, match=message):
        log_lrs(*args)


def test_a_start_outside_the_domain_is_refused():
    problem = Problem("log(a)", specs={"a": ParamSpec("-1")})
    with pytest.raises(GdvizError, match="not finite at the start"):
        lr_range_test(problem, "sgd", normalize_hypers("sgd", {}), lrs=log_lrs(1e-3, 1, 5))


def test_the_suggestion_never_lies_past_the_valleys_bottom():
    """A curve that reaches its lowest loss, spikes, and falls again (an unstable band whose
    runs happen to end low): the suggestion stays on the way down to the first bottom."""
    lrs = np.geomspace(1e-4, 1e-1, 7)
    final = np.array([10.0, 9.0, 2.0, 0.0, 0.0, 120.0, 1.0])
    suggested = suggest_lr(lrs, final, 1e-1)
    assert suggested is not None and suggested <= lrs[3]
    assert suggested == pytest.approx(lrs[2])   # the steepest fall before the bottom
