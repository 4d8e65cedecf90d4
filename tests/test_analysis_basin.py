"""Basin maps: known minima, basins that cover the grid, and bad input refused."""

import numpy as np
import pytest
import torch

from gdviz.core.analysis.basin import (BasinMap, basin_axes, basin_chunks, basin_map,
                                       default_ranges, group_ends)
from gdviz.core.analysis.sweep import Outcome
from gdviz.core.errors import GdvizError
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.presets import load_preset
from gdviz.core.problem import ParamSpec, Problem

HIMMELBLAU_MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186],
                              [3.584428, -1.848126]])


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: one intra-op thread (two stall on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def preset_map(name, optimizer, hypers, grid, steps=None, **kw) -> BasinMap:
    session = load_preset(name)
    problem = session.build_problem()
    return basin_map(problem, optimizer, normalize_hypers(optimizer, hypers),
                     steps or session.steps, session.tol, session.landscape["x"],
                     session.landscape["y"], grid, **kw)


def test_himmelblau_with_adam_has_four_basins_covering_the_grid():
    result = preset_map("himmelblau", "adam", {"lr": 0.05}, 60)
    assert len(result.basins) == 4
    found = np.array([b.point for b in result.basins])
    for minimum in HIMMELBLAU_MINIMA:
        assert np.abs(found - minimum).max(axis=1).min() < 1e-3
    assert all(b.loss < 1e-6 for b in result.basins)
    covered = sum(b.fraction for b in result.basins)
    assert covered > 0.99
    assert covered + result.diverged + result.unfinished == pytest.approx(1.0)
    # every basin is a real share of the map, largest first
    fractions = [b.fraction for b in result.basins]
    assert fractions == sorted(fractions, reverse=True) and min(fractions) > 0.15
    # each labelled start ended at its basin's minimum
    labelled = result.labels >= 0
    ends = result.ends[labelled]
    points = found[result.labels[labelled]]
    assert np.abs(ends - points).max() < 0.05
    # the starts right at a minimum need the fewest steps
    near = np.abs(result.starts - [3.0, 2.0]).max(axis=1).argmin()
    assert result.steps[near] <= np.median(result.steps)


def test_the_map_is_x_major_like_the_landscape():
    result = preset_map("himmelblau", "sgd", {"lr": 0.01}, 30)
    image = result.image(result.labels)
    assert image.shape == (30, 30)
    i, j = 25, 3
    assert tuple(result.starts[i * 30 + j]) == (result.xs[i], result.ys[j])
    assert image[i, j] == result.labels[i * 30 + j]


def test_rastrigin_momentum_escapes_local_minima_plain_sgd_does_not():
    sgd = preset_map("rastrigin", "sgd", {"lr": 0.002}, 50)
    momentum = preset_map("rastrigin", "sgd", {"lr": 0.002, "momentum": 0.95}, 50)
    # plain SGD stops in the local minimum nearest its start: one basin per minimum on the
    # map (about 11 x 11 of them), each as large as its cell
    assert len(sgd.basins) >= 100
    # momentum carries runs over the ridges towards the centre: lower losses, and the
    # minima next to the global one draw more starts than their own cells
    assert np.nanmean(momentum.loss) < np.nanmean(sgd.loss) - 1.0
    centre = [b.fraction for b in momentum.basins if np.abs(b.point).max() < 1.5]
    centre_sgd = [b.fraction for b in sgd.basins if np.abs(b.point).max() < 1.5]
    assert sum(centre) > 1.3 * sum(centre_sgd)


def test_held_parameters_and_chosen_axes():
    problem = Problem("(a - c)**2 + (b + c)**2", specs={"a": ParamSpec("0"), "b": ParamSpec("0"),
                                                        "c": ParamSpec("2")})
    names, indices = basin_axes(problem, ["a", "b"])
    assert names == ("a", "b") and indices == (0, 2)
    result = basin_map(problem, "sgd", normalize_hypers("sgd", {"lr": 0.1}), 300, None,
                       (-5, 5), (-5, 5), 12, axes=["a", "b"])
    assert len(result.basins) == 1 and result.basins[0].fraction == 1.0
    np.testing.assert_allclose(result.basins[0].point, [2.0, -2.0], atol=1e-4)


def test_chunks_cover_the_grid_and_match_one_pass():
    session = load_preset("himmelblau")
    problem = session.build_problem()
    hypers = normalize_hypers("sgd", {"lr": 0.01})
    chunks = list(basin_chunks(problem, "sgd", hypers, 200, None, (-5, 5), (-5, 5), 20,
                               chunk_starts=100))
    assert [(c.start, c.stop) for c in chunks] == [(k, k + 100) for k in range(0, 400, 100)]
    whole = basin_map(problem, "sgd", hypers, 200, None, (-5, 5), (-5, 5), 20)
    np.testing.assert_array_equal(np.concatenate([c.result.outcome for c in chunks]),
                                  whole.outcome)
    np.testing.assert_allclose(np.concatenate([c.result.points for c in chunks]), whole.ends)


def test_a_coarse_map_can_stop_early():
    session = load_preset("himmelblau")
    problem = session.build_problem()
    hypers = normalize_hypers("sgd", {"lr": 0.01})
    first = next(basin_chunks(problem, "sgd", hypers, 100, None, (-5, 5), (-5, 5), 200,
                              chunk_starts=1000))
    assert first.stop - first.start == 1000


def test_diverged_and_unfinished_are_counted():
    session = load_preset("himmelblau")
    problem = session.build_problem()
    # lr 0.05 makes plain SGD blow up from most starts
    result = basin_map(problem, "sgd", normalize_hypers("sgd", {"lr": 0.05}), 100, None,
                       (-5, 5), (-5, 5), 20)
    assert result.diverged > 0.3
    assert (result.labels[result.outcome == Outcome.DIVERGED] == -1).all()
    slow = basin_map(problem, "sgd", normalize_hypers("sgd", {"lr": 1e-5}), 50, None,
                     (-5, 5), (-5, 5), 10)
    assert slow.unfinished == 1.0 and slow.basins == []
    summary = slow.summary()
    assert summary["grid"] == [10, 10] and summary["starts"] == 100
    assert summary["basins"] == [] and summary["unfinished"] == 1.0


def test_group_ends_merges_neighbours_and_splits_distant_points():
    rng = np.random.default_rng(1)
    a = [1.0, 1.0] + 1e-4 * rng.standard_normal((50, 2))
    b = [-2.0, 0.5] + 1e-4 * rng.standard_normal((30, 2))
    valley = np.column_stack([np.linspace(3, 5, 40), np.full(40, -3.0)])  # a line of minima
    ends = np.concatenate([a, b, valley])
    loss = np.concatenate([np.full(50, 0.1), np.full(30, 0.2), np.linspace(1, 0.5, 40)])
    outcome = np.full(len(ends), int(Outcome.SETTLED), dtype=np.int8)
    outcome[:5] = Outcome.DIVERGED
    labels, basins = group_ends(ends, loss, outcome, eps=0.1)
    assert len(basins) == 3
    assert [b.count for b in basins] == [45, 40, 30]
    assert (labels[:5] == -1).all() and len(set(labels[5:50])) == 1
    np.testing.assert_allclose(basins[1].point, [5.0, -3.0])  # the lowest end of the valley
    assert sum(b.fraction for b in basins) == pytest.approx(115 / 120)


def test_default_ranges():
    base = np.array([0.0, 4.0, 7.0])
    assert default_ranges(base, (0, 1)) == ((-1.0, 1.0), (-2.0, 10.0))
    assert default_ranges(base, (0, 2), {"x": [-5, 5]}) == ((-5.0, 5.0), (-3.5, 17.5))


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": 0}, "the grid must be 2 to 1000"),
    ({"grid": 100_000}, "the grid must be 2 to 1000"),
    ({"x_range": (1, -1)}, "the x range must have LO below HI"),
    ({"y_range": (0, float("inf"))}, "the y range must be finite"),
    ({"axes": ["a", "a"]}, "the two axes must differ"),
    ({"axes": ["a", "z"]}, "'z' is not a trainable parameter element"),
])
def test_bad_settings_are_refused(kwargs, message):
    problem = load_preset("himmelblau").build_problem()
    args = {"x_range": (-5, 5), "y_range": (-5, 5), "grid": 10, **kwargs}
    with pytest.raises(GdvizError, match=message):
        basin_map(problem, "sgd", normalize_hypers("sgd", {}), 10, None, **args)


def test_a_one_parameter_function_has_no_basin_map():
    problem = Problem("x**2", specs={"x": ParamSpec("1")})
    with pytest.raises(GdvizError, match="needs two trainable parameter elements.*only one"):
        basin_axes(problem)
    frozen = Problem("a**2 + b**2", specs={"a": ParamSpec("1"), "b": ParamSpec("1", True)})
    with pytest.raises(GdvizError, match="only one"):
        basin_map(frozen, "sgd", normalize_hypers("sgd", {}), 10, None, (-1, 1), (-1, 1), 4)
