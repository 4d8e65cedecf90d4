"""The analyses in the window, driven as a user drives them: the basin map over the
landscape, the learning-rate range test and the curvature (issue #15)."""

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QDoubleSpinBox

from conftest import wait_state
from gdviz.core.analysis.sweep import Outcome
from gdviz.core.params import ParamSpec
from gdviz.core.presets import load_preset
from gdviz.core.session import apply_overrides
from gdviz.qt import basin_layer
from gdviz.qt.analysis import edge_of_stability, lr_limit, stability_factor

HIMMELBLAU_MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186],
                              [3.584428, -1.848126]])


def quadratic(lr=0.01, a="1", b="1"):
    """0.5 (a^2 + 100 b^2): lambda_max 100, so plain gradient descent is stable below 0.02."""
    return apply_overrides(load_preset("bowl"), function="0.5*(a**2 + 100*b**2)",
                           params={"a": ParamSpec(a), "b": ParamSpec(b)}, optimizer="sgd",
                           hypers={"lr": lr})


def choose_optimizer(panel, name, lr):
    panel.optimizerCombo.setCurrentIndex(panel.optimizerCombo.findData(name))
    panel.lrSpin.setValue(lr)


def trigger(window, menu_text):
    """Choose an item of the Analysis menu."""
    action = next(a for a in window.analysisMenu.actions()
                  if a.text().replace("&", "").startswith(menu_text))
    action.trigger()
    return action


def click_plot(qtbot, plot, x, y):
    """A left click at data point (x, y) of a pyqtgraph PlotWidget."""
    vb = plot.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(x, y))
    pos = plot.mapFromScene(scene)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))


def wait_basins(qtbot, view, timeout=60_000):
    """Until the map of the latest request is complete."""
    qtbot.waitUntil(lambda: view.basins.map is not None and view.basins.done == 1.0
                    and "click a start" in view.hint.text(), timeout=timeout)
    return view.basins.map


def test_himmelblau_with_adam_shows_four_basins_and_a_click_makes_a_run(qtbot, window):
    window.load_session(load_preset("himmelblau"))
    choose_optimizer(window.problemPanel, "adam", 0.05)
    view = window.trajectoryView
    view.basin_grid = 40  # small, for speed; the window's default is 200 x 200
    assert trigger(window, "Basin map").isChecked() and view.basinsCheck.isChecked()
    bmap = wait_basins(qtbot, view)
    assert bmap.image(bmap.labels).shape == (40, 40)
    assert (bmap.xs[0], bmap.xs[-1]) == pytest.approx((-5, 5), abs=1e-6)  # the view's range
    assert len(bmap.basins) == 4
    found = np.array([b.point for b in bmap.basins])
    for minimum in HIMMELBLAU_MINIMA:
        assert np.abs(found - minimum).max(axis=1).min() < 1e-3
    assert sum(b.fraction for b in bmap.basins) > 0.97
    # drawn: one pixel per start, four colours, and a legend that names the four basins
    layer = view.basins
    assert layer.image.isVisible() and layer.image.image.shape == (40, 40, 4)
    assert len(set(layer.colors)) == 4
    labels = [label.text for _sample, label in layer.legend.items]
    assert sum("a 3, b 2:" in t or "a -2.81, b 3.13" in t for t in labels) == 2
    assert "4 basins" in view.hint.text()

    # a click on the map: that start becomes a new, selected run with the same settings
    runs_before = len(window.controller.runset)
    click_plot(qtbot, view.plot, 4.1, 3.9)
    assert len(window.controller.runset) == runs_before + 1
    run = window.controller.selected
    start = run.settings.start
    assert abs(start[0] - 4.1) < 0.2 and abs(start[1] - 3.9) < 0.2
    assert start[0] in bmap.xs and start[1] in bmap.ys  # snapped to the map's start
    assert run.settings.optimizer == "adam" and run.settings.hypers["lr"] == pytest.approx(0.05)
    # and it goes where the map said
    k = int(np.flatnonzero((bmap.starts == start).all(axis=1))[0])
    expected = bmap.basins[bmap.labels[k]].point
    window.controls.fullSpeedButton.click()
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        window.controls.playButton.click()
    np.testing.assert_allclose(run.values, expected, atol=1e-3)


def test_the_basin_map_follows_the_lr_and_fills_in_coarse_first(qtbot, window):
    window.load_session(load_preset("himmelblau"))
    choose_optimizer(window.problemPanel, "adam", 0.05)
    view = window.trajectoryView
    view.basin_grid = 40
    shown = []
    window.analyses.basinsReady.connect(lambda bmap, token, done: shown.append((token, done)))
    view.basinsCheck.setChecked(True)
    wait_basins(qtbot, view)
    first = [d for t, d in shown if t == shown[-1][0]]
    assert first[0] == 0.0 and first[-1] == 1.0 and first == sorted(first)  # coarse, then rows
    assert len(first) >= 2
    # a new lr: the map is recomputed (a new request) with it
    token = view._basin_token
    window.problemPanel.lrSpin.setValue(0.001)
    qtbot.waitUntil(lambda: view._basin_token > token, timeout=5_000)
    bmap = wait_basins(qtbot, view)
    # 500 steps at lr 0.001 leave most starts of Adam still on their way
    assert bmap.unfinished > 0.5
    assert any("unfinished" in label.text for _s, label in view.basins.legend.items)
    # turned off: hidden, and a click sets the start as before (no new run)
    trigger(window, "Basin map")
    assert not view.basinsCheck.isChecked() and not view.basins.image.isVisible()


def test_rastrigin_momentum_reaches_the_centre_from_more_starts(qtbot, window):
    window.load_session(load_preset("rastrigin"))  # SGD lr 0.002, momentum 0.95
    view = window.trajectoryView
    view.basin_grid = 50  # (on 40 x 40 starts, both happen to end alike)
    view.basinsCheck.setChecked(True)
    momentum = wait_basins(qtbot, view)
    token = view._basin_token
    window.findChild(QDoubleSpinBox, "momentumHyper").setValue(0.0)
    qtbot.waitUntil(lambda: view._basin_token > token, timeout=5_000)
    plain = wait_basins(qtbot, view)

    def centre(bmap):
        return sum(b.fraction for b in bmap.basins if np.abs(b.point).max() < 1.5)

    assert len(plain.basins) > 30  # plain SGD stops in the local minimum next to its start
    assert centre(momentum) > 1.3 * centre(plain)


def test_a_one_parameter_problem_has_no_basin_map(qtbot, window):
    action = trigger(window, "Basin map")  # the seed example: X + 1
    assert not action.isChecked() and not window.trajectoryView.basinsCheck.isVisible()
    assert "two parameters" in window.messageLabel.text()


def test_lr_range_test_marks_the_edge_and_uses_the_chosen_lr(qtbot, window):
    window.load_session(quadratic())
    view = window.lrRangeView
    trigger(window, "Learning-rate range test")
    assert window.bottomTabs.currentWidget() is view
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    result = view.result
    assert len(result.lrs) == 200 and result.lrs[0] == pytest.approx(1e-6)
    assert result.lrs[-1] == pytest.approx(10) and result.steps == 100
    edge = 10 ** view.edge.value()
    assert view.edge.isVisible() and 0.018 <= edge < 0.02  # 2 / lambda_max
    assert "edge 0.0" in view.edge.label.format
    suggested = 10 ** view.suggested.value()
    assert view.suggested.isVisible() and 1e-6 < suggested < edge
    assert "Edge" in view.summary.text() and "Suggested" in view.summary.text()
    assert view.diverged.xData is not None and len(view.diverged.xData) > 50  # past the edge
    # the chosen lr starts at the suggestion; a click on the plot picks another
    assert view.useButton.isEnabled() and view.chosen_lr == pytest.approx(suggested, rel=0.01)
    (y0, y1) = view.item.getViewBox().viewRange()[1]
    click_plot(qtbot, view.plot, math.log10(0.005), (y0 + y1) / 2)
    assert view.chosen_lr == pytest.approx(0.005, rel=0.05)
    assert view.useButton.text() == f"Use lr {view.chosen_lr:.3g}"
    qtbot.mouseClick(view.useButton, Qt.MouseButton.LeftButton)
    assert window.controller.selected.settings.hypers["lr"] == pytest.approx(view.chosen_lr)
    assert window.problemPanel.lrSpin.value() == pytest.approx(view.chosen_lr)


def test_play_stops_a_long_lr_range_test_and_says_so(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    view = window.lrRangeView
    window.bottomTabs.setCurrentWidget(view)
    view.lrMinSpin.setValue(1e-7)
    view.lrMaxSpin.setValue(1e-5)   # small rates: no run settles, the test runs long
    view.countSpin.setValue(10_000)
    view.stepsSpin.setValue(100_000)
    qtbot.mouseClick(view.runButton, Qt.MouseButton.LeftButton)
    qtbot.wait(300)
    qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step > 0, timeout=20_000)  # the run got the worker
    assert "was stopped: a run started" in view.summary.text()
    assert view.result is None and view.runButton.isEnabled()
    window.controller.pause()
    wait_state(qtbot, window, "paused", "finished")


def test_reset_or_a_new_problem_during_a_long_lr_range_test_answers_at_once(qtbot, window):
    import time

    window.load_session(load_preset("rosenbrock"))
    controls = window.controls
    controls.stepCountSpin.setValue(20)
    qtbot.mouseClick(controls.stepButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step >= 20, timeout=20_000)
    wait_state(qtbot, window, "paused", "finished")
    view = window.lrRangeView
    window.bottomTabs.setCurrentWidget(view)
    view.lrMinSpin.setValue(1e-7)
    view.lrMaxSpin.setValue(1e-5)
    view.countSpin.setValue(10_000)
    view.stepsSpin.setValue(100_000)
    qtbot.mouseClick(view.runButton, Qt.MouseButton.LeftButton)
    qtbot.wait(300)
    started = time.perf_counter()
    qtbot.mouseClick(controls.resetButton, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - started < 5  # not the 60 s a busy worker used to cost
    qtbot.waitUntil(lambda: "was stopped: the runs were reset" in view.summary.text(),
                    timeout=20_000)
    assert window.controller.step == 0
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the reset
    qtbot.waitUntil(lambda: window.controller.step == 20, timeout=20_000)
    # opening an example meanwhile does not wait for the test either
    qtbot.mouseClick(view.runButton, Qt.MouseButton.LeftButton)
    qtbot.wait(300)
    started = time.perf_counter()
    assert window.load_session(load_preset("himmelblau"))
    assert time.perf_counter() - started < 5
    assert view.result is None and view.runButton.isEnabled()  # the tab starts afresh
    qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step > 0, timeout=20_000)  # nothing holds it
    assert "was stopped" not in view.summary.text()
    window.controller.pause()
    wait_state(qtbot, window, "paused", "finished")


def test_lr_range_test_settings_and_mistakes(qtbot, window):
    window.load_session(quadratic())
    view = window.lrRangeView
    window.bottomTabs.setCurrentWidget(view)
    view.lrMinSpin.setValue(1e-3)
    view.lrMaxSpin.setValue(0.1)
    view.countSpin.setValue(50)
    view.stepsSpin.setValue(300)
    qtbot.mouseClick(view.runButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.result is not None, timeout=30_000)
    assert len(view.result.lrs) == 50 and view.result.steps == 300
    assert view.result.lrs[0] == pytest.approx(1e-3)
    view.lrMinSpin.setValue(0.5)
    qtbot.mouseClick(view.runButton, Qt.MouseButton.LeftButton)
    assert "must be below the highest" in view.summary.text()


def test_the_lr_field_turns_red_past_two_over_lambda_max(qtbot, window):
    window.load_session(quadratic(lr=0.03))
    panel = window.problemPanel
    qtbot.waitUntil(lambda: panel.lr_past_limit, timeout=10_000)
    assert "background" in panel.lrSpin.styleSheet()
    tip = panel.lrSpin.toolTip()
    assert "2/λmax = 0.02" in tip and "plain gradient descent" in tip and "grow" in tip
    assert "stable below 0.02" in panel.lrLimitLabel.text()
    panel.lrSpin.setValue(0.01)
    assert not panel.lr_past_limit and panel.lrSpin.styleSheet() == ""
    assert "2/λmax" not in panel.lrSpin.toolTip()
    # heavy-ball momentum moves the limit to 2 (1 + beta) / lambda_max = 0.038
    window.findChild(QDoubleSpinBox, "momentumHyper").setValue(0.9)
    panel.lrSpin.setValue(0.03)
    assert not panel.lr_past_limit and "0.038" in panel.lrLimitLabel.text()
    panel.lrSpin.setValue(0.04)
    assert panel.lr_past_limit
    assert "2(1+β)/λmax = 0.038 (β = 0.9) for heavy-ball momentum" in panel.lrSpin.toolTip()
    # an adaptive method has no such limit
    choose_optimizer(panel, "adam", 5.0)
    assert not panel.lr_past_limit and "no 2/λ limit" in panel.lrLimitLabel.text()


def test_rosenbrock_curvature_at_the_minimum(qtbot, window):
    session = apply_overrides(load_preset("rosenbrock"),
                              params={"a": ParamSpec("1"), "b": ParamSpec("1")})
    window.load_session(session)
    trigger(window, "Curvature at the current point")
    view = window.curvatureView
    assert window.bottomTabs.currentWidget() is view
    expected = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))
    qtbot.waitUntil(lambda: "eigenvalues" in view.summary.text(), timeout=10_000)
    text = view.summary.text()
    assert f"{expected[1]:.4g}" in text and f"{expected[0]:.4g}" in text  # 1002, 0.3994
    assert f"{expected[1] / expected[0]:.4g}" in text  # the condition number, 2508
    assert f"{2 / expected[1]:.4g}" in text  # 2 / lambda_max
    # the two directions, at the run's point on the landscape
    trajectory = window.trajectoryView
    assert trajectory.curvatureCheck.isChecked()
    window.redraw()
    arrows = trajectory.arrows
    assert all(a.isVisible() for a in arrows.arrows)
    assert {label.toPlainText() for label in arrows.labels} == \
        {f"λ {expected[0]:.4g}", f"λ {expected[1]:.4g}"}
    hessian = np.array([[802.0, -400.0], [-400.0, 200.0]])
    for k in range(2):  # eigenvectors: H v = lambda v
        np.testing.assert_allclose(hessian @ arrows.vectors[:, k],
                                   expected[k] * arrows.vectors[:, k], atol=1e-6)


def test_curvature_tab_plots_lambda_max_along_a_run_against_two_over_lr(qtbot, window):
    window.load_session(apply_overrides(load_preset("rosenbrock"), optimizer="sgd",
                                        hypers={"lr": 1e-3}))
    window.bottomTabs.setCurrentWidget(window.curvatureView)
    window.controls.stepCountSpin.setValue(150)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "paused")
    view = window.curvatureView
    qtbot.waitUntil(lambda: view.curve.xData is not None and len(view.curve.xData) == 150,
                    timeout=10_000)
    steps, values = view.curve.xData, view.curve.yData
    assert steps[0] == 0 and steps[-1] == 149 and np.isfinite(values).all()
    run = window.controller.selected
    assert values[0] == pytest.approx(
        np.linalg.eigvalsh([[1200 * (-1.5) ** 2 - 400 * 2 + 2, 600], [600, 200]])[-1])
    assert view.edge.isVisible() and view.edge.value() == pytest.approx(2 / 1e-3)
    assert "2/lr = 2000" in view.edge.label.format
    assert run.step == 150
    # the edge follows the lr
    window.problemPanel.lrSpin.setValue(2e-3)
    assert view.edge.value() == pytest.approx(1000)


def test_stability_formulas():
    assert stability_factor("sgd", {"momentum": 0.0})[0] == 2.0
    assert stability_factor("sgd", {"momentum": 0.5})[0] == pytest.approx(3.0)
    # Nesterov: 2 (1 + b) / (1 + 2 b)
    assert stability_factor("sgd", {"momentum": 0.5, "nesterov": True})[0] == pytest.approx(1.5)
    assert stability_factor("adam", {}) is None
    assert lr_limit("sgd", {"momentum": 0.0, "weight_decay": 0.0}, 100.0).limit == 0.02
    assert lr_limit("sgd", {"momentum": 0.0}, -3.0).limit == math.inf
    assert lr_limit("adam", {}, 100.0).limit is None
    assert edge_of_stability("sgd", {"lr": 0.01, "momentum": 0.0}) == (200.0, "2/lr")


def test_nesterov_limit_matches_the_update():
    """The Nesterov limit is where torch's update on 0.5 lambda x^2 stops contracting."""
    import torch

    lam, beta = 10.0, 0.7
    limit = stability_factor("sgd", {"momentum": beta, "nesterov": True})[0] / lam

    def grows(lr):
        x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([x], lr=lr, momentum=beta, nesterov=True)
        for _ in range(3000):
            opt.zero_grad()
            (0.5 * lam * x ** 2).sum().backward()
            opt.step()
        return abs(float(x.detach())) > 1.0

    assert not grows(0.98 * limit) and grows(1.02 * limit)


def test_outcome_codes_match_the_core():
    assert (basin_layer.CONVERGED, basin_layer.SETTLED, basin_layer.UNFINISHED,
            basin_layer.DIVERGED) == (Outcome.CONVERGED, Outcome.SETTLED, Outcome.UNFINISHED,
                                      Outcome.DIVERGED)


def test_a_slice_of_two_chosen_elements_has_a_landscape_basins_and_curvature(qtbot, window):
    session = apply_overrides(load_preset("bowl"), function="(a - 1)**2 + 3*(b + 2)**2 + "
                              "2*(c - 0.5)**2 + a*c", params={"a": ParamSpec("2"),
                                                             "b": ParamSpec("1"),
                                                             "c": ParamSpec("-1")})
    window.load_session(session)
    view = window.trajectoryView
    assert view.mode == "lines" and view.sliceCheck.isVisible()
    trigger(window, "Basin map")  # not yet: three elements
    assert not view.basinsCheck.isChecked() and "choose two" in window.messageLabel.text()
    view.sliceYCombo.setCurrentIndex(view.sliceYCombo.findText("c"))
    view.sliceCheck.setChecked(True)
    assert view.mode == "2d" and [name for name, _ in view.axes] == ["a", "c"]
    assert "slice" in view.title.text() and view.item.getAxis("left").labelText == "c"
    qtbot.waitUntil(lambda: view.z is not None, timeout=10_000)
    window.controls.stepCountSpin.setValue(20)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "paused")
    window.redraw()
    xs, ys = view.path.getData()
    history = window.controller.history
    np.testing.assert_allclose(xs[:-1], history.params[:, 0])  # a
    np.testing.assert_allclose(ys[:-1], history.params[:, 2])  # c
    # the basin map trains a and c, b held: one basin, at the minimum of that slice
    view.basin_grid = 20
    trigger(window, "Basin map")
    bmap = wait_basins(qtbot, view)
    assert bmap.axes == ("a", "c") and len(bmap.basins) == 1
    a, c = np.linalg.solve([[2.0, 1.0], [1.0, 4.0]], [2.0, 2.0])  # the gradient's zero
    np.testing.assert_allclose(bmap.basins[0].point, [a, c], atol=1e-3)
    # the curvature arrows: the Hessian's block of a and c
    window.show_curvature()
    qtbot.waitUntil(lambda: view.arrows.values is not None, timeout=10_000)
    np.testing.assert_allclose(view.arrows.values, np.linalg.eigvalsh([[2.0, 1.0], [1.0, 4.0]]),
                               atol=1e-9)
    # back to the elements against the step
    view.sliceCheck.setChecked(False)
    assert view.mode == "lines" and len(view.lines) == 3
