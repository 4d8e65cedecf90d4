"""A QApplication for drawing without a window (the CLI's figures)."""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

# The offscreen platform says this once per window; it means nothing to a user.
_QUIET = ("propagateSizeHints",)


def _on_qt_message(kind: QtMsgType, _context, message: str) -> None:
    if not any(text in message for text in _QUIET):
        print(f"qt: {message}", file=sys.stderr)


def ensure_app() -> QApplication:
    """The running QApplication, or a new one; offscreen where there is no display."""
    app = QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        qInstallMessageHandler(_on_qt_message)
        app = QApplication(["gdviz"])
    return app
