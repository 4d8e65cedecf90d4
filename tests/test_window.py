"""The main window, driven the way a user drives it (offscreen)."""

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from conftest import wait_state
from gdviz.core.presets import load_preset

NAMES = ["functionEdit", "lossEdit", "paramsTable", "optimizerCombo", "lrSpin", "stepsSpin",
         "seedSpin", "deviceCombo", "playButton", "stepButton", "resetButton", "speedSlider",
         "lossPlot", "trajectoryPlot"]


def type_into(qtbot, edit, text):
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


def test_parts_are_found_by_name_and_have_tooltips(window):
    for name in NAMES:
        widget = window.findChild(QWidget, name)
        assert widget is not None, name
    for name in ("functionEdit", "lossEdit", "playButton", "stepButton", "resetButton",
                 "speedSlider", "lrSpin", "deviceCombo"):
        assert window.findChild(QWidget, name).toolTip(), name


def test_opens_on_the_first_seed_ready_for_play(window):
    assert window.problemPanel.functionEdit.text() == "X + 1"
    assert window.problemPanel.lossEdit.text() == "(3 - y)**2 / 2"
    assert window.controls.playButton.isEnabled()


def test_type_seed_press_play_reaches_1_9999(qtbot, window):
    panel = window.problemPanel
    window.load_session(load_preset("bowl"))  # something else first, then type the seed
    type_into(qtbot, panel.functionEdit, "X + 1")
    type_into(qtbot, panel.lossEdit, "(3 - y)**2 / 2")
    panel.flush()
    assert list(window.controller.info.names) == ["X"]
    panel.optimizerCombo.setCurrentIndex(panel.optimizerCombo.findData("sgd"))
    panel.lrSpin.setValue(1e-3)
    panel.stepsSpin.setValue(10_000)
    qtbot.mouseClick(window.controls.fullSpeedButton, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as blocker:
        qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    result = blocker.args[0]
    assert result["status"] == "finished" and result["steps"] == 10_000
    assert f"{result['params']['X'][0]:.4f}" == "1.9999"
    assert set(result) >= {"status", "steps", "loss", "params", "grads", "device", "optimizer",
                           "elapsed_s", "steps_per_s"}
    window.redraw()
    x, y = window.lossView.curve.xData, window.lossView.curve.yData  # peak-decimated for drawing
    history = window.controller.history
    assert x[0] == 0 and x[-1] == 9_999 and y[0] == history.loss[0] > y[-1] == history.loss[-1]
    assert y.max() == history.loss.max() and y.min() == history.loss.min()


def test_step_advances_exactly_one_step_and_the_plots_show_it(qtbot, window):
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, "paused")
    assert window.controller.step == 1 and len(window.controller.history) == 1
    window.redraw()
    assert list(window.lossView.curve.xData) == [0]
    assert len(window.trajectoryView.path.xData) == 2  # the start and where the step went
    assert window.stepLabel.text() == "step 1"
    window.controls.stepCountSpin.setValue(25)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == 26 and window.controller.state == "paused")


def test_pause_then_play_continues(qtbot, window):
    window.problemPanel.stepsSpin.setValue(10_000_000)
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.step > 200, timeout=30_000)
    window.controls.playButton.click()
    wait_state(qtbot, window, "paused")
    paused_at = window.controller.step
    assert window.controls.playButton.text() == "Play"
    qtbot.wait(200)
    assert window.controller.step == paused_at
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.step > paused_at + 100, timeout=30_000)
    window.controls.playButton.click()
    wait_state(qtbot, window, "paused")
    steps = window.controller.history.steps
    assert np.array_equal(steps, np.arange(len(steps)))  # no gap, no repeat


def test_reset_returns_to_the_same_start(qtbot, window):
    start = window.controller.current.copy()
    window.controls.stepCountSpin.setValue(50)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 50 and window.controller.state == "paused")
    assert not np.allclose(window.controller.current, start)
    window.controls.resetButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 0 and np.allclose(window.controller.current, start))
    assert len(window.controller.history) == 0


def test_typo_shows_the_error_disables_play_and_keeps_the_last_problem(qtbot, window):
    panel = window.problemPanel
    type_into(qtbot, panel.lossEdit, "(3 - y)**2 / z")
    qtbot.waitUntil(lambda: not panel.lossError.isHidden(), timeout=5_000)
    assert "unknown name 'z'" in panel.lossError.text() and "column 14" in panel.lossError.text()
    assert "^" in panel.lossError.text()
    assert not window.controls.playButton.isEnabled()
    assert not window.controls.stepButton.isEnabled()
    assert window.controller.session.loss == "(3 - y)**2 / 2"
    type_into(qtbot, panel.lossEdit, "(3 - y)**2 / 4")
    qtbot.waitUntil(lambda: panel.lossError.isHidden(), timeout=5_000)
    assert window.controls.playButton.isEnabled()
    assert window.controller.session.loss == "(3 - y)**2 / 4"
    assert "reset" in window.messageLabel.text()


def test_editing_the_function_fills_the_parameter_table(qtbot, window):
    type_into(qtbot, window.problemPanel.functionEdit, "w[0]*a + b")
    window.problemPanel.flush()
    table = window.problemPanel.paramsTable
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["w", "a", "b"]


def test_cuda_is_disabled_with_a_reason_when_there_is_none(window):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    item = window.problemPanel.deviceCombo.model().item(1)
    assert not item.isEnabled() and "CUDA is unavailable" in item.toolTip()


def test_closing_mid_run_stops_the_thread(qtbot, window):
    window.problemPanel.stepsSpin.setValue(10_000_000)
    window.controls.playButton.click()
    qtbot.waitUntil(lambda: window.controller.step > 50, timeout=30_000)
    thread = window.controller._thread
    window.close()
    assert thread.isFinished()


def test_a_two_parameter_preset_draws_its_landscape(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    view = window.trajectoryView
    qtbot.waitUntil(lambda: view.z is not None)  # computed on the training thread
    assert view.mode == "2d" and view.z.shape == (120, 120)
    assert np.isfinite(view.z).all()
    assert view.logColorsCheck.isChecked()  # Rosenbrock is steep
    window.controls.stepCountSpin.setValue(30)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 30 and window.controller.state == "paused")
    window.redraw()
    x, y = view.path.xData, view.path.yData
    assert len(x) == 31 and x[0] == pytest.approx(-1.5) and y[0] == pytest.approx(2.0)


def test_clicking_the_landscape_sets_a_new_start(qtbot, window):
    window.load_session(load_preset("himmelblau"))
    window.trajectoryView.click_at(-2.0, 1.5)
    qtbot.waitUntil(lambda: np.allclose(window.controller.current, [-2.0, 1.5]))
    window.controls.stepCountSpin.setValue(5)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 5 and window.controller.state == "paused")
    window.controls.resetButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 0 and np.allclose(window.controller.current, [-2.0, 1.5]))


def test_learning_rate_change_takes_effect_at_the_next_step(qtbot, window):
    panel = window.problemPanel
    type_into(qtbot, panel.functionEdit, "x")
    type_into(qtbot, panel.lossEdit, "y")
    panel.flush()
    panel.paramsTable.item(0, 1).setText("0")
    panel.optimizerCombo.setCurrentIndex(panel.optimizerCombo.findData("sgd"))
    panel.lrSpin.setValue(1.0)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 1 and window.controller.state == "paused")
    panel.lrSpin.setValue(0.5)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 2 and window.controller.state == "paused")
    assert window.controller.current[0] == pytest.approx(-1.5)


def test_a_diverging_run_stops_with_a_message(qtbot, window):
    panel = window.problemPanel
    type_into(qtbot, panel.functionEdit, "x**2")
    type_into(qtbot, panel.lossEdit, "y")
    panel.flush()
    panel.paramsTable.item(0, 1).setText("1")
    panel.lrSpin.setValue(1.5)
    panel.stepsSpin.setValue(100_000)
    with qtbot.waitSignal(window.runFinished, timeout=60_000) as blocker:
        window.controls.playButton.click()
    assert blocker.args[0]["status"] == "diverged"
    assert "diverged at step" in window.messageLabel.text() and window.messageLabel.isVisible()
    assert math.isfinite(window.controller.current[0])
    assert window.stateLabel.text() == "diverged"


def test_keyboard_space_right_and_r(qtbot, window):
    window.controls.playButton.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.controller.step == 1 and window.controller.state == "paused")
    qtbot.keyClick(window, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: window.controller.step == 0)
    window.problemPanel.stepsSpin.setValue(10_000_000)
    window.controls.playButton.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "running")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_state(qtbot, window, "paused")


def test_typing_r_in_a_field_is_not_a_shortcut(qtbot, window):
    edit = window.problemPanel.functionEdit
    edit.setFocus()
    edit.end(False)
    qtbot.keyClicks(edit, " + r")
    assert edit.text() == "X + 1 + r"
    assert window.controller.state == "idle"


def test_slow_motion_steps_a_few_per_second(qtbot, window):
    window.controls.speedSlider.setValue(3)  # 10 steps/s
    window.problemPanel.stepsSpin.setValue(1000)
    window.controls.playButton.click()
    qtbot.wait(600)
    window.controls.playButton.click()
    wait_state(qtbot, window, "paused")
    assert 2 <= window.controller.step <= 12


def test_last_problem_and_geometry_are_remembered(qtbot, window):
    from gdviz.qt import MainWindow

    window.load_session(load_preset("beale"))
    window.resize(820, 520)  # the offscreen screen is small; keep within it
    size = window.size()
    window.close()
    again = MainWindow()
    again.ask_unsaved = lambda: "discard"
    qtbot.addWidget(again)
    try:
        assert again.problemPanel.functionEdit.text() == load_preset("beale").function
        # The offscreen screen is 800 px wide, so a restored width is clamped; the height
        # (the default would be taller) shows the geometry came back.
        assert size.height() == 520 and again.size().height() == 520
    finally:
        again.close()


def test_the_default_speed_lets_the_seed_be_watched(qtbot, window):
    # about five seconds for the seed's 10,000 steps; full speed is one click away
    assert window.controls.speedLabel.text() == "2,000 steps/s"
    window.controls.speedSlider.setValue(0)
    assert window.controls.speedLabel.text() == "1 step/s"
    qtbot.mouseClick(window.controls.fullSpeedButton, Qt.MouseButton.LeftButton)
    assert window.controls.speedLabel.text() == "full speed"
    assert not window.controls.fullSpeedButton.isEnabled()


def test_the_error_caret_points_at_the_column_however_the_message_wraps(qtbot, window):
    panel = window.problemPanel
    window.resize(700, 700)
    long = "a + b + c + d + e + f + g + h + i + j + k + l + m + n + o + sn(c)"
    type_into(qtbot, panel.functionEdit, long)
    qtbot.waitUntil(lambda: not panel.functionError.isHidden(), timeout=5_000)
    html_text = panel.functionError.text()
    pre = html_text.split("<pre>")[1].split("</pre>")[0]
    code, caret = pre.split("\n")
    column = long.index("sn(") + 1
    assert f"column {column}" in html_text
    at = caret.index("^")
    assert code[at:at + 3] == "sn("  # the caret is under the unknown function


def test_a_reset_and_a_typed_change_can_be_undone(qtbot, window):
    window.controls.stepCountSpin.setValue(50)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 50 and window.controller.state == "paused")
    at_50 = window.controller.current.copy()
    type_into(qtbot, window.problemPanel.functionEdit, "X + 2")
    window.problemPanel.flush()
    assert window.controller.step == 0 and "Ctrl+Z" in window.messageLabel.text()
    window.activateWindow()
    window.setFocus()
    window.undoAction.trigger()  # Edit > Undo (Ctrl+Z)
    assert window.problemPanel.functionEdit.text() == "X + 1"
    assert window.controller.step == 50 and np.array_equal(window.controller.current, at_50)
    assert len(window.controller.history) == 50
    window.redoAction.trigger()  # Edit > Redo (Ctrl+Shift+Z): the typed change again
    assert window.problemPanel.functionEdit.text() == "X + 2" and window.controller.step == 0
    window.undoAction.trigger()
    assert window.problemPanel.functionEdit.text() == "X + 1" and window.controller.step == 50
    qtbot.mouseClick(window.controls.resetButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == 0)
    window.undoAction.trigger()
    assert window.controller.step == 50 and len(window.controller.history) == 50
    window.controls.stepButton.click()  # a new change: nothing left to redo
    qtbot.waitUntil(lambda: window.controller.step == 100 and window.controller.state == "paused")
    qtbot.mouseClick(window.controls.resetButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step == 0)
    assert not window.controller.can_redo
    window.redoAction.trigger()
    assert window.controller.step == 0 and "Nothing to redo" in window.messageLabel.text()


def test_help_menu_explains_the_language_the_keys_and_the_versions(qtbot, window):
    from PySide6.QtWidgets import QTextBrowser

    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    texts = {}
    for action in menu.actions():
        action.trigger()
        texts[action.text()] = window.helpDialog.findChild(QTextBrowser).toPlainText()
        window.helpDialog.close()
    language, keys, about = texts.values()
    assert "sigmoid" in language and "full((2,3), 4)" in language and "Rosenbrock" in language
    assert "Space" in keys and "Ctrl+Z" in keys
    assert "torch" in about and "PySide6" in about


def test_log_colours_chosen_for_a_problem_stay_through_a_zoom(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    view = window.trajectoryView
    qtbot.waitUntil(lambda: view.z is not None)
    assert view.logColorsCheck.isChecked()  # steep: chosen when the problem's map came
    first = view.z.copy()
    # zoom far into a slope away from the valley, where the loss is nearly a plane
    view.item.getViewBox().setRange(xRange=(-1.51, -1.49), yRange=(-1.01, -0.99), padding=0)
    qtbot.waitUntil(lambda: view.z is not None and not np.array_equal(view.z, first),
                    timeout=20_000)
    assert view.logColorsCheck.isChecked()


def test_the_parameters_plot_ends_where_the_run_does(qtbot, window):
    panel = window.problemPanel
    panel.functionEdit.selectAll()
    qtbot.keyClick(panel.functionEdit, Qt.Key.Key_Delete)
    qtbot.keyClicks(panel.functionEdit, "a**2 + b**2 + c**2")
    panel.flush()
    panel.stepsSpin.setValue(500)
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        qtbot.mouseClick(window.controls.playButton, Qt.MouseButton.LeftButton)
    window.redraw()
    view = window.trajectoryView
    assert view.mode == "lines"
    (x0, x1), _ = view.item.getViewBox().viewRange()
    assert 499 <= x1 <= 510   # not 1,024: the axis ends with the run
