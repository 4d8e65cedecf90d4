"""The Runs list: add, remove, duplicate, branch, rename, recolour and hide runs.

A view: it shows the model's runs and announces what the user asks for; the selected row is
the selected run, which the optimizer settings, the parameters plot and the graph follow.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QColorDialog, QDialog, QDialogButtonBox,
                               QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QComboBox, QMenu, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

from ..core.model import Run
from ..core.optimizers import OPTIMIZERS

STATUS_COLORS = {"idle": "#555555", "running": "#1565c0", "paused": "#6d4c41",
                 "finished": "#2e7d32", "converged": "#2e7d32", "diverged": "#c62828"}


def swatch(color: str, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color or "#888888"))
    return QIcon(pixmap)


class RunsPanel(QGroupBox):
    """The list of runs with its buttons; see the module docstring."""

    runSelected = Signal(int)
    addRequested = Signal()
    duplicateRequested = Signal(int)
    forkRequested = Signal(int)
    removeRequested = Signal(int)
    renamed = Signal(int, str)
    recolored = Signal(int, str)
    visibilityToggled = Signal(int, bool)
    compareRequested = Signal()
    sweepRequested = Signal(str, float, float, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Runs", parent)
        self.setObjectName("runsPanel")
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, 3, objectName="runsTable")
        self.table.setHorizontalHeaderLabels(["Show", "Run", "Status"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setToolTip("Every run of the race. The selected one is what the optimizer "
                              "settings, the parameters plot and the graph show.\nDouble-click a "
                              "name to rename it, the colour to change it; untick to hide.")
        self.table.setMinimumHeight(80)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.table.cellDoubleClicked.connect(self._on_table_cell_double_clicked)
        layout.addWidget(self.table)

        buttons = QHBoxLayout()
        self.addButton = self._button("Add", "addRunButton", "A new run with the selected "
                                      "run's settings, from the start", self.addRequested.emit)
        self.duplicateButton = self._button("Duplicate", "duplicateRunButton", "The same "
                                            "settings, from the start", self._emit_duplicate)
        self.forkButton = self._button("Branch", "forkRunButton", "Branch from here: a new run "
                                       "from where the selected run stands now (its point and "
                                       "optimizer state); change its optimizer to ask \"what if "
                                       "I switch now?\"", self._emit_fork)
        self.removeButton = self._button("Remove", "removeRunButton", "Remove the selected run",
                                         self._emit_remove)
        self.moreButton = QToolButton(objectName="moreRunsButton", text="More")
        self.moreButton.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.moreButton)
        self.compareAction = menu.addAction("Compare optimizers", self.compareRequested.emit)
        self.compareAction.setToolTip("SGD, momentum, Nesterov, RMSprop, Adam and AdamW from "
                                      "the same start")
        self.sweepAction = menu.addAction("LR sweep…", self._ask_sweep)
        menu.setToolTipsVisible(True)
        self.moreButton.setMenu(menu)
        for b in (self.addButton, self.duplicateButton, self.forkButton, self.removeButton,
                  self.moreButton):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self._ids: list[int] = []

    def _button(self, text: str, name: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text, objectName=name)
        button.setToolTip(tip)
        button.clicked.connect(lambda _c=False: slot())
        return button

    # --- model -> widgets ---------------------------------------------------------------

    def show_runs(self, runs: list[Run], selected: int | None) -> None:
        """Rebuild the rows (runs added, removed or renamed)."""
        blocker = QSignalBlocker(self.table)
        self._ids = [r.id for r in runs]
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            show = QTableWidgetItem()
            show.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
                          | Qt.ItemFlag.ItemIsSelectable)
            show.setCheckState(Qt.CheckState.Checked if run.settings.visible else Qt.CheckState.Unchecked)
            show.setIcon(swatch(run.settings.color))
            show.setData(Qt.ItemDataRole.UserRole, run.settings.color)
            show.setToolTip("Tick to show the run in the plots; double-click to change its colour")
            name = QTableWidgetItem(run.label)
            name.setToolTip(f"{run.label}\n{_describe(run)}")
            status = QTableWidgetItem()
            status.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            for col, item in enumerate((show, name, status)):
                self.table.setItem(row, col, item)
            self._fill_status(row, run)
        self.removeButton.setEnabled(len(runs) > 1)
        del blocker
        self.select(selected)

    def show_progress(self, runs: list[Run]) -> None:
        """Update each row's status and step (cheap: no rebuild)."""
        if [r.id for r in runs] != self._ids:
            return
        blocker = QSignalBlocker(self.table)
        for row, run in enumerate(runs):
            self._fill_status(row, run)
        del blocker

    def _fill_status(self, row: int, run: Run) -> None:
        item = self.table.item(row, 2)
        text = run.status.value if run.status.value in ("idle",) else f"{run.status.value} {run.step:,}"
        if item.text() != text:
            item.setText(text)
            item.setForeground(QColor(STATUS_COLORS.get(run.status.value, "#555555")))
            loss = f"loss {run.loss:.6g}" if math.isfinite(run.loss) else "loss —"
            item.setToolTip(f"{run.message or run.status.value} ({loss})")

    def select(self, run_id: int | None) -> None:
        if run_id is None or run_id not in self._ids:
            return
        row = self._ids.index(run_id)
        if self.table.currentRow() != row:
            blocker = QSignalBlocker(self.table)
            self.table.setCurrentCell(row, 1)  # the current row is what the buttons act on
            self.table.selectRow(row)
            del blocker

    def selected_id(self) -> int | None:
        row = self.table.currentRow()
        return self._ids[row] if 0 <= row < len(self._ids) else None

    # --- widgets -> signals -------------------------------------------------------------

    def _on_table_selection_changed(self) -> None:
        run_id = self.selected_id()
        if run_id is not None:
            self.runSelected.emit(run_id)

    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        run_id = self._ids[item.row()]
        if item.column() == 0:
            self.visibilityToggled.emit(run_id, item.checkState() == Qt.CheckState.Checked)
        elif item.column() == 1:
            self.renamed.emit(run_id, item.text().strip())

    def _on_table_cell_double_clicked(self, row: int, column: int) -> None:
        if column != 0 or row >= len(self._ids):
            return
        color = self.ask_color(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
        if color:
            self.recolored.emit(self._ids[row], color)

    def ask_color(self, current: str) -> str | None:
        """A colour dialog; tests replace this method."""
        color = QColorDialog.getColor(QColor(current or "#888888"), self, "Run colour")
        return color.name() if color.isValid() else None

    def _emit_duplicate(self) -> None:
        if (run_id := self.selected_id()) is not None:
            self.duplicateRequested.emit(run_id)

    def _emit_fork(self) -> None:
        if (run_id := self.selected_id()) is not None:
            self.forkRequested.emit(run_id)

    def _emit_remove(self) -> None:
        if (run_id := self.selected_id()) is not None:
            self.removeRequested.emit(run_id)

    def _ask_sweep(self) -> None:
        answer = SweepDialog.ask(self)
        if answer is not None:
            self.sweepRequested.emit(*answer)


class SweepDialog(QDialog):
    """N runs of one optimizer, learning rates spaced logarithmically between two values."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Learning-rate sweep")
        form = QFormLayout(self)
        self.optimizerCombo = QComboBox(objectName="sweepOptimizer")
        for spec in OPTIMIZERS.values():
            self.optimizerCombo.addItem(spec.title, spec.name)
        self.lowSpin = QDoubleSpinBox(objectName="sweepLow", decimals=8, minimum=1e-8,
                                      maximum=100.0, value=1e-4)
        self.highSpin = QDoubleSpinBox(objectName="sweepHigh", decimals=8, minimum=1e-8,
                                       maximum=100.0, value=1e-1)
        self.countSpin = QSpinBox(objectName="sweepCount", minimum=2, maximum=256, value=16)
        form.addRow("Optimizer", self.optimizerCombo)
        form.addRow("Lowest learning rate", self.lowSpin)
        form.addRow("Highest learning rate", self.highSpin)
        form.addRow("Runs", self.countSpin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[str, float, float, int]:
        low, high = sorted((self.lowSpin.value(), self.highSpin.value()))
        return self.optimizerCombo.currentData(), low, high, self.countSpin.value()

    @classmethod
    def ask(cls, parent: QWidget) -> tuple[str, float, float, int] | None:
        dialog = cls(parent)
        return dialog.values() if dialog.exec() == QDialog.DialogCode.Accepted else None


def _describe(run: Run) -> str:
    from ..core.model import describe_optimizer
    return describe_optimizer(run.settings.optimizer, run.settings.hypers)
