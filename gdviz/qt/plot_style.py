"""Cheap-to-repaint pyqtgraph plots.

Redrawing while a training loop shares the GIL must be lean (DESIGN.md). Two things
dominate a pyqtgraph frame: repainting axes (text) and autoranging, which regenerates the
axes on every frame while a loss falls. So axes are cached as pixmaps, and ranges are
managed with hysteresis: they change only when the data leaves them or shrinks well inside.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem


AXIS_TEXT = "#222222"  # dark enough for a projector and a printed page
AXIS_LINE = "#555555"


def cache_axes(plot_item: pg.PlotItem) -> None:
    """Dark axes, each painted into a pixmap once and blitted until its range changes."""
    for name in ("left", "bottom", "right", "top"):
        axis = plot_item.getAxis(name)
        axis.setTextPen(AXIS_TEXT)
        axis.setPen(AXIS_LINE)
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def new_plot(grid_alpha: float = 0.25) -> tuple["TimedPlotWidget", pg.PlotItem]:
    """A white plot as every view has it: a faint grid, cached dark axes that write plain
    numbers (pyqtgraph would add an "x1e+27" to the label besides the ticks), and no
    auto-range button (each view manages its ranges)."""
    widget = TimedPlotWidget(background="w")
    item = widget.getPlotItem()
    item.showGrid(x=True, y=True, alpha=grid_alpha)
    for name in ("left", "bottom"):
        item.getAxis(name).enableAutoSIPrefix(False)
    cache_axes(item)
    item.hideButtons()
    return widget, item


def legend_style(alpha: int = 210) -> dict:
    """The keyword arguments of every legend: small dark text on a light, see-through box."""
    return {"labelTextSize": "9pt", "labelTextColor": "#222",
            "brush": pg.mkBrush(255, 255, 255, alpha), "pen": pg.mkPen("#bbb")}


def sticky_range(current: tuple[float, float], lo: float, hi: float, log: bool = False,
                 grow: float = 0.15) -> tuple[float, float] | None:
    """A new (lo, hi) view range when [lo, hi] escapes ``current`` or fills less than a third
    of it; None when the current range is still good."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    if log:
        if hi <= 0:
            return None
        lo = math.log10(max(lo, hi * 1e-300)) if lo > 0 else math.log10(hi) - 1
        hi = math.log10(hi)
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.1 or 1.0
    c0, c1 = current
    inside = c0 <= lo and hi <= c1
    roomy = (c1 - c0) < 3 * span
    if inside and roomy:
        return None
    return (lo - grow * span, hi + grow * span)


def finite_bounds(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return (math.nan, math.nan)
    return float(finite.min()), float(finite.max())


MAX_LEGEND = 10


def _bin_peaks(y: np.ndarray, start: int, size: int) -> np.ndarray:
    """Indices (from ``start``) of the lowest and highest finite value of each full bin of
    ``size`` points of ``y``, increasing and each once (a bin with none keeps its first
    point: a gap)."""
    block = y.reshape(-1, size)
    finite = np.isfinite(block)
    lo = np.where(finite, block, np.inf).argmin(axis=1)
    hi = np.where(finite, block, -np.inf).argmax(axis=1)
    base = start + size * np.arange(len(block))
    keep = np.stack([base + np.minimum(lo, hi), base + np.maximum(lo, hi)], axis=1).reshape(-1)
    return keep[np.concatenate([[True], keep[1:] != keep[:-1]])]


class PeakDecimator:
    """Peak decimation of a series that grows at its end (a run's loss), incrementally.

    The points are cut into bins of ``size`` (a power of two, doubled when the series
    outgrows ``limit``), and each bin keeps its lowest and highest value, in order, so the
    curve draws like all its points; the first and the last point are always kept.
    Full bins are reduced once and remembered: a frame costs what the new points cost,
    not what the whole history costs. A series that changed before its end is reduced
    anew: its ``key`` changed (a history's revision), or a point kept from it did (a
    caller without a key). ``finite`` says whether every value was finite.
    """

    def __init__(self, limit: int):
        self.limit = max(4, int(limit))
        self.finite = True
        self._key: object = None
        self._restart(1)

    def _restart(self, size: int) -> None:
        self._size = size
        self._done = 0                        # points covered by the remembered bins
        self._keep = np.zeros(1, np.int64)    # their kept indices, from the first point
        self._kept_values = np.zeros(1)       # y at _keep, to see a series that changed
        self._bad = 0                         # non-finite values in the remembered bins

    def indices(self, y: np.ndarray, key: object = None) -> np.ndarray:
        """The indices of ``y`` to draw, increasing. A new ``key`` (e.g. a history's
        revision) says the series changed before its end: it is reduced anew."""
        n = len(y)
        if key != self._key:
            self._key = key
            self._restart(1)
        size = 1
        if n > self.limit:  # bins of two points or more, at most limit / 2 of them
            size = 2
            while n > size * (self.limit // 2):
                size *= 2
        if size != self._size or not self._same_past(y):
            self._restart(size)
        full = (n // size) * size
        if full > self._done:
            chunk = y[self._done:full]
            self._bad += len(chunk) - int(np.count_nonzero(np.isfinite(chunk)))
            new = _bin_peaks(chunk, self._done, size) if size > 1 else \
                np.arange(self._done, full)
            self._keep = np.concatenate([self._keep, new[new > self._keep[-1]]])
            self._done = full
            self._kept_values = np.asarray(y[self._keep], dtype=np.float64)
        part = y[full:]
        finite = np.isfinite(part)
        self.finite = self._bad == 0 and bool(finite.all())
        if not n:
            return np.zeros(0, np.int64)
        if len(part) > 2:  # the last bin, not full yet, keeps its peaks too
            if finite.any():
                lo = int(np.where(finite, part, np.inf).argmin())
                hi = int(np.where(finite, part, -np.inf).argmax())
                tail = [full + min(lo, hi), full + max(lo, hi)]
            else:
                tail = [full]
        else:
            tail = list(range(full, n))
        tail = [i for i in dict.fromkeys(tail + [n - 1]) if i > self._keep[-1]]
        return np.concatenate([self._keep, np.array(tail, np.int64)]) if tail else self._keep

    def _same_past(self, y: np.ndarray) -> bool:
        """Whether every point kept from the series reduced so far is still the same."""
        if not self._done:
            return True
        if len(y) < self._done:
            return False
        return np.array_equal(np.asarray(y[self._keep], dtype=np.float64), self._kept_values,
                              equal_nan=True)


def legend_label(label: str, limit: int = 44) -> str:
    """A run's label as a legend shows it: cut short (a schedule and a clip make labels
    long), so the legend never grows past the plot. The Runs list shows it whole."""
    return label if len(label) <= limit else label[:limit - 1].rstrip(" ,") + "…"


def legend_entries(items: list, limit: int = MAX_LEGEND) -> list:
    """At most ``limit`` of ``items``, evenly spread and always with the first and last:
    a sweep of 64 runs keeps a legend that names its range without covering the plot."""
    if len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks)]


class Marker(QGraphicsPathItem):
    """A dot (or a star) of fixed pixel size at a data point.

    A plain C++ item that ignores the view's scaling: it paints without calling into
    Python (so without the GIL), and moving it is a cheap setPos, unlike a scatter plot.
    """

    def __init__(self, color: str, size: float = 11.0, outline: str = "white",
                 shape: str = "dot"):
        super().__init__()
        path = QPainterPath()
        if shape == "star":
            points = [QPointF(math.cos(a) * r, math.sin(a) * r) for k in range(10)
                      for a, r in [(math.pi / 5 * k - math.pi / 2, size / 2 if k % 2 == 0 else size / 4.5)]]
            path.addPolygon(QPolygonF(points + points[:1]))
        else:
            path.addEllipse(-size / 2, -size / 2, size, size)
        self.setPath(path)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setBrush(QBrush(QColor(color)))
        self.setPen(QPen(QColor(outline), 1.5))
        self.setZValue(20)
        self.hide()
        self.point: tuple[float, float] | None = None

    def move_to(self, x: float, y: float) -> None:
        """Show the marker at (x, y), or hide it when either is not finite."""
        point = (float(x), float(y)) if math.isfinite(x) and math.isfinite(y) else None
        if point == self.point:
            return
        self.point = point
        if point is None:
            self.hide()
        else:
            self.setPos(*point)
            self.show()


def cosmetic_pen(pen) -> QPen:
    """``pen`` (anything pyqtgraph's mkPen takes) as wide in pixels whatever the zoom."""
    pen = QPen(pg.mkPen(pen))
    pen.setCosmetic(True)
    return pen


class _LegendSample(pg.PlotDataItem):
    """A curve's stand-in in a legend: a click on the legend's entry shows or hides the
    curve itself, as it does pyqtgraph's own curves."""

    def __init__(self, curve: "FastCurve"):
        super().__init__()
        self._curve = curve

    def isVisible(self) -> bool:  # noqa: N802 (Qt's name)
        return self._curve.isVisible()

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        self._curve.setVisible(visible)


class FastCurve(QGraphicsPathItem):
    """A line through (x, y), painted by Qt in C++.

    pyqtgraph's curve items paint in Python, so every frame of a race (a curve per run in
    three plots) held the GIL that the training thread needs. This item only builds its
    path in Python (``setData``, a few tens of microseconds) and paints without it. Its pen
    is cosmetic (pixels, whatever the zoom). ``sample`` stands for it in a legend;
    ``dataBounds`` is what a view's "View All" fits (Qt's own bounds add the pen's width in
    data units).
    """

    def __init__(self, pen=None):
        super().__init__()
        self.xData: np.ndarray | None = None
        self.yData: np.ndarray | None = None
        self.sample = _LegendSample(self)
        self._shadow: QGraphicsPathItem | None = None
        self.setPen(pen if pen is not None else "#1f77b4")

    def setPen(self, pen) -> None:  # noqa: N802 (Qt's name)
        pen = cosmetic_pen(pen)
        super().setPen(pen)
        self.sample.setPen(pen)

    def setShadowPen(self, pen) -> None:  # noqa: N802
        """A wider line under this one (an outline), or none for ``None``."""
        if pen is None:
            if self._shadow is not None:
                self._shadow.hide()
            return
        if self._shadow is None:
            self._shadow = QGraphicsPathItem(self)
            self._shadow.setFlag(QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent)
            self._shadow.setPath(self.path())
        self._shadow.setPen(cosmetic_pen(pen))
        self._shadow.show()

    def setData(self, x, y, connect: str = "finite") -> None:  # noqa: N802
        """Draw the points (x[i], y[i]) joined in order; a non-finite point breaks the line."""
        self.xData = np.asarray(x, dtype=np.float64)
        self.yData = np.asarray(y, dtype=np.float64)
        path = pg.arrayToQPath(self.xData, self.yData, connect=connect) if len(self.xData) \
            else QPainterPath()
        self.setPath(path)
        if self._shadow is not None:
            self._shadow.setPath(path)

    def getData(self) -> tuple[np.ndarray | None, np.ndarray | None]:  # noqa: N802
        return self.xData, self.yData

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802
        """The finite (min, max) of x (``ax`` 0) or y (1), or (None, None) (pyqtgraph's
        protocol for fitting a view to its items)."""
        values = self.xData if ax == 0 else self.yData
        lo, hi = finite_bounds(values) if values is not None and len(values) else (math.nan,) * 2
        return (lo, hi) if math.isfinite(lo) else (None, None)

    def pixelPadding(self) -> float:  # noqa: N802
        return self.pen().widthF() / 2


class GuiClock:
    """Seconds the GUI thread spent painting plots and capturing the graph since the last
    :meth:`take`. The main window reads it after each frame to pace its redraws.

    Wall time, on purpose: it includes waiting for the GIL, and the waits grow with what
    the frame costs the training thread (hand-offs, context switches on two cores). Pacing
    by the GUI's CPU time alone was measured to give more frames but a slower run (window
    time 1.55x headless against 1.26x)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def add(self, seconds: float) -> None:
        self.seconds += seconds

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


GUI_CLOCK = GuiClock()


class TimedPlotWidget(pg.PlotWidget):
    """A PlotWidget that adds the time its painting takes to :data:`GUI_CLOCK`."""

    def paintEvent(self, event) -> None:  # noqa: N802
        start = time.perf_counter()
        super().paintEvent(event)
        GUI_CLOCK.add(time.perf_counter() - start)
