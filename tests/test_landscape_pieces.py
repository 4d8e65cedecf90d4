"""The loss landscape over large data comes in pieces: a coarse grid at once, the full grid
a few rows per request, and a run's steps go in between."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import wait_state
from gdviz.core.analysis import landscape as landscape_module
from gdviz.core.analysis.landscape import landscape_grid
from gdviz.core.data import Dataset
from gdviz.core.params import ParamSpec
from gdviz.core.problem import Problem
from gdviz.qt import landscape_pieces
from gdviz.qt.landscape_pieces import LandscapeJob, next_piece


def line_problem(rows):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, rows)
    return Problem("w*x + b", "mse(y, t)", {"w": ParamSpec("0"), "b": ParamSpec("0")},
                   data=Dataset({"x": x, "t": 2 * x - 1}, "test"))


def job_for(xs, ys):
    return LandscapeJob(7, 1, np.zeros(2), [0, 1], xs, ys)


@pytest.mark.parametrize("two_d", [True, False])
def test_a_costly_grid_comes_coarse_then_whole(monkeypatch, two_d):
    monkeypatch.setattr(landscape_pieces, "PIECE_VALUES", 2_000 * 40)  # 2,000 rows: 40 points
    problem = line_problem(2_000)
    worker = SimpleNamespace(generation=1, problem=problem)
    xs = np.linspace(-1, 4, 24 if two_d else 100)
    ys = np.linspace(-3, 1, 20) if two_d else None
    job = job_for(xs, ys)
    answers = []
    finished = False
    while not finished:
        grid, finished = next_piece(job, worker)
        answers.append(grid)
    coarse, *middle, whole = answers
    assert len(coarse.xs) == len(xs) // 4 and (coarse.ys is None) == (not two_d)
    assert middle and all(grid is None for grid in middle)  # pieces are not drawn alone
    expected = landscape_grid(problem, np.zeros(2), [0, 1], xs, ys)
    np.testing.assert_allclose(whole.z, expected.z, rtol=1e-6)
    assert whole.token == 7 and coarse.token == 7


def test_a_cheap_grid_is_one_answer_and_huge_data_gets_fewer_points(monkeypatch):
    monkeypatch.setattr(landscape_pieces, "PIECE_VALUES", 500 * 120 * 120)
    worker = SimpleNamespace(generation=1, problem=line_problem(500))
    grid, finished = next_piece(job_for(np.linspace(0, 1, 120), np.linspace(0, 1, 120)), worker)
    assert finished and grid.z.shape == (120, 120)
    monkeypatch.setattr(landscape_module, "LANDSCAPE_VALUES", 500 * 30 * 30)
    grid, finished = next_piece(job_for(np.linspace(0, 1, 120), np.linspace(0, 1, 120)), worker)
    assert finished and grid.z.shape == (30, 30) and np.isfinite(grid.z).all()
    assert grid.xs[0] == 0 and grid.xs[-1] == 1  # the same range, fewer points


def test_a_cancelled_job_or_a_new_problem_stops_it_and_a_reset_does_not(monkeypatch):
    monkeypatch.setattr(landscape_pieces, "PIECE_VALUES", 100 * 3)
    worker = SimpleNamespace(generation=1, problem=line_problem(100))
    job = job_for(np.linspace(0, 1, 10), None)
    job.cancelled = True
    assert next_piece(job, worker) == (None, True)
    worker.generation = 2  # asked for before a reset, answered after: dropped
    assert next_piece(job_for(np.linspace(0, 1, 10), None), worker) == (None, True)
    job = LandscapeJob(7, 2, np.zeros(2), [0, 1], np.linspace(0, 1, 40), None)
    assert next_piece(job, worker)[0] is None          # under way...
    worker.generation = 3                              # ...a reset: the same problem
    answers = [next_piece(job, worker) for _ in range(30)]
    assert any(grid is not None and len(grid.xs) == 40 for grid, _ in answers)
    job = LandscapeJob(8, 3, np.zeros(2), [0, 1], np.linspace(0, 1, 40), None)
    next_piece(job, worker)
    worker.problem = line_problem(100)                 # another problem: stop
    assert next_piece(job, worker) == (None, True)


def open_a_line_of_20_000_rows(qtbot, window, tmp_path, seed):
    """As a user does: File > Open data on a line's points, then type w*x + b and its mse."""
    x = np.random.default_rng(seed).uniform(-3, 3, 20_000)
    path = tmp_path / "points.csv"
    path.write_text("x,t\n" + "\n".join(f"{a},{2 * a - 1}" for a in x))
    window.ask_path = lambda *a, **k: str(path)
    next(a for a in window.fileMenu.actions()
         if a.text().replace("&", "") == "Open data…").trigger()
    panel = window.problemPanel
    for edit, text in ((panel.functionEdit, "w*x + b"), (panel.lossEdit, "mse(y, t)")):
        edit.selectAll()
        qtbot.keyClick(edit, Qt.Key.Key_Delete)
        qtbot.keyClicks(edit, text)
    panel.flush()


def test_a_run_steps_while_the_landscape_is_computed(qtbot, window, tmp_path, monkeypatch):
    """On data large enough that the whole map takes hundreds of pieces, Play starts at
    once: the run's steps come before the map is whole."""
    monkeypatch.setattr(landscape_pieces, "PIECE_VALUES", 20_000 * 50)
    open_a_line_of_20_000_rows(qtbot, window, tmp_path, seed=1)
    pieces = []
    window.controller.landscapeReady.connect(
        lambda grid: pieces.append((grid.z.shape, window.controller.step)))
    qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(shape == (120, 120) for shape, _ in pieces), timeout=60_000)
    (coarse, _), *_ = pieces
    assert coarse == (30, 30)
    steps_when_whole = next(step for shape, step in pieces if shape == (120, 120))
    assert steps_when_whole > 0
    window.controller.pause()
    wait_state(qtbot, window, "paused", "finished")


def test_a_basin_map_over_large_data_is_refused_and_play_still_runs(qtbot, window, tmp_path):
    open_a_line_of_20_000_rows(qtbot, window, tmp_path, seed=2)
    view = window.trajectoryView
    qtbot.waitUntil(lambda: view.basinsCheck.isVisible(), timeout=10_000)
    qtbot.mouseClick(view.basinsCheck, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "No basin map: each of its 2,500 first starts" in view.hint.text(),
                    timeout=10_000)
    assert "20,000 rows" in view.hint.text()
    qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step > 0, timeout=20_000)
    window.controller.pause()
    wait_state(qtbot, window, "paused", "finished")


def test_affordable_axes_keep_the_ranges_and_cut_points_by_cost():
    from gdviz.core.analysis.landscape import affordable_axes

    xs, ys = np.linspace(-2, 3, 120), np.linspace(0, 1, 120)
    assert affordable_axes(xs, ys, 10_000)[0] is xs          # cheap: as asked
    fx, fy = affordable_axes(xs, ys, 1_000_000)              # 1e9 losses at most
    assert (len(fx), len(fy)) == (31, 31) and (fx[0], fx[-1], fy[0], fy[-1]) == (-2, 3, 0, 1)
    assert len(affordable_axes(xs, ys, 1_000_000, 4e9)[0]) == 63
    assert len(affordable_axes(np.linspace(0, 1, 400), None, 10_000_000)[0]) == 100
    assert len(affordable_axes(xs, ys, 10**9)[0]) == 8       # never fewer than 8
