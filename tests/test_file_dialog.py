"""The real file dialog (every other test answers it by hand): it opens, starts where it
is told, and returns the file the user types (a user on a new machine found that it never
opened: an import Qt 6 moved)."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QLineEdit

from gdviz.qt.file_dialog import ask_file

# the offscreen platform cannot raise a window or grab the keyboard; it says so, harmlessly
pytestmark = pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing")


def answer(qtbot, name: str | None, seen: dict | None = None) -> None:
    """Once the next file dialog shows, type ``name`` and click Open or Save (None:
    Cancel)."""
    def later():
        dialog = next((w for w in QApplication.topLevelWidgets()
                       if isinstance(w, QFileDialog) and w.isVisible()), None)
        if dialog is None:
            QTimer.singleShot(50, later)
            return
        if seen is not None:
            seen["folder"] = dialog.directory().absolutePath()
        buttons = dialog.findChild(QDialogButtonBox).buttons()
        accept, cancel = buttons[0], buttons[-1]
        if name is not None:
            edit = dialog.findChild(QLineEdit, "fileNameEdit")
            edit.selectAll()   # a save dialog suggests a name: the typed one replaces it
            qtbot.keyClick(edit, Qt.Key.Key_Delete)
            qtbot.keyClicks(edit, name)
        qtbot.mouseClick(accept if name is not None else cancel, Qt.MouseButton.LeftButton)
    QTimer.singleShot(50, later)


def test_the_dialog_opens_in_the_given_folder_and_returns_the_typed_file(qtbot, tmp_path):
    target = tmp_path / "points.csv"
    target.write_text("x,t\n1,2\n")
    seen = {}
    answer(qtbot, "points.csv", seen)
    assert ask_file(None, "Open data", str(tmp_path), "CSV (*.csv)", save=False) == str(target)
    assert Path(seen["folder"]) == tmp_path


def test_a_cancelled_dialog_returns_nothing(qtbot, tmp_path):
    answer(qtbot, None)
    assert ask_file(None, "Save", str(tmp_path / "s.gdviz.json"), "*.json", save=True) is None


def test_open_data_through_the_real_dialog(qtbot, window, tmp_path):
    target = tmp_path / "points.csv"
    target.write_text("x,t\n" + "\n".join(f"{i},{2 * i + 1}" for i in range(20)))
    window.documents.remember_folder(target)   # where the dialog starts: the last folder used
    seen = {}
    answer(qtbot, "points.csv", seen)
    qtbot.mouseClick(window.dataPanel.openButton, Qt.MouseButton.LeftButton)
    assert window.controller.session.data is not None
    assert window.controller.session.data.path == str(target.resolve())
    assert Path(seen["folder"]) == tmp_path


def test_a_save_dialog_returns_the_typed_name_in_its_folder(qtbot, tmp_path):
    answer(qtbot, "fit.gdviz.json")
    chosen = ask_file(None, "Save session", str(tmp_path / "session.gdviz.json"),
                      "gdviz sessions (*.gdviz.json *.json)", save=True)
    assert chosen == str(tmp_path / "fit.gdviz.json")
