"""Starting the desktop app."""

from __future__ import annotations

import sys

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from ..core.errors import GdvizError
from ..core.session import Session


def main(path: str | None = None) -> int:
    """Open the window (with a session file, when given) and run until it closes."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("gdviz")
    app.setOrganizationName("gdviz")
    pg.setConfigOptions(antialias=True)
    from .main_window import MainWindow

    session = None
    if path:
        try:
            session = Session.load(path)
        except GdvizError as exc:
            print(f"gdviz: error: {exc}", file=sys.stderr)
            return 2
    window = MainWindow(session)
    window.show()
    return app.exec()  # safe: Qt's event loop, not Python's exec
