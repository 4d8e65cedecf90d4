"""Schedules, gradient clipping, the lr plot and the 3-D tab, driven in the window as a user
drives them."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from conftest import wait_state
from gdviz.core.presets import load_preset


def run_steps(qtbot, window, n):
    target = window.controller.step + n
    window.controls.stepCountSpin.setValue(n)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == target
                    and window.controller.state == "paused", timeout=30_000)
    window.redraw()


def choose(qtbot, combo, title):
    """Pick an entry of a combo box with the keyboard, as a user does: focus, then arrows."""
    combo.setFocus()
    target = combo.findText(title)
    assert target >= 0, title
    while combo.currentIndex() != target:
        key = Qt.Key.Key_Down if combo.currentIndex() < target else Qt.Key.Key_Up
        qtbot.keyClick(combo, key)


def type_into(qtbot, widget, text):
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClick(widget, Qt.Key.Key_Backspace)
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Qt.Key.Key_Return)


def torch_rosenbrock(steps, lr, make_scheduler, clip):
    """The same run in plain torch: SGD, torch's own scheduler, clip_grad_norm_."""
    a = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([a, b], lr=lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (1 - a) ** 2 + 100 * (b - a ** 2) ** 2
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([a, b], clip)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array([a.item(), b.item()]), np.array(lrs)


@pytest.fixture
def sgd_rosenbrock(window):
    session = load_preset("rosenbrock")
    run = session.runs[0]
    session = session.with_changes(runs=[replace(run, optimizer="sgd", hypers={"lr": 1e-3})])
    assert window.load_session(session)
    return window


def test_step_schedule_and_clip_follow_torch(qtbot, sgd_rosenbrock):
    window = sgd_rosenbrock
    box = window.problemPanel.scheduleBox
    form = box._form
    # constant: no options shown
    assert not any(form.isRowVisible(w) for w in box._option_rows.values())
    choose(qtbot, box.scheduleCombo, "step")
    assert form.isRowVisible(box.stepSizeSpin) and form.isRowVisible(box.gammaSpin)
    assert not form.isRowVisible(box.warmupSpin) and not form.isRowVisible(box.minLrEdit)
    type_into(qtbot, box.stepSizeSpin, "10")
    type_into(qtbot, box.gammaSpin, "0.5")
    type_into(qtbot, box.clipEdit, "5")
    run = window.controller.selected
    assert run.settings.schedule.name == "step" and run.settings.schedule.step_size == 10
    assert run.settings.clip_norm == 5.0
    assert "x0.5 every 10 steps" in run.label and "clip 5" in run.label
    assert "every 10 steps" in window.runsPanel.table.item(0, 1).text()

    run_steps(qtbot, window, 35)
    values, lrs = torch_rosenbrock(
        35, 1e-3, lambda o: torch.optim.lr_scheduler.StepLR(o, 10, 0.5), 5.0)
    np.testing.assert_allclose(run.values, values, rtol=1e-5, atol=1e-7)
    lr_plot = window.findChild(QWidget, "lrPlot")
    assert lr_plot is window.lrPlot
    steps, plotted = lr_plot.points(run.id)
    assert len(steps) == len(run.history) > 30
    np.testing.assert_allclose(plotted, lrs[steps.astype(int)], rtol=1e-12)
    plan_x, plan_y = lr_plot.plan[run.id].getData()
    assert plan_x[-1] == window.controller.runset.steps - 1  # the whole schedule, faint
    assert window.controller.summary()["lr"] == pytest.approx(1e-3 * 0.5 ** 3)


def test_cosine_mid_run_and_bad_values_are_named(qtbot, sgd_rosenbrock):
    window = sgd_rosenbrock
    box = window.problemPanel.scheduleBox
    run = window.controller.selected
    type_into(qtbot, box.clipEdit, "-1")
    assert box.errorLabel.isVisible() and "above 0" in box.errorLabel.text()
    assert run.settings.clip_norm is None
    type_into(qtbot, box.clipEdit, "")
    assert not box.errorLabel.isVisible()

    choose(qtbot, box.scheduleCombo, "warm-up + cosine")
    assert box._form.isRowVisible(box.warmupSpin) and box._form.isRowVisible(box.minLrEdit)
    type_into(qtbot, box.minLrEdit, "abc")
    assert "min lr" in box.errorLabel.text() and "not a number" in box.errorLabel.text()
    type_into(qtbot, box.minLrEdit, "200")
    assert "min lr must be 0 to 100" in box.errorLabel.text()  # core's own check
    type_into(qtbot, box.minLrEdit, "1e-5")
    type_into(qtbot, box.warmupSpin, "20")
    assert run.settings.schedule.name == "warmup-cosine"
    assert (run.settings.schedule.warmup, run.settings.schedule.min_lr) == (20, 1e-5)
    run_steps(qtbot, window, 40)
    total = window.controller.runset.steps
    _values, lrs = torch_rosenbrock(40, 1e-3, lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, 0.01, 1.0, 20),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, total - 20, 1e-5)], [20]), None)
    steps, plotted = window.lrPlot.points(run.id)
    np.testing.assert_allclose(plotted, lrs[steps.astype(int)], rtol=1e-9)


def test_the_schedule_round_trips_through_file_save_and_open(qtbot, sgd_rosenbrock, tmp_path):
    window = sgd_rosenbrock
    box = window.problemPanel.scheduleBox
    choose(qtbot, box.scheduleCombo, "one-cycle")
    type_into(qtbot, box.maxLrEdit, "0.004")
    type_into(qtbot, box.clipEdit, "2.5")
    run_steps(qtbot, window, 12)
    path = tmp_path / "sched.gdviz.json"
    window.ask_path = lambda *a, **k: str(path)
    save_as = next(a for a in window.fileMenu.actions() if a.text().startswith("Save &As"))
    save_as.trigger()
    saved = json.loads(path.read_text())["runs"][0]
    assert saved["schedule"] == {"name": "one-cycle", "max_lr": 0.004}
    assert saved["clip_norm"] == 2.5
    window.open_example("bowl")
    assert window.controller.selected.settings.schedule.name == "constant"
    assert box.scheduleCombo.currentData() == "constant"
    open_action = next(a for a in window.fileMenu.actions() if a.text().startswith("&Open"))
    open_action.trigger()
    run = window.controller.selected
    assert run.step == 12
    assert run.settings.schedule.name == "one-cycle" and run.settings.schedule.max_lr == 0.004
    assert run.settings.clip_norm == 2.5
    assert box.scheduleCombo.currentData() == "one-cycle" and box.maxLrEdit.text() == "0.004"
    assert box.clipEdit.text() == "2.5"


def test_duplicate_keeps_the_schedule_and_each_run_has_its_lr_line(qtbot, sgd_rosenbrock):
    window = sgd_rosenbrock
    box = window.problemPanel.scheduleBox
    choose(qtbot, box.scheduleCombo, "exponential")
    type_into(qtbot, box.gammaSpin, "0.99")
    qtbot.mouseClick(window.runsPanel.duplicateButton, Qt.MouseButton.LeftButton)
    runs = list(window.controller.runset)
    assert [r.settings.schedule.name for r in runs] == ["exponential"] * 2
    window.controller.select_run(runs[1].id)
    choose(qtbot, box.scheduleCombo, "constant")
    type_into(qtbot, window.problemPanel.lrSpin, "5e-05")
    assert runs[0].settings.schedule.name == "exponential"
    assert runs[1].settings.schedule.is_constant
    run_steps(qtbot, window, 10)
    assert set(window.lrPlot.done) == {r.id for r in runs}
    first = window.lrPlot.points(runs[0].id)[1]
    second = window.lrPlot.points(runs[1].id)[1]
    np.testing.assert_allclose(first, 1e-3 * 0.99 ** np.arange(len(first)))
    assert np.all(second == 5e-05)
    assert window.lrPlot._log  # rates twenty times apart share a log axis


def test_the_3d_tab_says_opengl_is_unavailable_offscreen_and_the_app_works(
        qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtGui import QGuiApplication

    offscreen = QGuiApplication.platformName() == "offscreen"
    if not offscreen:  # on a real screen: turn OpenGL off, as a remote desktop would
        monkeypatch.setenv("GDVIZ_NO_OPENGL", "1")
    window.load_session(load_preset("himmelblau"))
    surface = window.surfaceView
    assert surface.gl is None  # nothing is made before the tab is shown
    tabs = window.landscapeTabs
    tab_bar = tabs.tabBar()
    qtbot.mouseClick(tab_bar, Qt.MouseButton.LeftButton,
                     pos=tab_bar.tabRect(tabs.indexOf(surface)).center())
    assert tabs.currentWidget() is surface
    assert surface.gl is None
    assert "OpenGL is unavailable" in surface.message.text()
    assert ("offscreen" if offscreen else "GDVIZ_NO_OPENGL") in surface.message.text()
    run_steps(qtbot, window, 20)
    assert window.controller.step == 20
    target = tmp_path / "surface.png"
    window.ask_path = lambda *a, **k: str(target)
    menu = next(a for a in window.exportMenu.actions() if a.text() == "3-D surface")
    next(a for a in menu.menu().actions() if a.text() == "PNG…").trigger()
    assert not target.exists()
    assert "needs OpenGL" in window.lastError
    qtbot.mouseClick(tab_bar, Qt.MouseButton.LeftButton,
                     pos=tab_bar.tabRect(tabs.indexOf(window.trajectoryView)).center())
    run_steps(qtbot, window, 5)
    wait_state(qtbot, window, "paused")


def test_surface_heights():
    from gdviz.qt.surface_view import HEIGHT, heights

    z = np.array([0.0, 1.0, 10.0, 100.0, np.nan])
    h = heights(z, 0.0, 100.0, log=False)
    np.testing.assert_allclose(h[:4], [0, 0.01, 0.1, 1.0])
    assert h[4] == HEIGHT
    hl = heights(z, 0.0, 100.0, log=True)
    assert hl[0] == 0 and hl[3] == pytest.approx(HEIGHT) and hl[1] > 10 * h[1]  # lifted


def test_a_problem_of_one_parameter_says_why_there_is_no_surface(qtbot, window):
    window.landscapeTabs.setCurrentWidget(window.surfaceView)
    assert window.controller.layout.n_grads != 2
    assert "two parameters" in window.surfaceView._empty_text


def test_surface_paths_are_thinned_and_kept_inside_the_grid(qtbot):
    from gdviz.core.analysis.landscape import LandscapeGrid
    from gdviz.core.history import ColumnLayout
    from gdviz.core.model import Run, RunSettings
    from gdviz.qt.surface_view import PATH_POINTS, SurfaceView

    view = SurfaceView()
    qtbot.addWidget(view)
    layout = ColumnLayout({"a": (), "b": ()}, ("a", "b"))
    run = Run(0, RunSettings(), layout, np.array([0.5, 0.5]), 10**8)
    n = 3 * PATH_POINTS
    t = np.linspace(-2, 1, n)  # starts outside the grid's [-1, 1] on a
    params = np.column_stack([t, t / 2])
    run.history.extend(np.arange(n), t ** 2, params, np.zeros_like(params))
    run.loss = 0.5
    xs = ys = np.linspace(-1, 1, 5)
    view._frame = (-1.0, 1.0, -1.0, 1.0, 0.0, 4.0, False)
    view._indices = (0, 1)
    view._grid = LandscapeGrid(xs, ys, np.zeros((5, 5)))
    pts = view._path_points(run)
    assert PATH_POINTS / 3 < len(pts) <= PATH_POINTS + 1
    assert pts[:, 0].min() >= -1 and pts[:, 0].max() <= 1
    np.testing.assert_allclose(pts[-1], [0.5, 0.5, 0.5 / 4 + 0.012], rtol=1e-6)
    view._indices = (0, 5)  # another problem's columns: nothing, no error
    assert len(view._path_points(run)) == 0


def test_the_leaderboard_csv_names_each_runs_schedule_and_clip(qtbot, sgd_rosenbrock, tmp_path):
    import csv

    window = sgd_rosenbrock
    box = window.problemPanel.scheduleBox
    choose(qtbot, box.scheduleCombo, "cosine")
    type_into(qtbot, box.clipEdit, "3")
    qtbot.mouseClick(window.runsPanel.addButton, Qt.MouseButton.LeftButton)
    window.controller.select_run(list(window.controller.runset)[1].id)
    choose(qtbot, box.scheduleCombo, "constant")
    type_into(qtbot, box.clipEdit, "")
    run_steps(qtbot, window, 5)
    path = tmp_path / "board.csv"
    assert window.export("leaderboard", path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_label = {r["label"]: r for r in rows}
    cosine = next(r for label, r in by_label.items() if "cosine" in label)
    assert cosine["schedule"] == "cosine down to 0" and cosine["clip_norm"] == "3"
    plain = next(r for label, r in by_label.items() if "cosine" not in label)
    assert plain["schedule"] == "constant" and plain["clip_norm"] == ""
