import os

# Qt must never need a display in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDVIZ_SETTINGS_ORG", "gdviz-tests")

import pytest
from PySide6.QtCore import QCoreApplication, Qt

# As gdviz.qt.app does: windows made one after another share OpenGL contexts, since
# pyqtgraph compiles its shaders once per process (the 3-D surface under a real display).
QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


@pytest.fixture
def window(qtbot):
    """A fresh main window with no remembered settings; closed (thread stopped) after."""
    from gdviz.qt import MainWindow
    from gdviz.qt.main_window import app_settings

    app_settings().clear()
    win = MainWindow()
    win.ask_unsaved = lambda: "discard"  # no blocking dialog in tests
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)  # as a user sees it: on screen, able to take keys
    qtbot.waitUntil(lambda: win.controller.runset is not None, timeout=30_000)  # torch loaded
    yield win
    win.close()
    app_settings().clear()


def wait_state(qtbot, win, *states, timeout=30_000):
    qtbot.waitUntil(lambda: win.controller.state in states, timeout=timeout)
