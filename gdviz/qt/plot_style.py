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


def decimate(x: np.ndarray, y: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``limit`` points that draw like all of them: the points are cut into
    bins and each bin keeps its lowest and highest y (peak decimation), in order, with the
    first and last points always kept. Non-finite values stay where they are (gaps)."""
    n = len(x)
    if n <= limit:
        return x, y
    bins = max(1, limit // 2)
    size = -(-n // bins)
    pad = bins * size - n
    idx = np.arange(n)
    if pad:  # repeat the last point so every bin is full
        idx = np.concatenate([idx, np.full(pad, n - 1)])
    idx = idx.reshape(bins, size)
    block = y[idx]
    finite = np.isfinite(block)
    lo = np.where(finite, block, np.inf).argmin(axis=1)
    hi = np.where(finite, block, -np.inf).argmax(axis=1)
    rows = np.arange(bins)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    keep = np.stack([idx[rows, first], idx[rows, second]], axis=1).reshape(-1)
    keep = np.unique(np.concatenate([[0], keep, [n - 1]]))
    return x[keep], y[keep]


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
