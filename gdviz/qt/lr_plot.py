"""The learning rate against the step, under the loss plot (its x axis follows the loss plot's).

One line per visible run in the run's colour: faint, the whole planned schedule up to the
step limit; solid, the part done. The rate of step k is core's closed form
(:func:`gdviz.core.schedules.rates`) at the run's current base rate.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..core.model import Run
from ..core.schedules import rates
from .plot_style import FastCurve, new_plot

PLAN_POINTS = 1200   # the planned curve is drawn from this many steps at most


def run_rates(run: Run, steps: np.ndarray, total: int) -> np.ndarray:
    """The learning rate at each of ``steps`` of ``run`` (a run of ``total`` steps)."""
    return rates(run.settings.schedule, float(run.settings.hypers["lr"]), steps, total)


def planned_steps(total: int) -> np.ndarray:
    """Steps 0 .. total - 1, thinned to about PLAN_POINTS."""
    total = max(int(total), 1)
    if total <= PLAN_POINTS:
        return np.arange(total, dtype=np.float64)
    return np.unique(np.linspace(0, total - 1, PLAN_POINTS).round())


def _needed_width(axis: pg.AxisItem) -> int:
    """The width a left axis would take by itself (pyqtgraph's own rule), so that a fixed
    width never cuts a label: from the widest tick text it drew, or will draw for its
    range now (an axis not drawn since its range changed has not measured its text)."""
    style = axis.style
    width = axis.textWidth if style["autoExpandTextSpace"] else style["tickTextWidth"]
    lo, hi = axis.range
    metrics = QFontMetrics(style["tickFont"] or axis.font())
    for spacing, values in axis.tickValues(lo, hi, max(axis.size().height(), 1.0)):
        for text in axis.tickStrings(values, axis.autoSIPrefixScale, spacing):
            width = max(width, metrics.horizontalAdvance(text))
    width += style["tickTextOffset"][0] + max(0, style["tickLength"])
    if axis.label.isVisible():
        width += axis.label.boundingRect().height() * 0.8
    return int(math.ceil(width))


class LrPlotView(QWidget):
    """Learning rate against step, one line per visible run (``done`` and ``plan`` map a
    run id to its solid and faint curves)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lrPlot")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot, item = new_plot()
        item.setLabel("left", "lr")
        item.setMouseEnabled(x=False, y=False)
        item.disableAutoRange()
        self.plot.setToolTip("The learning rate of each step: faint, the whole schedule up to "
                             "the step limit; solid, the steps taken")
        layout.addWidget(self.plot)
        self.setMinimumHeight(70)
        self.done: dict[int, FastCurve] = {}
        self.plan: dict[int, FastCurve] = {}
        self._keys: dict[int, tuple] = {}
        self._y_range: tuple[float, float] | None = None
        self._partner = None       # the loss plot's left axis, as wide as this one
        self._axis_width = 0
        self._log = False          # a log axis: the runs' rates differ by more than tenfold
        self._shown: dict[int, tuple[Run, int]] = {}  # run id -> (the run, its step total)
        self._plan_steps: tuple[int | None, np.ndarray] = (None, np.zeros(0))

    def link_x(self, plot: pg.PlotWidget) -> None:
        """Follow ``plot``'s step axis (the loss plot's); the left axes keep one width so a
        step sits at the same pixel column in both."""
        self.plot.getPlotItem().setXLink(plot.getPlotItem())
        self._partner = plot.getPlotItem().getAxis("left")

    def set_runs(self, runs: list[Run], selected: int | None, total: int) -> None:
        """One pair of curves per run, in its colour; the planned curves drawn now."""
        item = self.plot.getPlotItem()
        wanted = {r.id for r in runs}
        for run_id in [i for i in self.done if i not in wanted]:
            item.removeItem(self.done.pop(run_id))
            item.removeItem(self.plan.pop(run_id))
            self._keys.pop(run_id, None)
            self._shown.pop(run_id, None)
        for run in runs:
            color = QColor(run.settings.color or "#1f77b4")
            faint = QColor(color)
            faint.setAlpha(70)
            if run.id not in self.done:
                self.plan[run.id] = FastCurve()
                self.done[run.id] = FastCurve()
                item.addItem(self.plan[run.id])
                item.addItem(self.done[run.id])
            self.plan[run.id].setPen(pg.mkPen(faint, width=1))
            self.done[run.id].setPen(pg.mkPen(color, width=2 if run.id == selected else 1))
            for curve in (self.plan[run.id], self.done[run.id]):
                curve.setVisible(run.settings.visible)
        self._keys = {}  # settings may have changed: redraw at the next refresh
        self.refresh(runs, total)

    def refresh(self, runs: list[Run], total: int) -> None:
        """Bring the curves up to date (a run whose steps and settings did not change costs
        nothing). Runs whose peak rates differ more than tenfold share a log axis."""
        tops = []
        for run in runs:
            if run.id not in self.done or not run.settings.visible:
                continue
            st = run.settings
            plan_key = (total, st.schedule, float(st.hypers["lr"]), self._log)
            done_key = (len(run.history), run.step, plan_key)
            known = self._keys.get(run.id)
            if known is None or known[0] != plan_key:
                plan_x = self._planned_steps(total)
                plan_y = rates(st.schedule, float(st.hypers["lr"]), plan_x, total)
                self.plan[run.id].setData(plan_x, self._view(plan_y))
                top = float(np.nanmax(plan_y)) if len(plan_y) else 0.0
                known = self._keys[run.id] = (plan_key, None, top)
            if known[1] != done_key:
                done_x, done_y = self._done_points(run, total)
                self._shown[run.id] = (run, total)
                self.done[run.id].setData(done_x, self._view(done_y))
                top = max(known[2], float(np.nanmax(done_y)) if len(done_y) else 0.0)
                known = self._keys[run.id] = (plan_key, done_key, top)
            tops.append(self._keys[run.id][2])
        tops = [t for t in tops if math.isfinite(t) and t > 0] or [1.0]
        log = max(tops) > 10 * min(tops)
        if log != self._log:
            self._log = log
            self.plot.getPlotItem().setLogMode(y=log)
            self.refresh(runs, total)
            return
        y_range = ((math.log10(min(tops)) - 2.0, math.log10(max(tops)) + 0.15) if log
                   else (0.0, max(tops) * 1.15))
        self._align_axis()
        if y_range != self._y_range:
            self._y_range = y_range
            self.plot.getPlotItem().getViewBox().setYRange(*y_range, padding=0)

    def _done_points(self, run: Run, total: int) -> tuple[np.ndarray, np.ndarray]:
        """The steps drawn solid and their rates: the planned curve's steps up to the last
        step taken, and that step (a frame looks at no more points than it draws)."""
        history = run.history
        if not len(history):
            return np.zeros(0), np.zeros(0)
        last = float(history.steps[-1])
        plan_x = self._planned_steps(total)
        steps = np.append(plan_x[:np.searchsorted(plan_x, last)], last)
        return steps, run_rates(run, steps, total)

    def _planned_steps(self, total: int) -> np.ndarray:
        if self._plan_steps[0] != total:
            self._plan_steps = (total, planned_steps(total))
        return self._plan_steps[1]

    def _align_axis(self) -> None:
        """Both left axes as wide as the wider needs (recomputed as their ticks change)."""
        if self._partner is None:
            return
        mine = self.plot.getPlotItem().getAxis("left")
        try:
            width = max(_needed_width(self._partner), _needed_width(mine))
        except (AttributeError, KeyError, TypeError):  # another pyqtgraph: leave them be
            return
        if width != self._axis_width:
            self._axis_width = width
            for axis in (self._partner, mine):
                axis.setWidth(width)

    def _view(self, y: np.ndarray) -> np.ndarray:
        """Rates in view units: log10 on a log axis (the axis writes the powers)."""
        if not self._log:
            return y
        return np.log10(np.maximum(y, 1e-300))

    def points(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Every step a run has taken and its rate (the solid curve draws a few of them;
        for tests and exports)."""
        if run_id not in self._shown:
            return np.zeros(0), np.zeros(0)
        run, total = self._shown[run_id]
        steps = np.asarray(run.history.steps, dtype=np.float64)
        return steps, run_rates(run, steps, total) if len(steps) else np.zeros(0)
