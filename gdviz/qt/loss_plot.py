"""The live loss curves: one per visible run, a log-scale toggle, the selected run's step marked."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..core.model import Run
from .plot_style import (Marker, TimedPlotWidget, cache_axes, finite_bounds, legend_entries,
                         sticky_range)


class LossPlotView(QWidget):
    """Loss against step. ``curves`` maps run id to its curve; ``marker`` is the selected
    run's current step."""

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
        self.note.setStyleSheet("color: #666;")
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
        # One scale only: pyqtgraph would add an "x1e+27" to the label besides the ticks.
        item.getAxis("left").enableAutoSIPrefix(False)
        item.getAxis("bottom").enableAutoSIPrefix(False)
        cache_axes(item)
        item.hideButtons()
        item.disableAutoRange()  # ranges move with hysteresis instead (see plot_style)
        self.legend = item.addLegend(offset=(-10, 10), labelTextSize="9pt", labelTextColor="#222",
                                     brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#bbb"))
        self.legend.hide()
        self.curves: dict[int, pg.PlotDataItem] = {}
        self.marker = Marker("#d62728", 9)
        item.addItem(self.marker, ignoreBounds=True)
        layout.addWidget(self.plot, 1)
        self._data: list[tuple[np.ndarray, np.ndarray]] = []
        self._selected: int | None = None
        self.step_limit: int | None = None
        self.auto_range = True  # off while an animation replays the runs on fixed axes

    @property
    def curve(self) -> pg.PlotDataItem | None:
        """The selected run's curve."""
        return self.curves.get(self._selected) if self._selected is not None else None

    def set_runs(self, runs: list[Run], selected: int | None) -> None:
        """One curve per run, in its colour, named in the legend (shown for two or more)."""
        item = self.plot.getPlotItem()
        wanted = {r.id for r in runs}
        for run_id in list(self.curves):
            if run_id not in wanted:
                item.removeItem(self.curves.pop(run_id))
        self.legend.clear()
        for run in runs:
            # One pixel: Qt paints a 2 px curve at about half the speed, and painting takes
            # time from the training thread (they share the GIL).
            pen = pg.mkPen(run.settings.color or "#1f77b4", width=1)
            curve = self.curves.get(run.id)
            if curve is None:
                curve = item.plot([], [], pen=pen)
                self.curves[run.id] = curve
            curve.setPen(pen)
            curve.setVisible(run.settings.visible)
        shown = [r for r in runs if r.settings.visible]
        for run in legend_entries(shown):
            self.legend.addItem(self.curves[run.id], run.label)
        if len(shown) > len(legend_entries(shown)):
            self.legend.addItem(pg.PlotDataItem(pen=None), f"… {len(shown)} runs")
        self.legend.setVisible(len(shown) > 1)
        self._selected = selected

    def clear(self) -> None:
        self.plot.getPlotItem().getViewBox().setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        for curve in self.curves.values():
            curve.setData([], [])
        self.marker.move_to(math.nan, math.nan)
        self._data = []

    def refresh(self, runs: list[Run], selected: int | None, step_limit: int | None = None) -> None:
        self.step_limit = step_limit
        self._selected = selected
        arrays = [(r.id, r.history.steps, r.history.loss) for r in runs if r.settings.visible]
        self.refresh_arrays(arrays)

    def refresh_arrays(self, arrays: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """Draw (run id, steps, loss) for each run."""
        log = self.logCheck.isChecked()
        notes = set()
        shown_x, shown_y = [], []
        for run_id, steps, loss in arrays:
            y = loss
            if log and len(loss):
                positive = loss > 0
                if not positive.all():
                    notes.add("log scale hides losses <= 0")
                    y = np.where(positive, loss, np.nan)
            if len(steps) and not np.isfinite(loss).all():
                notes.add("some losses are not finite")
            curve = self.curves.get(run_id)
            if curve is not None:
                curve.setData(steps, y, connect="finite")
            shown_x.append(steps)
            shown_y.append(y)
            if run_id == self._selected:
                self._mark(steps, y)
        if self._selected not in {a[0] for a in arrays}:
            self.marker.move_to(math.nan, math.nan)
        self.note.setText("; ".join(sorted(notes)))
        self._data = arrays
        steps = np.concatenate(shown_x) if shown_x else np.zeros(0)
        ys = np.concatenate(shown_y) if shown_y else np.zeros(0)
        self._fit_ranges(steps, ys)

    def _mark(self, steps: np.ndarray, y: np.ndarray) -> None:
        if not len(steps):
            self.marker.move_to(math.nan, math.nan)
            return
        # The marker lives in view coordinates, which are log10 in log mode.
        last = y[-1]
        shown = last if not self.logCheck.isChecked() else (
            math.log10(last) if last > 0 else math.nan)
        self.marker.move_to(float(steps[-1]), float(shown))

    def _fit_ranges(self, steps: np.ndarray, y: np.ndarray) -> None:
        if not self.auto_range:
            return
        vb = self.plot.getPlotItem().getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        log = self.logCheck.isChecked()
        if len(steps):
            # x grows in doublings, so the axis (and its cached picture) rarely changes.
            last = float(steps.max())
            right = max(10.0, 2 ** math.ceil(math.log2(max(last, 1.0) * 1.05)))
            if self.step_limit and last < self.step_limit < right:
                right = float(self.step_limit)  # the run ends there: no need to show more
            if right != x1 or x0 != 0:
                vb.setXRange(0, right, padding=0)
        else:
            vb.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
            return
        lo, hi = finite_bounds(y)
        new = sticky_range((y0, y1), lo, hi, log=log)
        if new is not None:
            vb.setYRange(*new, padding=0)

    def _on_log_check_toggled(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=on)
        self.refresh_arrays(self._data)
        self.logToggled.emit(on)
