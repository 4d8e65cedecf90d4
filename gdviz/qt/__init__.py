"""The desktop app: windows, widgets, the training worker and its controller."""

from .main_window import MainWindow

__all__ = ["MainWindow"]
