"""The window is on screen before torch has loaded; Play pressed meanwhile waits for it."""

import subprocess
import sys

from PySide6.QtCore import Qt


def test_the_window_modules_do_not_import_torch():
    # torch is imported by the training thread when it builds the first problem, so the
    # window can paint and take typing first (benchmarks/startup.py measures the times)
    code = ("import sys, gdviz.qt.main_window, gdviz.qt.app\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})


def test_play_pressed_while_loading_starts_the_run_when_ready(qtbot):
    from gdviz.qt import MainWindow
    from gdviz.qt.main_window import app_settings

    app_settings().clear()
    window = MainWindow()
    window.ask_unsaved = lambda: "discard"
    qtbot.addWidget(window)
    window.show()
    assert window.problemPanel.functionEdit.text() == "X + 1"  # the text is there at once
    assert window.controller.loading  # built on the worker thread; its answer comes later
    window.controls.stepCountSpin.setValue(7)
    qtbot.mouseClick(window.controls.stepButton, Qt.MouseButton.LeftButton)
    assert "Starting torch" in window.messageLabel.text()
    assert "Starting torch" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.controller.step == 7 and window.controller.state == "paused",
                    timeout=30_000)
    # torch is ready: neither the banner nor the status bar still says it is starting
    assert "Starting torch" not in window.messageLabel.text()
    assert "Starting torch" not in window.statusBar().currentMessage()
    window.close()
    app_settings().clear()
