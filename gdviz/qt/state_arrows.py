"""The optimizer's vectors at one step, drawn over the landscape (or the 1-D curve).

From the step's point: the negative gradient, the update actually applied (θ_{k+1} − θ_k),
and the optimizer's state as a direction (SGD's momentum buffer, Adam's exp_avg, RMSprop's
momentum buffer), each as an arrow; the adaptive methods' per-element rate
(lr/(√v̂+ε) from exp_avg_sq, square_avg or sum) as an ellipse whose axes are proportional
to the rate along each parameter.

The vectors differ in units and by orders of magnitude (a gradient of 1000 next to a step of
0.01), so arrows show directions: each is drawn at a fixed length in pixels whatever the
zoom, and the legend gives its actual components. The ellipse's larger semi-axis is a fixed
length too; the ratio of its axes is the ratio of the rates.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem

from .plot_style import legend_style

#: (name prefix, colour, length in pixels, shaft width)
STYLES = {"−∇L": ("#d81b60", 95, 2), "Δθ": ("#000000", 60, 4),
          "exp_avg": ("#ff8f00", 78, 3), "momentum": ("#ff8f00", 78, 3)}
ELLIPSE_PX = 42
ELLIPSE_COLOR = "#8e24aa"


def _style(name: str) -> tuple[str, int, int]:
    return next((v for k, v in STYLES.items() if name.startswith(k)), ("#6a1b9a", 70, 2))


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


class StateArrows:
    """Arrows, an ellipse and their legend on a PlotItem (see the module docstring)."""

    def __init__(self, plot: pg.PlotItem):
        self.plot = plot
        self.arrows: dict[str, pg.ArrowItem] = {}
        self.ellipse = QGraphicsEllipseItem()
        self.ellipse.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        pen = QPen(QColor(ELLIPSE_COLOR), 2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self.ellipse.setPen(pen)
        self.ellipse.setBrush(QBrush(QColor(142, 36, 170, 45)))
        self.ellipse.setZValue(14)
        self.ellipse.hide()
        self.legend = pg.LegendItem(offset=(10, -10), **legend_style(225))
        self.legend.setParentItem(plot.getViewBox())
        self.legend.setZValue(30)
        self.legend.hide()
        self.legend.setToolTip("Arrows show directions, each at a fixed length in pixels (the "
                               "vectors differ by orders of magnitude); the numbers are their "
                               "components. The ellipse's axes are proportional to the "
                               "optimizer's per-element rate.")
        self._legend_names: list[str] = []
        self.drawn: dict[str, tuple[float, float]] = {}   # name -> the drawn direction (x, y)
        self.ellipse_axes: tuple[float, float] | None = None

    def attach(self) -> None:
        """Put the items on the plot (after the plot was cleared)."""
        self.plot.addItem(self.ellipse, ignoreBounds=True)
        for arrow in self.arrows.values():
            self.plot.addItem(arrow, ignoreBounds=True)

    def _arrow(self, name: str) -> pg.ArrowItem:
        arrow = self.arrows.get(name)
        if arrow is None:
            color, length, width = _style(name)
            arrow = pg.ArrowItem(pxMode=True, headLen=12, tipAngle=34, tailLen=length - 12,
                                 tailWidth=width, brush=color, pen=pg.mkPen("w", width=1))
            arrow.setZValue(16)
            self.arrows[name] = arrow
            self.plot.addItem(arrow, ignoreBounds=True)
        return arrow

    def hide(self) -> None:
        for arrow in self.arrows.values():
            arrow.hide()
        self.ellipse.hide()
        self.legend.hide()
        self.drawn, self.ellipse_axes = {}, None

    def draw(self, point: tuple[float, float], vectors: dict[str, np.ndarray],
             rates: np.ndarray | None, rates_name: str, pixel: tuple[float, float]) -> None:
        """``vectors`` and ``rates`` hold the two drawn components (y 0 on a 1-D curve);
        ``pixel`` is the data size of a pixel along x and y."""
        pw, ph = pixel
        if not (pw > 0 and ph > 0) or not all(map(math.isfinite, point)):
            self.hide()
            return
        self.drawn = {}
        entries: list[tuple[str, str]] = []  # (name, text) of the legend, in order
        for name, arrow in self.arrows.items():
            if name not in vectors:
                arrow.hide()
        for name, vec in vectors.items():
            arrow = self._arrow(name)
            vx, vy = float(vec[0]), float(vec[1])
            sx, sy = vx / pw, vy / ph
            norm = math.hypot(sx, sy)
            if not (math.isfinite(norm) and norm > 0):
                arrow.hide()
                continue
            _color, length, _w = _style(name)
            scale = length / norm
            arrow.setStyle(angle=math.degrees(math.atan2(-sy, sx)) - 180)
            arrow.setPos(point[0] + scale * vx, point[1] + scale * vy)
            arrow.show()
            self.drawn[name] = (vx, vy)
            entries.append((name, f"{name} {_fmt(vec)}"))
        if self._draw_ellipse(point, rates):
            entries.append(("ellipse", f"{rates_name} {_fmt(rates)} (ellipse)"))
        self._fill_legend(entries)
        self.legend.setVisible(bool(entries))

    def _fill_legend(self, entries: list[tuple[str, str]]) -> None:
        """The legend's rows, made anew only when the names change (a running run changes
        the numbers every frame: then only the texts are set)."""
        names = [name for name, _ in entries]
        if names != self._legend_names:
            self.legend.clear()
            for name, text in entries:
                if name == "ellipse":
                    pen = pg.mkPen(ELLIPSE_COLOR, width=2, style=Qt.PenStyle.DashLine)
                else:
                    color, _length, width = _style(name)
                    pen = pg.mkPen(color, width=width + 1)
                self.legend.addItem(pg.PlotDataItem(pen=pen), text)
            self._legend_names = names
            return
        for (_sample, label), (_name, text) in zip(self.legend.items, entries):
            if label.text != text:
                label.setText(text)

    def _draw_ellipse(self, point: tuple[float, float], rates: np.ndarray | None) -> bool:
        if rates is None or not np.isfinite(rates).all() or not rates.max() > 0:
            self.ellipse.hide()
            self.ellipse_axes = None
            return False
        big = float(rates.max())
        ax, ay = (max(2.0, ELLIPSE_PX * float(r) / big) if r > 0 else 0.0 for r in rates)
        self.ellipse.setRect(QRectF(-ax, -ay, 2 * ax, 2 * ay))
        self.ellipse.setPos(*point)
        self.ellipse.show()
        self.ellipse_axes = (ax, ay)
        return True
