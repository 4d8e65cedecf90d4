"""The leaderboard: per run, final and best loss, steps to the target, status. Sortable."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.model import RunSet
from .runs_panel import STATUS_COLORS, swatch

COLUMNS = ("Run", "Status", "Steps", "Final loss", "Best loss", "Steps to target")


class _NumberItem(QTableWidgetItem):
    """Sorts by number (missing and non-finite values last), shows text."""

    def __init__(self, value: float | None, text: str):
        super().__init__(text)
        self.value = math.inf if value is None or not math.isfinite(value) else float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other) -> bool:  # noqa: D105
        return self.value < getattr(other, "value", math.inf)


class LeaderboardView(QWidget):
    """A sortable table of the runs' results, and its CSV export."""

    exportRequested = Signal()
    runSelected = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("leaderboard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        self.target = QLabel()
        self.target.setStyleSheet("color: #555;")
        header.addWidget(self.target, 1)
        self.exportButton = QPushButton("Export CSV", objectName="leaderboardExport")
        self.exportButton.setToolTip("Save the leaderboard as CSV")
        self.exportButton.clicked.connect(self.exportRequested.emit)
        header.addWidget(self.exportButton)
        layout.addLayout(header)
        self.table = QTableWidget(0, len(COLUMNS), objectName="leaderboardTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            self.table.horizontalHeader().setSectionResizeMode(
                col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(3, Qt.SortOrder.AscendingOrder)
        self.table.cellDoubleClicked.connect(
            lambda row, _col: self.runSelected.emit(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)))
        layout.addWidget(self.table, 1)
        self.rows: list[dict] = []

    def refresh(self, runset: RunSet) -> None:
        rows = runset.leaderboard()
        if rows == self.rows:
            return
        self.rows = rows
        self.target.setText(f"Steps to target: {runset.target_description()}. "
                            "Click a heading to sort; double-click a run to select it.")
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)  # filling a sorted table moves rows mid-fill
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = QTableWidgetItem(swatch(row["color"]), row["label"])
            name.setData(Qt.ItemDataRole.UserRole, row["id"])
            status = QTableWidgetItem(row["status"])
            status.setForeground(QColor(STATUS_COLORS.get(row["status"], "#555555")))
            items = [name, status,
                     _NumberItem(row["steps"], f"{row['steps']:,}"),
                     _NumberItem(row["loss"], _num(row["loss"])),
                     _NumberItem(row["best_loss"], _num(row["best_loss"])),
                     _NumberItem(row["steps_to_target"], "—" if row["steps_to_target"] is None
                                 else f"{row['steps_to_target']:,}")]
            for c, item in enumerate(items):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(sorting)


def _num(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else "—"
