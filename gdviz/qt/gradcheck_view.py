"""The gradient check's table: autograd against finite differences, element by element.

Kinks (abs, relu, clamp at the point) are flagged, not hidden: there the one-sided
differences disagree and autograd returns one of them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView,
                               QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

HEADERS = ["element", "value", "autograd", "finite difference", "relative error", "kink", ""]


class GradCheckDialog(QDialog):
    """A non-modal window with the table of a core GradCheck (:meth:`show_check`)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("gradCheckDialog")
        self.setWindowTitle("Gradient check — gdviz")
        layout = QVBoxLayout(self)
        self.summary = QLabel(objectName="gradCheckSummary")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS), objectName="gradCheckTable")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(760, 360)

    def show_running(self, where: str) -> None:
        self.summary.setText(f"Checking the gradient at {where}…")
        self.table.setRowCount(0)

    def show_error(self, text: str) -> None:
        self.summary.setText(f"The gradient check failed: {text}")

    def show_check(self, check, where: str) -> None:
        """The elements of ``check`` (a core GradCheck), checked at ``where``."""
        self.summary.setText(f"At {where}: {check.summary()}")
        self.table.setRowCount(len(check.elements))
        for r, e in enumerate(check.elements):
            status = "kink" if e.kink else "ok" if e.ok else "MISMATCH"
            cells = [e.label, f"{e.value:.6g}", f"{e.autograd:.8g}", f"{e.numeric:.8g}",
                     f"{e.rel_error:.2e}", "yes" if e.kink else "", status]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if 0 < c < len(cells) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if e.kink:
                    item.setBackground(QColor("#fff3cd"))
                    item.setToolTip(f"A kink: from the left {e.left:.6g}, from the right "
                                    f"{e.right:.6g}; autograd gives one of them")
                elif not e.ok:
                    item.setBackground(QColor("#f8d7da"))
                self.table.setItem(r, c, item)
