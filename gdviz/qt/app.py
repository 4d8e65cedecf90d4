"""Starting the desktop app."""

from __future__ import annotations

import sys

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication


def main(path: str | None = None) -> int:
    """Open the window (with a session file, when given) and run until it closes."""
    # pyqtgraph compiles its OpenGL shaders once per process: every GL view (the 3-D
    # surface) must share one context family, and this must be said before the app exists.
    QApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("gdviz")
    app.setOrganizationName("gdviz")
    pg.setConfigOptions(antialias=True)
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    if path:
        # Opened as a document: the title, Save and Recent all know its path.
        if not window.open_session(path):
            print(f"gdviz: error: cannot open {path}: {window.lastError}", file=sys.stderr)
    return app.exec()  # safe: Qt's event loop, not Python's exec
