"""See every step (issue #12), in the window, driven as a user drives it: the timeline under
the plots, the graph at a scrubbed step, the update panel's numbers against torch.optim,
"Restart from here", the optimizer's arrows and the gradient check."""

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QTableWidget

from gdviz.core.optimizers import normalize_hypers
from gdviz.core.params import ParamSpec
from gdviz.core.presets import load_preset
from gdviz.core.session import apply_overrides

from test_updates import torch_optimizer


def test_a_file_opened_while_the_first_problem_loads_can_be_stepped(qtbot):
    """``gdviz gui FILE`` opens the file while the window's first problem is still being
    built: that build is dropped, and Step must not wait for it for ever."""
    from gdviz.qt import MainWindow
    from gdviz.qt.main_window import app_settings

    app_settings().clear()
    win = MainWindow()
    win.ask_unsaved = lambda: "discard"
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    try:
        assert win.controller.loading
        assert win.load_session(rosenbrock())
        assert not win.controller.loading
        win.controls.stepCountSpin.setValue(3)
        qtbot.mouseClick(win.controls.stepButton, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.controller.step == 3 and win.controller.state == "paused")
    finally:
        win.close()
        app_settings().clear()


SLOW = 4  # the speed slider at 20 steps a second


def rosen(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def rosenbrock(optimizer="adam", **hypers):
    return apply_overrides(load_preset("rosenbrock"), optimizer=optimizer,
                           hypers={"lr": 0.01, **hypers})


def take_steps(qtbot, window, count):
    """Type the step count and press Right (Step), as a user does."""
    window.controls.stepCountSpin.setValue(count)
    before = window.controller.step
    window.controls.playButton.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.controller.step == before + count
                    and window.controller.state == "paused", timeout=30_000)
    window.pause_and_wait()
    qtbot.waitUntil(lambda: f"live: step {window.controller.step:,}" in window.timeline.label.text())


def press(qtbot, window, key, times=1):
    for _ in range(times):
        qtbot.keyClick(window, key)


def open_tab(qtbot, window, widget):
    tabs = window.bottomTabs
    bar = tabs.tabBar()
    rect = bar.tabRect(tabs.indexOf(widget))
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=rect.center())
    assert tabs.currentWidget() is widget


def test_scrubbing_with_the_keys_shows_the_graph_of_that_step(qtbot, window):
    window.load_session(rosenbrock())
    take_steps(qtbot, window, 30)
    history = window.controller.history
    assert len(history) == 30 and window.timeline.live
    qtbot.waitUntil(lambda: "live: step 30" in window.timeline.label.text())
    press(qtbot, window, Qt.Key.Key_Left, 5)
    assert window.inspector.row == 25
    assert window.timeline.label.text() == "step 25 of 30"
    qtbot.waitUntil(lambda: window.lossView.cursor.isVisible())
    assert window.lossView.cursor.value() == 25
    point = history.params[25]
    marker = window.trajectoryView.current_marker
    qtbot.waitUntil(lambda: marker.point == pytest.approx((point[0], point[1])))

    def graph_at_row():
        graph = window.graphArea.full_graph
        if graph is None:
            return False
        params = {n.label: n for n in graph.nodes if n.kind == "param"}
        return float(params["a"].value) == pytest.approx(point[0], rel=1e-6)

    qtbot.waitUntil(graph_at_row, timeout=10_000)
    # a fresh forward and backward in torch at the recorded parameters of step 25
    p = torch.tensor(point, dtype=torch.float32, requires_grad=True)
    out = rosen(p)
    out.backward()
    loss = out.detach()
    graph = window.graphArea.full_graph
    params = {n.label: n for n in graph.nodes if n.kind == "param"}
    assert float(params["a"].grad) == pytest.approx(float(p.grad[0]), rel=1e-5)
    assert float(params["b"].grad) == pytest.approx(float(p.grad[1]), rel=1e-5)
    (loss_node,) = [n for n in graph.nodes if n.role in ("loss", "y")][:1]
    assert float(loss_node.value) == pytest.approx(float(loss), rel=1e-5)
    assert float(history.loss[25]) == pytest.approx(float(loss), rel=1e-5)

    # the curvature's arrows belong to the live point: not drawn at a scrubbed step
    trajectory = window.trajectoryView
    trajectory.curvatureCheck.setChecked(True)
    trajectory.show_curvature(np.array([1.0, 2.0]), np.eye(2))
    assert not any(a.isVisible() for a in trajectory.arrows.arrows)

    # Home: the first step; End: live again, and the graph follows the run's point
    press(qtbot, window, Qt.Key.Key_Home)
    assert window.inspector.row == 0 and window.timeline.label.text() == "step 0 of 30"
    press(qtbot, window, Qt.Key.Key_Right)  # on a scrubbed timeline Right moves it
    assert window.inspector.row == 1 and window.controller.step == 30
    press(qtbot, window, Qt.Key.Key_End)
    assert window.inspector.row is None and window.timeline.live
    qtbot.waitUntil(lambda: not window.lossView.cursor.isVisible())
    assert all(a.isVisible() for a in trajectory.arrows.arrows)
    # at the live end Right steps the run, as before
    press(qtbot, window, Qt.Key.Key_Left, 3)
    window.controls.stepCountSpin.setValue(1)
    window.controls.playButton.click()  # Play from a scrubbed step: from the live end
    qtbot.waitUntil(lambda: window.controller.state == "running")
    assert window.inspector.row is None
    assert not window.timeline.slider.isEnabled()
    press(qtbot, window, Qt.Key.Key_Left)  # ignored while playing
    assert window.inspector.row is None
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.state == "paused")


def test_a_focused_table_keeps_its_arrow_keys(qtbot, window):
    window.load_session(rosenbrock())
    take_steps(qtbot, window, 5)
    table = window.problemPanel.findChild(QTableWidget)
    table.setFocus()
    table.setCurrentCell(0, 1)
    qtbot.keyClick(table, Qt.Key.Key_Left)
    assert table.currentColumn() == 0 and window.inspector.row is None
    qtbot.keyClick(table, Qt.Key.Key_Right)
    assert table.currentColumn() == 1 and window.controller.step == 5
    window.controls.playButton.setFocus()
    press(qtbot, window, Qt.Key.Key_Left)
    assert window.inspector.row == 4


def torch_states(name, hypers, steps):
    """Torch's state and parameters after each of ``steps`` updates from Rosenbrock's start."""
    p = torch.tensor([-1.5, 2.0], requires_grad=True)
    opt = torch_optimizer(name, [p], normalize_hypers(name, hypers))
    out = []
    for _ in range(steps):
        opt.zero_grad()
        rosen(p).backward()
        opt.step()
        st = opt.state[p]
        out.append(({k: v.detach().double().numpy().copy() for k, v in st.items()
                     if k != "step"}, p.detach().double().numpy().copy()))
    return out


@pytest.mark.parametrize("name, hypers, rows", [
    ("sgd", {"lr": 0.0005, "momentum": 0.9}, {"b": "momentum_buffer"}),
    ("adam", {"lr": 0.01}, {"m": "exp_avg", "v": "exp_avg_sq"}),
    ("rmsprop", {"lr": 0.01}, {"s": "square_avg"}),
])
def test_the_update_panel_shows_torchs_numbers(qtbot, window, name, hypers, rows):
    window.load_session(rosenbrock(name, **hypers))
    take_steps(qtbot, window, 6)
    open_tab(qtbot, window, window.updateView)
    view = window.updateView
    qtbot.waitUntil(lambda: view.view is not None and view.view.step == 5)  # live: the last
    press(qtbot, window, Qt.Key.Key_Left, 3)  # rows 0..5 and live: three back is step 3
    qtbot.waitUntil(lambda: view.view is not None and view.view.step == 3)
    assert "Step 3" in view.title.text()
    expected_state, expected_params = torch_states(name, hypers, 4)[3]
    for symbol, key in rows.items():
        np.testing.assert_allclose(view.values(symbol), expected_state[key], rtol=2e-5)
    np.testing.assert_allclose(view.values("θ"), expected_params, rtol=2e-5)
    # and the next recorded point is where the update took the run
    np.testing.assert_allclose(window.controller.history.params[4], expected_params, rtol=2e-5)
    assert view.table.item(0, 0).text() == "g"


def test_restart_from_here_then_step_continues_from_that_step(qtbot, window):
    window.load_session(rosenbrock("adam", lr=0.05))
    take_steps(qtbot, window, 20)
    original = window.controller.history.params.copy()
    press(qtbot, window, Qt.Key.Key_Left, 10)
    assert window.inspector.row == 10
    assert window.timeline.restartButton.isEnabled()
    qtbot.mouseClick(window.timeline.restartButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == 10)
    assert "Restarted from step 10 with the optimizer's state" in window.messageLabel.text()
    assert len(window.controller.history) == 10
    qtbot.waitUntil(lambda: window.timeline.live)
    np.testing.assert_array_equal(window.controller.current, original[10])
    window.controls.playButton.setFocus()
    window.controls.stepCountSpin.setValue(2)
    press(qtbot, window, Qt.Key.Key_Right)  # Step: on from step 10 with Adam's state there
    qtbot.waitUntil(lambda: window.controller.step == 12 and window.controller.state == "paused")
    window.pause_and_wait()
    history = window.controller.history
    np.testing.assert_array_equal(history.steps, np.arange(12))
    np.testing.assert_allclose(history.params[10:12], original[10:12], rtol=1e-6)
    # Ctrl+Z brings the later steps back
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.controller.step == 20)
    # the Runs menu does the same
    qtbot.waitUntil(lambda: window.timeline.label.text() == "live: step 20")
    window.controls.playButton.setFocus()
    press(qtbot, window, Qt.Key.Key_Left, 5)
    assert window.inspector.row == 15
    window.restartAction.trigger()
    qtbot.waitUntil(lambda: window.controller.step == 15)


def test_branch_from_a_scrubbed_step_makes_a_run_from_there(qtbot, window):
    window.load_session(rosenbrock("adam", lr=0.05))
    take_steps(qtbot, window, 20)
    parent = window.controller.selected
    original = parent.history.params.copy()
    press(qtbot, window, Qt.Key.Key_Left, 10)
    qtbot.mouseClick(window.runsPanel.forkButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.controller.runset) == 2)
    child = window.controller.selected
    assert child is not parent and child.step == 10 and parent.step == 20
    assert "Branched from step 10 with the optimizer's state" in window.messageLabel.text()
    window.controls.stepCountSpin.setValue(2)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: child.step == 12 and window.controller.state == "paused")
    window.pause_and_wait()
    np.testing.assert_allclose(child.history.params[10:12], original[10:12], rtol=1e-6)
    np.testing.assert_array_equal(parent.history.params[:20], original)
    assert parent.step == 22  # Step moves every run
    # the timeline follows the selected run: scrubbing shows the branch's steps
    window.controls.playButton.setFocus()
    press(qtbot, window, Qt.Key.Key_Left)
    assert window.inspector.row == len(child.history) - 1
    marker = window.trajectoryView.current_marker
    point = child.history.params[-1]
    qtbot.waitUntil(lambda: marker.point == pytest.approx((point[0], point[1])))


def test_restart_where_the_state_cannot_be_replayed_says_why(qtbot, window):
    window.load_session(rosenbrock("adam", lr=0.05))
    take_steps(qtbot, window, 5)
    window.problemPanel.lrSpin.setValue(0.02)  # the settings change mid-run
    take_steps(qtbot, window, 5)
    press(qtbot, window, Qt.Key.Key_Left, 2)
    qtbot.mouseClick(window.timeline.restartButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == 8)
    text = window.messageLabel.text()
    assert "fresh optimizer state" in text and "does not match" in text


def test_arrows_follow_a_running_run_and_show_the_state_once_paused(qtbot, window):
    window.load_session(rosenbrock("adam", lr=0.05))
    window.problemPanel.stepsSpin.setValue(1_000_000)
    window.controls.speedSlider.setValue(SLOW)
    window.trajectoryView.arrowsCheck.click()
    arrows = window.trajectoryView.state_arrows
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.state == "running" and window.controller.step > 2)
    qtbot.waitUntil(lambda: window.controller.running and "−∇L" in arrows.drawn)
    assert "exp_avg −m" not in arrows.drawn  # the state is replayed once the run rests
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.state == "paused")
    qtbot.waitUntil(lambda: "exp_avg −m" in arrows.drawn)


def test_arrows_show_the_gradient_the_update_and_adams_state(qtbot, window):
    window.load_session(rosenbrock("adam", lr=0.05))
    take_steps(qtbot, window, 10)
    view = window.trajectoryView
    arrows = view.state_arrows
    assert view.arrowsCheck.isVisible() and not view.arrowsCheck.isChecked()
    qtbot.mouseClick(view.arrowsCheck, Qt.MouseButton.LeftButton,
                     pos=QPoint(8, view.arrowsCheck.height() // 2))
    assert view.arrowsCheck.isChecked()
    qtbot.waitUntil(lambda: set(arrows.drawn) == {"−∇L", "Δθ", "exp_avg −m"})
    assert arrows.ellipse.isVisible() and arrows.legend.isVisible()
    history = window.controller.history
    grad = history.grads[9]
    assert arrows.drawn["−∇L"] == pytest.approx((-grad[0], -grad[1]))
    step = window.controller.current - history.params[9]
    assert arrows.drawn["Δθ"] == pytest.approx(tuple(step))
    labels = [label.text for _sample, label in arrows.legend.items]
    assert any(t.startswith("exp_avg_sq") and "ellipse" in t for t in labels)
    for name, arrow in arrows.arrows.items():
        assert arrow.isVisible(), name
    # scrubbed back: the arrows of that step, from its point
    press(qtbot, window, Qt.Key.Key_Left, 4)
    qtbot.waitUntil(lambda: window.trajectoryView.step_view is not None
                    and window.trajectoryView.step_view.step == 6)
    assert arrows.drawn["−∇L"] == pytest.approx((-history.grads[6][0], -history.grads[6][1]))
    view.arrowsCheck.click()
    assert not arrows.legend.isVisible()
    assert not any(a.isVisible() for a in arrows.arrows.values())


@pytest.mark.parametrize("name, hypers, state, ellipse", [
    ("sgd", {"lr": 0.0005, "momentum": 0.9}, "momentum buffer −b", None),
    ("rmsprop", {"lr": 0.01}, None, "square_avg"),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5}, "momentum buffer −b", "square_avg"),
    ("adagrad", {"lr": 0.1}, None, "sum"),
])
def test_arrows_and_ellipse_name_each_optimizers_state(qtbot, window, name, hypers, state,
                                                       ellipse):
    window.load_session(rosenbrock(name, **hypers))
    take_steps(qtbot, window, 4)
    window.trajectoryView.arrowsCheck.click()
    arrows = window.trajectoryView.state_arrows
    expected = {"−∇L", "Δθ"} | ({state} if state else set())
    qtbot.waitUntil(lambda: set(arrows.drawn) == expected)
    assert arrows.ellipse.isVisible() == bool(ellipse)
    labels = [label.text for _sample, label in arrows.legend.items]
    if ellipse:
        assert any(t.startswith(ellipse) and "(ellipse)" in t for t in labels)
        ax, ay = arrows.ellipse_axes
        rates = window.trajectoryView.step_view.rates
        assert ax / ay == pytest.approx(rates[0] / rates[1], rel=1e-6)


def test_a_network_shows_the_first_elements_and_a_cursor_on_the_parameters_plot(qtbot, window):
    window.load_session(load_preset("xor-network"))
    take_steps(qtbot, window, 4)
    trajectory = window.trajectoryView
    assert trajectory.mode == "lines"
    open_tab(qtbot, window, window.updateView)
    press(qtbot, window, Qt.Key.Key_Left, 2)
    assert window.inspector.row == 2
    qtbot.waitUntil(lambda: trajectory.cursor_line.isVisible())
    assert trajectory.cursor_line.value() == 2
    view = window.updateView
    qtbot.waitUntil(lambda: view.view is not None and view.view.step == 2)
    assert view.table.columnCount() == 2 + 6 + 1
    assert "The first 6 of 33 elements" in view.title.text()
    assert view.table.horizontalHeaderItem(2).text() == "W[0,0]"


def test_arrows_on_the_one_parameter_curve_point_along_it(qtbot, window):
    session = apply_overrides(load_preset("bowl"), function="(w - 3)**2",
                              params={"w": ParamSpec("0")}, optimizer="sgd",
                              hypers={"lr": 0.1, "momentum": 0.5})
    window.load_session(session)
    take_steps(qtbot, window, 3)
    assert window.trajectoryView.mode == "1d"
    window.trajectoryView.arrowsCheck.click()
    arrows = window.trajectoryView.state_arrows
    qtbot.waitUntil(lambda: set(arrows.drawn) == {"−∇L", "Δθ", "momentum buffer −b"})
    history = window.controller.history
    assert arrows.drawn["−∇L"] == pytest.approx((-history.grads[2][0], 0.0))
    assert arrows.drawn["−∇L"][0] > 0  # downhill, towards w = 3


def test_a_thinned_history_moves_over_the_recorded_steps_and_says_so(qtbot, window):
    window.load_session(rosenbrock())
    window.controller.selected.history.set_limit(200)  # about 33 rows: a long run, in short
    take_steps(qtbot, window, 100)
    history = window.controller.history
    stride = history.stride
    assert stride > 1 and window.timeline.slider.maximum() == len(history)
    assert f"(every {stride}th recorded)" in window.timeline.label.text()
    open_tab(qtbot, window, window.updateView)
    press(qtbot, window, Qt.Key.Key_Left, 2)
    row = len(history) - 2
    assert window.inspector.row == row
    assert window.timeline.label.text() == \
        f"step {history.steps[row]} of 100 (every {stride}th recorded)"
    assert history.steps[row] % stride == 0
    qtbot.waitUntil(lambda: window.lossView.cursor.value() == history.steps[row])
    view = window.updateView
    qtbot.waitUntil(lambda: view.view is not None and view.view.step == history.steps[row])
    assert view.table.rowCount() == 0 and f"every {stride}th step" in view.title.text()


def test_a_problem_too_large_to_record_scrubs_its_losses_and_says_so(qtbot, window,
                                                                     monkeypatch):
    from gdviz.core import history

    monkeypatch.setattr(history, "RECORD_LIMIT", 10)  # a network's 66 numbers: too many
    window.load_session(load_preset("xor-network"))
    take_steps(qtbot, window, 5)
    assert not window.controller.history.records_elements
    open_tab(qtbot, window, window.updateView)
    press(qtbot, window, Qt.Key.Key_Left)
    assert window.inspector.row == 4
    assert window.timeline.label.text() == "step 4 of 5, its loss only"
    qtbot.waitUntil(lambda: window.lossView.cursor.isVisible())
    assert "too many elements" in window.updateView.title.text()


def test_the_gradient_check_flags_the_kink_of_abs_at_zero(qtbot, window):
    session = apply_overrides(load_preset("bowl"), function="abs(a) + b**2",
                              params={"a": ParamSpec("0"), "b": ParamSpec("1.5")})
    window.load_session(session)
    action = next(a for a in window.analysisMenu.actions()
                  if a.text().replace("&", "").startswith("Check gradients"))
    action.trigger()
    dialog = window.stepping.gradCheckDialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10_000)
    cells = {dialog.table.item(r, 0).text(): [dialog.table.item(r, c).text() for c in range(7)]
             for r in range(2)}
    assert cells["a"][5] == "yes" and cells["a"][6] == "kink"
    assert cells["b"][5] == "" and cells["b"][6] == "ok"
    assert float(cells["b"][2]) == pytest.approx(3.0)
    assert "step 0" in dialog.summary.text()
    dialog.close()
