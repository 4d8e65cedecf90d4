"""The live loss curves: one per visible run, a log-scale toggle, the selected run's step marked."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..core.model import Run
from .plot_style import (FastCurve, Marker, PeakDecimator, finite_bounds, legend_entries,
                         legend_label, legend_style, new_plot, sticky_range)


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

        self.plot, item = new_plot()
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss")
        item.disableAutoRange()  # ranges move with hysteresis instead (see plot_style)
        self.legend = item.addLegend(offset=(-10, 10), **legend_style())
        self.legend.hide()
        # Curves painted in C++ (FastCurve), decimated here as they grow (PeakDecimator):
        # with a curve per run, pyqtgraph's own curve items cost more in Python than the
        # drawing itself.
        self.curves: dict[int, FastCurve] = {}
        self._decimators: dict[int, PeakDecimator] = {}
        self._revisions: dict[int, tuple] = {}  # run id -> its history's (identity, revision)
        # with mini-batches: the full data's loss at each epoch's start, dots on a dashed line
        self.epochs: dict[int, pg.PlotDataItem] = {}
        self.marker = Marker("#d62728", 9)
        item.addItem(self.marker, ignoreBounds=True)
        # the timeline's step, when it is scrubbed back (hidden at the live end)
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#333", width=1, style=Qt.PenStyle.DashLine),
                                      label="step {value:,.0f}", labelOpts={
                                          "position": 0.95, "color": "#333", "anchors": [(0, 0), (0, 0)],
                                          "fill": pg.mkBrush(255, 255, 255, 200)})
        self.cursor.hide()
        item.addItem(self.cursor, ignoreBounds=True)
        layout.addWidget(self.plot, 1)
        self._data: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._drawn: dict[int, tuple] = {}  # run id -> what its curve shows (see refresh_arrays)
        self._selected: int | None = None
        self.step_limit: int | None = None
        self.auto_range = True  # off while an animation replays the runs on fixed axes

    @property
    def curve(self) -> FastCurve | None:
        """The selected run's curve."""
        return self.curves.get(self._selected) if self._selected is not None else None

    def set_runs(self, runs: list[Run], selected: int | None) -> None:
        """One curve per run, in its colour, named in the legend (shown for two or more)."""
        item = self.plot.getPlotItem()
        wanted = {r.id for r in runs}
        for run_id in list(self.curves):
            if run_id not in wanted:
                item.removeItem(self.curves.pop(run_id))
                self._decimators.pop(run_id, None)
        self.legend.clear()
        for run in runs:
            # One pixel: Qt paints a 2 px curve at about half the speed, and painting takes
            # time from the training thread (they share the GIL).
            pen = pg.mkPen(run.settings.color or "#1f77b4", width=1)
            curve = self.curves.get(run.id)
            if curve is None:
                curve = FastCurve(pen)
                item.addItem(curve)
                self.curves[run.id] = curve
            curve.setPen(pen)
            curve.setVisible(run.settings.visible)
        shown = [r for r in runs if r.settings.visible]
        for run in legend_entries(shown):
            self.legend.addItem(self.curves[run.id].sample, legend_label(run.label))
        if len(shown) > len(legend_entries(shown)):
            self.legend.addItem(pg.PlotDataItem(pen=None), f"… {len(shown)} runs")
        if self.epochs:
            self.legend.addItem(next(iter(self.epochs.values())), "full data, each epoch")
        self.legend.setVisible(len(shown) > 1 or bool(self.epochs))
        if selected != self._selected:
            self._drawn.pop(selected, None)  # its marker moves to it
        self._selected = selected

    def set_cursor(self, step: int | None) -> None:
        """A vertical line at ``step`` (None: hidden, the live end)."""
        if step is None:
            self.cursor.hide()
            return
        self.cursor.show()  # first: a hidden line's label does not follow its value
        if self.cursor.value() != step:
            self.cursor.setValue(step)

    def clear(self) -> None:
        self.plot.getPlotItem().getViewBox().setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
        for curve in self.curves.values():
            curve.setData([], [])
        for item in self.epochs.values():
            self.plot.getPlotItem().removeItem(item)
        self.epochs = {}
        self.marker.move_to(math.nan, math.nan)
        self._data = []
        self._drawn = {}
        self._decimators = {}

    def refresh(self, runs: list[Run], selected: int | None, step_limit: int | None = None) -> None:
        self.step_limit = step_limit
        self._selected = selected
        arrays = [(r.id, r.history.steps, r.history.loss) for r in runs if r.settings.visible]
        # (an animation's frames pass histories cut short, without revisions)
        self._revisions = {r.id: (id(r.history), getattr(r.history, "revision", None))
                           for r in runs}
        self.refresh_arrays(arrays)
        self.show_epochs(runs)

    def show_epochs(self, runs: list[Run]) -> None:
        """Each visible run's full-data loss per epoch (runs on mini-batches only): the
        curve above is the loss of each step's batch, noisy; these dots are the data's."""
        item = self.plot.getPlotItem()
        for run in runs:
            # (an animation's frames pass runs cut short, without epochs)
            marks = getattr(run, "epoch_losses", []) if run.settings.visible else []
            line = self.epochs.get(run.id)
            if not marks:
                if line is not None:
                    item.removeItem(self.epochs.pop(run.id))
                continue
            if line is None:
                color = run.settings.color or "#1f77b4"
                # dark and thick over the batch curve of the same colour
                line = self.epochs[run.id] = pg.PlotDataItem(
                    pen=pg.mkPen(pg.mkColor(color).darker(170), width=2.5,
                                 style=Qt.PenStyle.DashLine), symbol="o", symbolSize=7,
                    symbolBrush=pg.mkColor(color).darker(170), symbolPen="w")
                line.setZValue(5)
                item.addItem(line)
                if len(self.epochs) == 1:
                    self.legend.addItem(line, "full data, each epoch")
                    self.legend.setVisible(True)
            if line.xData is None or len(line.xData) != len(marks):
                if len(marks) > 60:  # dots that would hide the batch curve: the line alone
                    line.setSymbol(None)
                steps, losses = zip(*marks)
                line.setData(np.asarray(steps, float), np.asarray(losses, float))

    def refresh_arrays(self, arrays: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """Draw (run id, steps, loss) for each run."""
        log = self.logCheck.isChecked()
        notes = set()
        last_step, lows, highs = -math.inf, [], []
        for run_id, steps, loss in arrays:
            key = (len(steps), float(steps[-1]) if len(steps) else None,
                   float(loss[-1]) if len(loss) else None, log)
            drawn = self._drawn.get(run_id)
            if drawn is None or drawn[0] != key:
                # Only what changed is handed to pyqtgraph: a run that has ended (or a race
                # whose curves did not move) costs nothing per frame. And only the points
                # drawn are looked at: the decimation keeps every bin's lowest and highest
                # loss, so the bounds of the kept points are the bounds of all of them (on
                # a log axis, a bin's lowest positive loss is missed when it also holds a
                # loss <= 0, which the axis cannot show anyway).
                decimator = self._decimator(run_id)
                keep = decimator.indices(loss, self._revisions.get(run_id))
                x, y = np.asarray(steps, dtype=np.float64)[keep], np.asarray(loss)[keep]
                note = "" if decimator.finite else "some losses are not finite"
                if log and len(y):
                    positive = y > 0
                    if not positive.all() and not note:
                        note = "log scale hides losses <= 0"
                    # the view is in log10 units in log mode (the axis writes the powers)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        y = np.where(positive, np.log10(np.where(positive, y, 1.0)), np.nan)
                curve = self.curves.get(run_id)
                if curve is not None:
                    curve.setData(x, y)
                drawn = (key, finite_bounds(y), note, float(steps[-1]) if len(steps) else -math.inf)
                self._drawn[run_id] = drawn
                if run_id == self._selected:
                    self._mark(x, y)
            _key, (lo, hi), note, last = drawn
            if note:
                notes.add(note)
            lows.append(lo)
            highs.append(hi)
            last_step = max(last_step, last)
        if self._selected not in {a[0] for a in arrays}:
            self.marker.move_to(math.nan, math.nan)
        text = "; ".join(sorted(notes))
        if self.note.text() != text:
            self.note.setText(text)
        self._data = arrays
        finite = [(lo, hi) for lo, hi in zip(lows, highs) if math.isfinite(lo)]
        bounds = (min(b[0] for b in finite), max(b[1] for b in finite)) if finite else (math.nan, math.nan)
        self._fit_ranges(last_step, bounds, bool(arrays) and math.isfinite(last_step))

    def _decimator(self, run_id: int) -> PeakDecimator:
        limit = max(400, 2 * self.plot.width())
        decimator = self._decimators.get(run_id)
        if decimator is None or decimator.limit != limit:
            decimator = self._decimators[run_id] = PeakDecimator(limit)
        return decimator

    def _mark(self, steps: np.ndarray, y: np.ndarray) -> None:
        """The current step of the selected run (``y`` in view units: log10 in log mode)."""
        if not len(steps):
            self.marker.move_to(math.nan, math.nan)
            return
        self.marker.move_to(float(steps[-1]), float(y[-1]))

    def _fit_ranges(self, last: float, bounds: tuple[float, float], any_data: bool) -> None:
        if not self.auto_range:
            return
        vb = self.plot.getPlotItem().getViewBox()
        (x0, x1), (y0, y1) = vb.viewRange()
        if any_data:
            # x grows in doublings, so the axis (and its cached picture) rarely changes.
            right = max(10.0, 2 ** math.ceil(math.log2(max(last, 1.0) * 1.05)))
            if self.step_limit and last < self.step_limit < right:
                right = float(self.step_limit)  # the run ends there: no need to show more
            if right != x1 or x0 != 0:
                vb.setXRange(0, right, padding=0)
        else:
            vb.setRange(xRange=(0, 10), yRange=(0, 1), padding=0)
            return
        lo, hi = bounds  # in view units already (log10 in log mode)
        new = sticky_range((y0, y1), lo, hi)
        if new is not None:
            if lo >= 0 and not self.logCheck.isChecked():
                # losses of 0 and up: a sliver below 0, not a band of losses no run can have
                new = (max(new[0], -0.02 * (new[1] - new[0])), new[1])
            vb.setYRange(*new, padding=0)

    def _on_log_check_toggled(self, on: bool) -> None:
        self._drawn, self._decimators = {}, {}
        self.plot.getPlotItem().setLogMode(y=on)
        self.refresh_arrays(self._data)
        self.logToggled.emit(on)
