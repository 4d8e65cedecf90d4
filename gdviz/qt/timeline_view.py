"""The timeline under the plots: a slider over the selected run's recorded steps.

The slider's positions are the history's rows (a long run keeps every n-th step only, so
the slider moves over what was recorded) and, at its right end, "live": where the run
stands now. The label says which step is shown, and whether steps were thinned out.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QWidget


def ordinal(n: int) -> str:
    """2nd, 4th, 32nd..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class TimelineBar(QWidget):
    """A slider over recorded rows plus "live"; ``rowChosen`` carries the row (-1: live)."""

    rowChosen = Signal(int)
    restartRequested = Signal()
    branchRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("timeline")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        title = QLabel("Step")
        title.setToolTip("Scrub back through the selected run: every view shows that step")
        self.slider = QSlider(Qt.Orientation.Horizontal, objectName="timelineSlider")
        self.slider.setToolTip("The recorded steps of the selected run; the right end is "
                               "live. Left/Right, Home/End move it while the run is paused.")
        self.slider.setRange(0, 0)
        self.slider.setPageStep(10)
        self.slider.valueChanged.connect(self._on_slider_value_changed)
        self.label = QLabel("live", objectName="timelineLabel")
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance(
            "step 100,000 of 100,000 (every 64th recorded)") + 8)  # no jitter while dragging
        self.restartButton = QPushButton("Restart from here", objectName="restartButton")
        self.restartButton.setToolTip("Put the selected run back at the step shown, with its "
                                      "optimizer state where it can be replayed; the later "
                                      "steps are dropped (Ctrl+Z brings them back)")
        self.restartButton.clicked.connect(self.restartRequested.emit)
        self.restartButton.setEnabled(False)
        self.branchButton = QPushButton("Branch from here", objectName="timelineBranchButton")
        self.branchButton.setToolTip("A new run from the step shown (its optimizer state "
                                     "too, where it can be replayed); the selected run stays "
                                     "as it is")
        self.branchButton.clicked.connect(self.branchRequested.emit)
        self.branchButton.setEnabled(False)
        layout.addWidget(title)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.restartButton)
        layout.addWidget(self.branchButton)
        self._steps = np.zeros(0, dtype=np.int64)
        self._live_step = 0
        self._stride = 1
        self._loss_only = False

    @property
    def live(self) -> bool:
        return self.slider.value() >= len(self._steps)

    @property
    def row(self) -> int | None:
        """The row shown, or None at the live end."""
        return None if self.live else int(self.slider.value())

    def show_run(self, steps: np.ndarray, live_step: int, stride: int, row: int | None,
                 running: bool, loss_only: bool = False) -> None:
        """The rows of the selected run, where it stands, and the row shown (None: live);
        ``loss_only``: the rows hold the loss, not the parameters (a large problem)."""
        self._steps, self._live_step, self._stride = steps, int(live_step), int(stride)
        self._loss_only = loss_only
        n = len(steps)
        value = n if row is None else min(int(row), n)
        blocker = QSignalBlocker(self.slider)
        if self.slider.maximum() != n:
            self.slider.setMaximum(n)
        if self.slider.value() != value:
            self.slider.setValue(value)
        del blocker
        self.slider.setEnabled(not running and n > 0)
        self.restartButton.setEnabled(not running and row is not None)
        self.branchButton.setEnabled(not running and row is not None)
        self._write_label()

    def _write_label(self) -> None:
        thinned = f" (every {ordinal(self._stride)} recorded)" if self._stride > 1 else ""
        if self._loss_only and not self.live:
            thinned += ", its loss only"
        if self.live:
            text = f"live: step {self._live_step:,}{thinned}"
        else:
            text = f"step {int(self._steps[self.slider.value()]):,} of {self._live_step:,}{thinned}"
        if self.label.text() != text:
            self.label.setText(text)

    def move(self, delta: int | str) -> None:
        """One row back or on (``delta``), or "home" / "end" (live)."""
        n = len(self._steps)
        value = 0 if delta == "home" else n if delta == "end" else \
            max(0, min(n, self.slider.value() + int(delta)))
        self.slider.setValue(value)

    def _on_slider_value_changed(self, value: int) -> None:
        self._write_label()
        self.restartButton.setEnabled(self.slider.isEnabled() and not self.live)
        self.branchButton.setEnabled(self.slider.isEnabled() and not self.live)
        self.rowChosen.emit(-1 if self.live else int(value))
