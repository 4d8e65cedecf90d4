"""The live loss curve, with a log-scale toggle and the current step marked."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..core.history import History
from .plot_style import Marker, TimedPlotWidget, cache_axes, finite_bounds, sticky_range

# One pixel: Qt's raster engine paints a 2 px curve at about half the speed, and every
# millisecond of painting is taken from the training thread (they share the GIL).
CURVE_PEN = pg.mkPen("#1f77b4", width=1)


class LossPlotView(QWidget):
    """Loss against step. ``curve`` holds the data; ``marker`` the current step."""

    logToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lossPlot")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        title = QLabel("<b>Loss</b>")
        self.logCheck = QCheckBox("log scale", objectName="lossLogCheck")
        self.logCheck.setToolTip("Show the loss on a logarithmic axis (needs a positive loss)")
        self.logCheck.toggled.connect(self._on_log_check_toggled)
        self.note = QLabel()
        self.note.setStyleSheet("color: #777;")
        header.addWidget(title)
        header.addWidget(self.logCheck)
        header.addWidget(self.note, 1)
        layout.addLayout(header)

        self.plot = TimedPlotWidget(background="w")
        item = self.plot.getPlotItem()
        # On the plot, not the curve: addItem() overwrites a curve's own settings (DESIGN.md).
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss")
        cache_axes(item)
        item.hideButtons()
        item.disableAutoRange()  # ranges move with hysteresis instead (see plot_style)
        self.curve = item.plot([], [], pen=CURVE_PEN, name="loss")
        self.marker = Marker("#d62728", 9)
        item.addItem(self.marker, ignoreBounds=True)
        layout.addWidget(self.plot, 1)
        self._steps = np.zeros(0)
        self._loss = np.zeros(0)
        self.step_limit: int | None = None
        self.auto_range = True  # off while an animation replays the run on fixed axes

    def clear(self) -> None:
        self.plot.getPlotItem().getViewBox().setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        self.refresh_arrays(np.zeros(0), np.zeros(0))

    def refresh(self, history: History, step_limit: int | None = None) -> None:
        self.step_limit = step_limit
        self.refresh_arrays(history.steps, history.loss)

    def refresh_arrays(self, steps: np.ndarray, loss: np.ndarray) -> None:
        self._steps, self._loss = steps, loss
        y = loss
        note = ""
        if self.logCheck.isChecked() and len(loss):
            positive = loss > 0
            if not positive.all():
                note = "log scale hides losses <= 0"
                y = np.where(positive, loss, np.nan)
        if len(steps) and not np.isfinite(loss).all():
            note = "some losses are not finite"
        self.note.setText(note)
        self.curve.setData(steps, y, connect="finite")
        if len(steps):
            # The marker lives in view coordinates, which are log10 in log mode.
            shown = y[-1] if not self.logCheck.isChecked() else (
                math.log10(y[-1]) if y[-1] > 0 else math.nan)
            self.marker.move_to(float(steps[-1]), float(shown))
        else:
            self.marker.move_to(math.nan, math.nan)
        self._fit_ranges(steps, y)

    def _fit_ranges(self, steps: np.ndarray, y: np.ndarray) -> None:
        if not self.auto_range:
            return
        vb = self.plot.getPlotItem().getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        log = self.logCheck.isChecked()
        if len(steps):
            # x grows in doublings, so the axis (and its cached picture) rarely changes.
            right = max(10.0, 2 ** math.ceil(math.log2(max(float(steps[-1]), 1.0) * 1.05)))
            if self.step_limit and steps[-1] < self.step_limit < right:
                right = float(self.step_limit)  # the run ends there: no need to show more
            if right != x1 or x0 != 0:
                vb.setXRange(0, right, padding=0)
        lo, hi = finite_bounds(y)
        new = sticky_range((y0, y1), lo, hi, log=log)
        if new is not None:
            vb.setYRange(*new, padding=0)

    def _on_log_check_toggled(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=on)
        self.refresh_arrays(self._steps, self._loss)
        self.logToggled.emit(on)
