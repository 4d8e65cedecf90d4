"""Fitting data in the window (issue #11), driven as a user drives it: open a CSV file,
type the model, choose a batch size, press Step, and watch the fit over the data."""

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from conftest import wait_state
from gdviz.core.presets import load_preset
from gdviz.core.session import Session

LINE = "x,y\n" + "\n".join(f"{x},{2 * x + 1 + 0.1 * ((-1) ** i)}"
                           for i, x in enumerate(np.linspace(-2, 2, 41)))


def type_into(qtbot, edit, text):
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)


def params_in_table(window):
    table = window.problemPanel.paramsTable
    return [table.item(r, 0).text() for r in range(table.rowCount())]


def open_data_from_menu(window, path):
    window.ask_path = lambda *a, **k: str(path)
    action = next(a for a in window.fileMenu.actions() if a.text().replace("&", "") ==
                  "Open data…")
    action.trigger()


def type_model(qtbot, window, function, loss):
    panel = window.problemPanel
    type_into(qtbot, panel.functionEdit, function)
    type_into(qtbot, panel.lossEdit, loss)
    panel.flush()


def step(qtbot, window, count):
    """Type the count of steps and click Step."""
    controls = window.controls
    controls.stepCountSpin.setValue(count)
    qtbot.mouseClick(controls.stepButton, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.step >= count, timeout=30_000)
    wait_state(qtbot, window, "paused", "finished")


def test_open_a_csv_type_a_line_and_watch_it_fit(qtbot, window, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(LINE)
    assert not window.dataView.legend.isVisible()  # nothing to name: no empty box either
    open_data_from_menu(window, path)       # the data first, on the seed's X + 1
    assert "not used" in window.dataPanel.notesLabel.text()
    type_model(qtbot, window, "w*x + b", "mse(y, y_data)")
    # x is a column of the data, not a parameter; y became y_data (and the box says so)
    assert params_in_table(window) == ["w", "b"]
    panel = window.dataPanel
    assert "41 rows of x, y_data" in panel.summaryLabel.text()
    assert "y_data" in panel.notesLabel.text() and panel.notesLabel.isVisible()
    tabs = window.bottomTabs
    assert tabs.currentWidget() is window.dataView and tabs.isTabVisible(tabs.currentIndex())
    assert window.controller.session.data.path == str(path.resolve())

    window.problemPanel.lrSpin.setValue(0.1)
    step(qtbot, window, 300)
    qtbot.waitUntil(lambda: window.dataView.picture is not None and
                    window.dataView.picture.kind == "curve", timeout=10_000)
    run = window.controller.selected
    qtbot.waitUntil(lambda: np.allclose(window.dataView.curves[run.id].yData[[0, -1]],
                                        run.values[0] * window.dataView.picture.grid[0][[0, -1]]
                                        + run.values[1], rtol=1e-4, atol=1e-4), timeout=10_000)
    w, b = run.values
    assert abs(w - 2) < 0.01 and abs(b - 1) < 0.01
    # the points drawn are the file's, and the legend names them
    assert window.dataView.legend.isVisible()
    xs, ys = window.dataView.points.getData()
    assert len(xs) == 41 and np.allclose(sorted(xs), np.linspace(-2, 2, 41))


def test_a_bad_file_gets_a_message_naming_the_cell_and_nothing_is_lost(qtbot, window,
                                                                          tmp_path):
    errors = []
    window.report_error = lambda title, text: errors.append((title, text))
    before = window.controller.session
    bad = tmp_path / "bad.csv"
    bad.write_text("x,t\n1,2\n3,oops\n")
    open_data_from_menu(window, bad)
    assert errors and "row 3, column 't'" in errors[-1][1] and "bad.csv" in errors[-1][0]
    missing = tmp_path / "gone.csv"
    open_data_from_menu(window, missing)
    assert "does not exist" in errors[-1][1]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    open_data_from_menu(window, empty)
    assert "empty" in errors[-1][1]
    assert window.controller.session is before and window.controller.session.data is None
    assert not window.bottomTabs.isTabVisible(window.bottomTabs.indexOf(window.dataView))
    assert window.controls.playButton.isEnabled()
    assert QApplication.overrideCursor() is None  # the wait cursor went with the error


def test_reading_a_file_shows_a_wait_cursor_and_says_so(qtbot, window, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(LINE)
    seen = []
    load = window.controller.set_data

    def watched(source):
        cursor = QApplication.overrideCursor()
        seen.append((cursor.shape() if cursor else None, window.messageLabel.text()))
        return load(source)

    window.controller.set_data = watched
    open_data_from_menu(window, path)
    assert seen == [(Qt.CursorShape.WaitCursor, "Reading points.csv…")]
    assert QApplication.overrideCursor() is None
    assert "Fitting points.csv" in window.messageLabel.text()


def test_a_batch_size_gives_epochs_on_the_loss_plot_and_in_the_status_bar(qtbot, window):
    window.load_session(load_preset("fit-line"))
    spin = window.dataPanel.batchSpin
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), "25")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert window.controller.session.batch_size == 25
    rows = window.controller.info.data.rows
    step(qtbot, window, 40)
    window.redraw()
    per_epoch = rows // 25
    assert f"epoch {40 / per_epoch:.1f}" in window.stepLabel.text()
    run = window.controller.selected
    # the data's loss where each epoch starts, the start and the point after step 40 included
    assert [s for s, _ in run.epoch_losses] == list(range(0, 41, per_epoch))
    dots = window.lossView.epochs[run.id]
    assert len(dots.xData) == len(run.epoch_losses)
    # back to the full batch: no epochs
    spin.selectAll()
    qtbot.keyClicks(spin.lineEdit(), "0")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert window.controller.session.batch_size is None
    window.redraw()
    assert "epoch" not in window.stepLabel.text()


def test_a_dropped_csv_becomes_the_data_and_remove_brings_the_parameter_back(qtbot, window,
                                                                            tmp_path):
    path = tmp_path / "drop.csv"
    path.write_text(LINE)
    type_model(qtbot, window, "w*x + b", "y**2")
    assert params_in_table(window) == ["w", "x", "b"]      # no data yet: x is a parameter
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.controller.session.data is not None
    assert params_in_table(window) == ["w", "b"]
    qtbot.mouseClick(window.dataPanel.removeButton, Qt.MouseButton.LeftButton)
    assert window.controller.session.data is None
    assert params_in_table(window) == ["w", "x", "b"]
    assert not window.bottomTabs.isTabVisible(window.bottomTabs.indexOf(window.dataView))


def test_sessions_keep_the_data_file_and_its_batch_size(qtbot, window, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(LINE)
    open_data_from_menu(window, path)
    type_model(qtbot, window, "w*x + b", "mse(y, y_data)")
    window.dataPanel.batchSpin.setValue(10)
    saved = tmp_path / "fit.gdviz.json"
    assert window.save_session_to(saved)
    session = Session.load(saved)
    assert session.data.path == str(path.resolve()) and session.batch_size == 10
    window.load_session(load_preset("bowl"))
    assert window.open_session(saved)
    assert window.controller.session.batch_size == 10
    assert params_in_table(window) == ["w", "b"]
    assert window.dataPanel.batchSpin.value() == 10


def test_the_classifiers_boundary_is_drawn_for_each_run(qtbot, window):
    window.load_session(load_preset("logistic-regression"))
    window.controller.add_run(window.controller.selected.settings)
    step(qtbot, window, 50)
    view = window.dataView
    qtbot.waitUntil(lambda: view.picture is not None and view.picture.kind == "field" and
                    len(view.boundaries) == 2, timeout=10_000)
    assert view.image.image is not None and view.image.image.shape == view.picture.values[0].T.shape
    assert "0.5" in view.hint.text()
    assert window.dataView.points.data is not None and len(window.dataView.points.data) > 0


def test_a_function_that_reduces_the_data_says_why_nothing_is_drawn(qtbot, window, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text(LINE)
    open_data_from_menu(window, path)
    type_model(qtbot, window, "mse(w*x + b, y_data)", "y")
    step(qtbot, window, 5)
    qtbot.waitUntil(lambda: "mse(y, t)" in window.dataView.hint.text(), timeout=10_000)


def test_removing_data_the_loss_still_reads_says_what_to_change(qtbot, window):
    errors = []
    window.report_error = lambda title, text: errors.append((title, text))
    window.load_session(load_preset("fit-line"))
    qtbot.mouseClick(window.dataPanel.removeButton, Qt.MouseButton.LeftButton)
    assert errors and "reads the data's column y_data" in errors[-1][1]
    assert "Change it first" in errors[-1][1]
    assert window.controller.session.data is not None      # nothing changed


def test_a_renamed_column_is_named_in_the_mistake_it_causes(qtbot, window, tmp_path):
    path = tmp_path / "waves.csv"
    path.write_text("sin,t\n" + "\n".join(f"{i / 10},{i / 5}" for i in range(20)))
    open_data_from_menu(window, path)
    type_model(qtbot, window, "w*sin + b", "mse(y, t)")
    error = window.problemPanel.functionError
    assert error.isVisible()
    assert "the data's column 'sin' is called sin_data here" in error.text()
