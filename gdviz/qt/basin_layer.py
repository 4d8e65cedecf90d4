"""The basin map as a layer of the landscape view.

Every start of the grid is one pixel, coloured by the basin (the minimum) its run reached and
darker the more steps it needed; starts whose run diverged are dark and striped, starts still
moving at the step limit grey. A cross marks where each basin's runs end, and a legend in the
lower right corner names the basins and their shares of the map.

Colours are pale, so the runs' paths (strong colours) stay visible over the map, and a basin
keeps its colour while the map fills in and when it is recomputed (another lr, a pan): a
basin is matched to the one drawn before whose end point is nearest.

A view: it draws the plain arrays of a ``BasinMap`` (see :mod:`gdviz.core.analysis.basin`)
and never computes one.
"""

from __future__ import annotations

import colorsys
import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .plot_style import legend_style

#: outcome codes of gdviz.core.analysis.sweep.Outcome (a module that imports torch)
CONVERGED, SETTLED, UNFINISHED, DIVERGED = 0, 1, 2, 3

#: pale colours, so that the paths drawn over the map stay visible
PALETTE = ((166, 206, 227), (253, 191, 111), (178, 223, 138), (251, 154, 153),
           (202, 178, 214), (255, 255, 153), (141, 211, 199), (252, 205, 229),
           (188, 128, 189), (204, 235, 197), (255, 237, 111), (128, 177, 211))
DIVERGED_RGB = (40, 40, 40)
DIVERGED_STRIPE = (105, 105, 105)
UNFINISHED_RGB = (160, 160, 160)
#: the share by which the slowest starts are darkened
SHADE = 0.5
LEGEND_BASINS = 6


def basin_color(index: int) -> tuple[int, int, int]:
    """The colour of the basin with this colour index: the palette, then pale hues."""
    if index < len(PALETTE):
        return PALETTE[index]
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.35, 0.95)
    return round(255 * r), round(255 * g), round(255 * b)


def _css(rgb) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


class BasinLayer:
    """The items of the basin layer on a plot: an image over the heat map, crosses at the
    basins' end points and a legend."""

    def __init__(self, plot_item: pg.PlotItem):
        self.item = plot_item
        self.image = pg.ImageItem()
        self.image.setZValue(-7)  # over the heat map (-10), under contours and paths
        self.image.setCacheMode(self.image.CacheMode.DeviceCoordinateCache)
        self.ends = pg.ScatterPlotItem(symbol="+", size=13, brush=pg.mkBrush("w"),
                                       pen=pg.mkPen("k", width=1))
        self.ends.setZValue(6)
        self.legend = pg.LegendItem(offset=(-10, -10), verSpacing=-4, **legend_style(200))
        self.legend.setParentItem(plot_item.getViewBox())
        self.legend.hide()
        self.map = None
        self.done = 0.0  # the share of the map's grid computed (the rest from a coarse grid)
        self.rect = QRectF()
        self._known: list[tuple[np.ndarray, int]] = []  # basin end points and their colours
        self.colors: list[int] = []  # colour index of each basin of the map shown
        self.visible = False

    def attach(self) -> None:
        """Put the items (back) on the plot, after it was cleared."""
        for item in (self.image, self.ends):
            if item.scene() is None:
                self.item.addItem(item, ignoreBounds=True)
        self._show_items()

    def forget(self) -> None:
        """A new problem: no map, and colours start over."""
        self.map = None
        self.done = 0.0
        self._known = []
        self.colors = []
        self.image.clear()
        self.ends.setData([], [])
        self.legend.clear()
        self._show_items()

    def set_visible(self, on: bool) -> None:
        self.visible = on
        self._show_items()

    def _show_items(self) -> None:
        shown = self.visible and self.map is not None
        self.image.setVisible(shown)
        self.ends.setVisible(shown)
        self.legend.setVisible(shown)

    # --- drawing -------------------------------------------------------------------------

    def show(self, bmap, done: float, title: str = "") -> None:
        """Draw ``bmap`` (a BasinMap; ``done``: the share of it computed on the full grid)."""
        self.map, self.done = bmap, done
        xs, ys = bmap.xs, bmap.ys
        self.colors = self._match_colors(bmap)
        self.image.setImage(self.rgba(bmap), levels=None, autoLevels=False)
        dx = (xs[-1] - xs[0]) / max(1, len(xs) - 1)
        dy = (ys[-1] - ys[0]) / max(1, len(ys) - 1)
        # pixel centres on the starts: a click on a pixel is a click on its start
        self.rect = QRectF(xs[0] - dx / 2, ys[0] - dy / 2, xs[-1] - xs[0] + dx, ys[-1] - ys[0] + dy)
        self.image.setRect(self.rect)
        points = np.array([b.point for b in bmap.basins]).reshape(-1, 2)
        self.ends.setData(points[:, 0], points[:, 1]) if len(points) else self.ends.setData([], [])
        self._fill_legend(bmap, done, title)
        self._show_items()

    def rgba(self, bmap) -> np.ndarray:
        """The map as an (x, y, 4) image: basin colours darkened by the steps each start
        needed; diverged dark and striped, unfinished grey."""
        n = len(bmap.outcome)
        rgb = np.zeros((n, 3))
        labels = np.asarray(bmap.labels)
        labelled = labels >= 0
        if len(bmap.basins):
            table = np.array([basin_color(c) for c in self.colors], dtype=np.float64)
            rgb[labelled] = table[labels[labelled]] * self.shade(bmap)[labelled, None]
        outcome = np.asarray(bmap.outcome)
        rgb[outcome == UNFINISHED] = UNFINISHED_RGB
        image = rgb.reshape(len(bmap.xs), len(bmap.ys), 3)
        i, j = np.meshgrid(np.arange(len(bmap.xs)), np.arange(len(bmap.ys)), indexing="ij")
        stripes = ((i + j) // 2) % 2 == 1
        diverged = (outcome == DIVERGED).reshape(image.shape[:2])
        image[diverged & ~stripes] = DIVERGED_RGB
        image[diverged & stripes] = DIVERGED_STRIPE
        alpha = np.full(image.shape[:2] + (1,), 255.0)
        return np.clip(np.round(np.concatenate([image, alpha], axis=2)), 0, 255).astype(np.uint8)

    @staticmethod
    def shade(bmap) -> np.ndarray:
        """Per start, 1 (the fewest steps on this map) down to 1 - SHADE (the most): on a log
        scale between the map's own 2nd and 98th percentiles, so that the shading tells the
        starts of this map apart whatever the step limit."""
        steps = np.log1p(np.clip(np.asarray(bmap.steps, dtype=np.float64), 0, None))
        labelled = np.asarray(bmap.labels) >= 0
        if not labelled.any():
            return np.ones(len(steps))
        lo, hi = np.percentile(steps[labelled], [2, 98])
        t = (steps - lo) / (hi - lo) if hi > lo else np.zeros(len(steps))
        return 1.0 - SHADE * np.clip(t, 0.0, 1.0)

    def _match_colors(self, bmap) -> list[int]:
        """A colour index per basin: the one of the nearest basin drawn before (within 2%
        of the map), else the first free one."""
        span = max(bmap.xs[-1] - bmap.xs[0], bmap.ys[-1] - bmap.ys[0])
        known = np.array([p for p, _ in self._known]).reshape(-1, 2)
        known_colors = [c for _, c in self._known]
        colors: list[int] = []
        for basin in bmap.basins:
            color = None
            if len(known):
                d = np.abs(known - basin.point).max(axis=1)
                for k in np.argsort(d):
                    if d[k] > 0.02 * span:
                        break
                    if known_colors[k] not in colors:
                        color = known_colors[k]
                        break
            if color is None:
                used = set(colors) | set(known_colors)
                color = next(c for c in range(len(used) + 1) if c not in used)
                self._known.append((np.asarray(basin.point, dtype=np.float64), color))
                del self._known[:-500]
                known = np.array([p for p, _ in self._known]).reshape(-1, 2)
                known_colors = [c for _, c in self._known]
            colors.append(color)
        return colors

    def _fill_legend(self, bmap, done: float, title: str) -> None:
        legend = self.legend
        legend.clear()
        head = f"<b>Basins</b> {title}".strip()
        if done < 1.0:
            head += f" · {done:.0%} of the grid"
        legend.addItem(pg.PlotDataItem(pen=None), head)
        a, b = bmap.axes
        for k, basin in enumerate(bmap.basins[:LEGEND_BASINS]):
            x, y = (0.0 if abs(v) < 1e-9 else v for v in basin.point)
            legend.addItem(_swatch(basin_color(self.colors[k])),
                           f"{a} {x:.3g}, {b} {y:.3g}: {html.escape(share(basin.fraction))}")
        rest = bmap.basins[LEGEND_BASINS:]
        if rest:
            rest_share = sum(r.fraction for r in rest)
            legend.addItem(pg.PlotDataItem(pen=None),
                           f"… {len(rest)} more basins: {html.escape(share(rest_share))}")
        if bmap.diverged > 0:
            legend.addItem(_swatch(DIVERGED_RGB, DIVERGED_STRIPE),
                           f"diverged: {html.escape(share(bmap.diverged))}")
        if bmap.unfinished > 0:
            legend.addItem(_swatch(UNFINISHED_RGB),
                           f"unfinished: {html.escape(share(bmap.unfinished))}")
        legend.addItem(pg.ScatterPlotItem(symbol="+", size=11, brush="w", pen="k"),
                       "where runs end; darker: more steps")

    # --- clicks ------------------------------------------------------------------------------

    def start_near(self, x: float, y: float) -> tuple[float, float] | None:
        """The map's start whose pixel holds (x, y), or None outside the map."""
        if self.map is None or not self.rect.contains(x, y):
            return None
        xs, ys = self.map.xs, self.map.ys
        i = int(np.abs(xs - x).argmin())
        j = int(np.abs(ys - y).argmin())
        return float(xs[i]), float(ys[j])

    def describe(self) -> str:
        """One line on the map shown (for the view's hint)."""
        m = self.map
        if m is None:
            return ""
        parts = [f"{len(m.basins)} basin{'' if len(m.basins) == 1 else 's'}"]
        if m.diverged:
            parts.append(f"{share(m.diverged)} diverged")
        if m.unfinished:
            parts.append(f"{share(m.unfinished)} unfinished")
        return ", ".join(parts)


def share(value: float) -> str:
    """A share as a percentage, never rounding a few starts away to 0%."""
    if 0 < value < 0.005:
        return "<1%"
    if 0.995 < value < 1:
        return ">99%"
    return f"{value:.0%}"


def _swatch(rgb, stripe=None) -> pg.ScatterPlotItem:
    """A square legend sample."""
    brush = pg.mkBrush(_css(rgb))
    pen = pg.mkPen(_css(stripe) if stripe is not None else "#777", width=2 if stripe else 1)
    return pg.ScatterPlotItem(symbol="s", size=11, brush=brush, pen=pen)
