"""The Data box of the left panel: which data is fitted, how it is batched, and what the
user should know about its columns (renamed, unused)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QWidget)

from ..core.data import MAX_ROWS

_NO_DATA = "No data. To fit a model to points, open a CSV file (or drop it here)."


class DataPanel(QGroupBox):
    """Shows the data of the problem and asks for a file, its removal or a batch size."""

    openRequested = Signal()
    removeRequested = Signal()
    batchSizeChanged = Signal(object)   # rows per mini-batch, or None for the full data

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Data", parent)
        self.setObjectName("dataPanel")
        form = QFormLayout(self)
        self.summaryLabel = QLabel(_NO_DATA, objectName="dataSummary")
        self.summaryLabel.setWordWrap(True)
        self.notesLabel = QLabel(objectName="dataNotes")
        self.notesLabel.setWordWrap(True)
        self.notesLabel.setStyleSheet("color: #8a5a00;")
        self.notesLabel.hide()
        self.batchSpin = QSpinBox(objectName="batchSizeSpin")
        self.batchSpin.setRange(0, MAX_ROWS)
        self.batchSpin.setSpecialValueText("all rows")  # 0: the full data every step
        self.batchSpin.setGroupSeparatorShown(True)
        self.batchSpin.setKeyboardTracking(False)
        self.batchSpin.setToolTip("Rows per step (a mini-batch), drawn afresh each epoch from "
                                  "the seed; \"all rows\": the full data every step")
        self.batchSpin.valueChanged.connect(self._on_batch_spin_changed)
        buttons = QHBoxLayout()
        self.openButton = QPushButton("Open data…", objectName="openDataButton")
        self.openButton.setToolTip("Fit to a CSV file: its columns become variables of the "
                                   "function and the loss (a column y is y_data)")
        self.openButton.clicked.connect(self.openRequested)
        self.removeButton = QPushButton("Remove", objectName="removeDataButton")
        self.removeButton.setToolTip("Stop fitting data: its columns become parameters again")
        self.removeButton.clicked.connect(self.removeRequested)
        buttons.addWidget(self.openButton)
        buttons.addWidget(self.removeButton)
        buttons.addStretch(1)
        form.addRow(self.summaryLabel)
        form.addRow(self.notesLabel)
        self.batchLabel = QLabel("Batch size")
        form.addRow(self.batchLabel, self.batchSpin)
        form.addRow(buttons)
        self.show_data(None, None, ())

    def show_data(self, data, batch_size: int | None, notes) -> None:
        """``data`` a Dataset (or None), the rows per mini-batch (None: all), and notes."""
        blocked = self.batchSpin.blockSignals(True)
        if data is None:
            self.summaryLabel.setText(_NO_DATA)
            self.batchSpin.setValue(0)
        else:
            self.summaryLabel.setText(f"<b>{data.describe()}</b>")
            self.summaryLabel.setToolTip("\n".join(
                f"{name}: from the column '{data.headers.get(name, name)}'" for name in data.names))
            self.batchSpin.setMaximum(data.rows)
            self.batchSpin.setValue(batch_size or 0)
        self.batchSpin.blockSignals(blocked)
        for widget in (self.batchLabel, self.batchSpin, self.removeButton):
            widget.setVisible(data is not None)  # compact while there is nothing to batch
        self.notesLabel.setText("; ".join(notes).capitalize())
        self.notesLabel.setVisible(bool(notes))

    def _on_batch_spin_changed(self, value: int) -> None:
        self.batchSizeChanged.emit(value or None)
