"""Racing in the window: the Runs list, one curve and one path per run, the leaderboard."""

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import wait_state
from gdviz.core.presets import load_preset


def click(qtbot, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def run_ids(window):
    return [r.id for r in window.controller.runset]


def test_add_duplicate_rename_recolour_hide_and_remove_runs(qtbot, window):
    panel = window.runsPanel
    window.load_session(load_preset("rosenbrock"))
    click(qtbot, panel.addButton)
    click(qtbot, panel.duplicateButton)
    assert panel.table.rowCount() == 3 and len(window.controller.runset) == 3
    colors = [r.settings.color for r in window.controller.runset]
    assert len(set(colors)) == 3  # each run its own colour

    # rename: double-click the name and type, as a user does
    rect = panel.table.visualItemRect(panel.table.item(1, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    from PySide6.QtWidgets import QLineEdit
    editor = next(w for w in panel.table.findChildren(QLineEdit) if w.isVisible())
    editor.selectAll()
    qtbot.keyClicks(editor, "Fast one")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the table commits on its next turn
    qtbot.waitUntil(lambda: window.controller.runset.runs[1].label == "Fast one")

    panel.ask_color = lambda current: "#123456"
    rect = panel.table.visualItemRect(panel.table.item(2, 0))
    swatch = rect.topRight() + type(rect.topRight())(-4, rect.height() // 2)  # the colour, not the tick
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=swatch)
    qtbot.mouseDClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=swatch)
    assert window.controller.runset.runs[2].settings.color == "#123456"

    rect = panel.table.visualItemRect(panel.table.item(2, 0))
    tick = rect.topLeft() + type(rect.topLeft())(10, rect.height() // 2)
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=tick)
    assert window.controller.runset.runs[2].settings.visible is False
    window.redraw()
    assert not window.lossView.curves[window.controller.runset.runs[2].id].isVisible()

    rect = panel.table.visualItemRect(panel.table.item(0, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.controller.runset.selected_id == run_ids(window)[0]
    click(qtbot, panel.removeButton)
    assert len(window.controller.runset) == 2
    assert window.controller.runset.runs[0].label == "Fast one"


def test_compare_optimizers_races_and_shows_every_run(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    window.runsPanel.compareAction.trigger()
    runs = window.controller.runset.runs
    assert [r.label for r in runs] == ["SGD", "Momentum", "Nesterov", "RMSprop", "Adam", "AdamW"]
    assert "press Play" in window.messageLabel.text()
    window.problemPanel.stepsSpin.setValue(300)
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        click(qtbot, window.controls.playButton)
    assert all(r.step == 300 and r.status.value == "finished" for r in runs)
    assert "press Play" not in window.messageLabel.text()  # said and done
    window.redraw()
    curves = window.lossView.curves
    assert len(curves) == 6 and all(len(c.xData) == 300 for c in curves.values())
    assert len(window.lossView.legend.items) == 6
    paths = window.trajectoryView.drawings
    assert len(paths) == 6 and all(len(d.path.xData) > 1 for d in paths.values())
    view = window.trajectoryView
    names = [label.text for _sample, label in view.legend.items]
    assert names == [r.label for r in runs] and "start" in view.item.titleLabel.text
    # the legend finds a corner that leaves the start (top left here) in view and hides one
    # run's marker at most (it sat over the start, top left, before)
    qtbot.wait(600)
    legend = view.legend.sceneBoundingRect()
    assert not legend.contains(view.start_marker.scenePos())
    covered = [d.marker for d in paths.values() if legend.contains(d.marker.scenePos())]
    assert len(covered) <= 1
    # lock step: every path has the same number of points, and they differ
    ends = {tuple(np.round(r.values, 6)) for r in runs}
    assert len(ends) == 6
    window.bottomTabs.setCurrentWidget(window.leaderboard)
    window.redraw()
    table = window.leaderboard.table
    assert table.rowCount() == 6
    table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
    losses = [table.item(r, 3).value for r in range(6)]
    assert losses == sorted(losses)


def test_a_diverging_run_stops_alone(qtbot, window):
    window.load_session(load_preset("bowl"))
    window.runsPanel.sweepRequested.emit("sgd", 0.01, 0.2, 4)  # as the LR sweep dialog does
    window.problemPanel.stepsSpin.setValue(200)
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        click(qtbot, window.controls.playButton)
    runs = window.controller.runset.runs
    assert runs[-1].status.value == "diverged" and runs[-1].step < 200
    assert np.isfinite(runs[-1].values).all()
    assert all(r.status.value == "finished" and r.step == 200 for r in runs[:-1])


def test_branch_from_here_continues_exactly(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    window.controls.stepCountSpin.setValue(60)
    click(qtbot, window.controls.stepButton)
    wait_state(qtbot, window, "paused")
    click(qtbot, window.runsPanel.forkButton)
    runset = window.controller.runset
    parent, child = runset.runs
    assert runset.selected_id == child.id and child.step == 60
    assert np.array_equal(child.history.params, parent.history.params)
    window.controls.stepCountSpin.setValue(40)
    click(qtbot, window.controls.stepButton)
    qtbot.waitUntil(lambda: child.step == 100 and window.controller.state == "paused")
    assert np.array_equal(parent.values, child.values)  # same optimizer: same path

    # "what if I switch to SGD now?": the branch changes optimizer, the parent keeps Adam
    combo = window.problemPanel.optimizerCombo
    combo.setCurrentIndex(combo.findData("sgd"))
    window.problemPanel.lrSpin.setValue(1e-4)  # plain SGD needs a small step on Rosenbrock
    assert child.settings.optimizer == "sgd" and parent.settings.optimizer == "adam"
    click(qtbot, window.controls.stepButton)
    qtbot.waitUntil(lambda: child.step == 140 and window.controller.state == "paused")
    assert not np.array_equal(parent.values, child.values)


def test_selecting_a_run_shows_it_in_the_optimizer_panel_and_graph(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    window.runsPanel.compareAction.trigger()
    table = window.runsPanel.table
    rect = table.visualItemRect(table.item(4, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    run = window.controller.selected
    assert run.label == "Adam"
    assert window.problemPanel.optimizerCombo.currentData() == "adam"
    assert "Adam" in window.problemPanel.optimizerGroup.title()
    window.problemPanel.lrSpin.setValue(0.05)
    assert run.settings.hypers["lr"] == pytest.approx(0.05)
    assert window.controller.runset.runs[0].settings.hypers["lr"] != pytest.approx(0.05)


def test_race_session_round_trips_in_the_window(qtbot, window, tmp_path):
    window.load_session(load_preset("rosenbrock"))
    window.runsPanel.compareAction.trigger()
    window.controls.stepCountSpin.setValue(50)
    click(qtbot, window.controls.stepButton)
    wait_state(qtbot, window, "paused")
    before = [(r.label, r.step, r.values.copy()) for r in window.controller.runset]
    path = tmp_path / "race.gdviz.json"
    assert window.save_session_to(path)
    data = json.loads(path.read_text())
    assert len(data["runs"]) == 6
    window.load_session(load_preset("bowl"))
    assert window.open_session(path)
    after = [(r.label, r.step, r.values) for r in window.controller.runset]
    assert [a[:2] for a in after] == [b[:2] for b in before]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(after, before))
    assert len(window.lossView.curves) == 6


def test_a_removed_run_comes_back_with_ctrl_z(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    window.runsPanel.compareAction.trigger()
    window.problemPanel.stepsSpin.setValue(50)
    with qtbot.waitSignal(window.runFinished, timeout=60_000):
        click(qtbot, window.controls.playButton)
    before = {r.label: r.step for r in window.controller.runset}
    adam = next(r for r in window.controller.runset if r.label == "Adam")
    window.controller.select_run(adam.id)
    click(qtbot, window.runsPanel.removeButton)
    assert "Adam" not in {r.label for r in window.controller.runset}
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert {r.label: r.step for r in window.controller.runset} == before


def test_a_new_run_shows_its_starting_loss_before_it_steps(qtbot, window):
    window.load_session(load_preset("rosenbrock"))
    first = window.controller.runset.runs[0]
    click(qtbot, window.runsPanel.addButton)
    new = window.controller.runset.runs[-1]
    assert new is not first and new.step == 0
    qtbot.waitUntil(lambda: np.isfinite(new.loss), timeout=10_000)
    assert new.loss == pytest.approx(first.loss)   # the same start: the same loss
