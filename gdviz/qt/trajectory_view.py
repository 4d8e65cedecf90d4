"""Where the parameters go, drawn over the loss landscape.

- one trainable scalar: the loss as a function of it, with the visited points on the curve;
- two (two scalars, or one parameter with two elements): the loss landscape as a heat map
  (log colors for steep functions), the path drawn live, start and current points marked;
  clicking the map sets a new start point; panning or zooming recomputes the landscape;
- more: each element's value against the step.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.history import ColumnLayout, History
from ..core.problem import Problem
from .plot_style import Marker, TimedPlotWidget, cache_axes, finite_bounds, sticky_range

GRID_2D = 120
GRID_1D = 400
MAX_PATH_POINTS = 5000
MAX_LINES = 12
_BATCH_VALUES = 4_000_000  # numbers per vectorized landscape call, to bound memory


def landscape_axes(layout: ColumnLayout) -> list[tuple[str, int]]:
    """The trainable elements as (column name, index in a flat parameter row)."""
    columns = layout.param_columns
    axes = []
    for name, sl in layout.param_slices.items():
        if name in layout.trainable:
            axes.extend((columns[i], i) for i in range(sl.start, sl.stop))
    return axes


def evaluate_landscape(problem: Problem, layout: ColumnLayout, base: np.ndarray,
                       indices: list[int], points: np.ndarray) -> np.ndarray:
    """The loss at ``points`` (shape (B, len(indices))): ``base`` with those elements replaced.
    One vectorized call per chunk; non-finite values come back as NaN."""
    rows = np.repeat(base[None, :], len(points), axis=0)
    rows[:, indices] = points
    per_row = max(1, rows.shape[1])
    chunk = max(1, _BATCH_VALUES // per_row)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        part = rows[start:start + chunk]
        batched = {}
        for name, sl in layout.param_slices.items():
            shape = layout.shapes[name]
            batched[name] = torch.as_tensor(part[:, sl].reshape((len(part),) + tuple(shape)),
                                            dtype=torch.float32)
        try:
            values = problem.loss_on_batch(batched, {})
            out[start:start + len(part)] = values.double().numpy()
        except (RuntimeError, ValueError):
            out[start:start + len(part)] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def _thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` evenly spaced indices, always keeping the last point."""
    n = len(x)
    if n <= limit:
        return np.arange(n)
    idx = np.linspace(0, n - 1, limit).astype(np.int64)
    return idx


class TrajectoryView(QWidget):
    """The parameter trajectory over the landscape; see the module docstring."""

    startPointChosen = Signal(object)  # a flat parameter row
    rangeChanged = Signal(object)      # {"x": [lo, hi], "y": [lo, hi]}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("trajectoryPlot")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        self.title = QLabel("<b>Trajectory</b>")
        self.logColorsCheck = QCheckBox("log colors", objectName="logColorsCheck")
        self.logColorsCheck.setToolTip("Color the landscape by log10(loss - min): shows the "
                                       "valley floor of steep functions such as Rosenbrock")
        self.logColorsCheck.toggled.connect(self._on_log_colors_toggled)
        self.fitButton = QPushButton("Fit", objectName="fitButton")
        self.fitButton.setToolTip("Fit the range to the path")
        self.fitButton.clicked.connect(self.fit_to_path)
        self.hint = QLabel()
        self.hint.setStyleSheet("color: #777;")
        header.addWidget(self.title)
        header.addWidget(self.hint, 1)
        header.addWidget(self.logColorsCheck)
        header.addWidget(self.fitButton)
        layout.addLayout(header)

        self.plot = TimedPlotWidget(background="w")
        self.item = self.plot.getPlotItem()
        self.item.showGrid(x=True, y=True, alpha=0.2)
        cache_axes(self.item)
        self.item.hideButtons()  # our Fit button replaces pyqtgraph's auto-range "A"
        layout.addWidget(self.plot, 1)
        self.colormap = pg.colormap.get("viridis")
        self.image = pg.ImageItem()
        self.image.setColorMap(self.colormap)
        self.image.setZValue(-10)
        # Cached as a pixmap: the path moves every frame, the landscape only on a new range.
        self.image.setCacheMode(self.image.CacheMode.DeviceCoordinateCache)
        self.colorbar: pg.ColorBarItem | None = None
        self.landscape_curve = pg.PlotDataItem(pen=pg.mkPen("#555", width=1))
        self.path = pg.PlotDataItem(pen=pg.mkPen("#ff1744", width=1), symbol="o", symbolSize=4,
                                    symbolBrush="#ff5252", symbolPen=None)
        self.start_marker = Marker("#00c853", 14, outline="black")
        self.current_marker = Marker("#ff1744", 13)
        self.lines: list[pg.PlotDataItem] = []
        self.legend: pg.LegendItem | None = None

        self.problem: Problem | None = None
        self.layout_: ColumnLayout | None = None
        self.mode = "none"
        self.axes: list[tuple[str, int]] = []
        self.base = np.zeros(0)
        self.start = np.zeros(0)
        self.z: np.ndarray | None = None
        self._auto_log = True
        self._updating_range = False
        self._user_range = False
        self._landscape_x: tuple | None = None
        self._drawn: dict[str, object] = {}
        self._recompute = QTimer(self, singleShot=True, interval=150)
        self._recompute.timeout.connect(self.update_landscape)
        self.item.getViewBox().sigRangeChangedManually.connect(self._on_view_range_changed_manually)
        self.item.getViewBox().sigRangeChanged.connect(self._on_view_range_changed)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)

    # --- setup --------------------------------------------------------------------------

    def configure(self, problem: Problem, layout: ColumnLayout, start: np.ndarray,
                  landscape: dict[str, list[float]] | None) -> None:
        """A new problem: choose the mode and range, and draw the landscape."""
        self.problem, self.layout_ = problem, layout
        self.axes = landscape_axes(layout)
        self.base = np.asarray(start, dtype=np.float64).copy()
        self.start = self.base.copy()
        self.z = None
        self._auto_log = True
        self._user_range = bool(landscape)
        self.item.clear()
        if self.legend is not None:
            self.legend.scene() and self.legend.scene().removeItem(self.legend)
            self.legend = None
        if self.colorbar is not None:
            self.colorbar.scene() and self.colorbar.scene().removeItem(self.colorbar)
            self.colorbar = None
        self.lines = []
        self._landscape_x = None
        self._drawn = {}
        n = len(self.axes)
        self.mode = "1d" if n == 1 else "2d" if n == 2 else "lines"
        self.item.setLogMode(False, False)
        self.logColorsCheck.setVisible(self.mode == "2d")
        self.fitButton.setVisible(self.mode != "lines")
        if self.mode == "2d":
            self.item.addItem(self.image)
            self.item.addItem(self.path)
            self._add_markers()
            self.item.setLabel("bottom", self.axes[0][0])
            self.item.setLabel("left", self.axes[1][0])
            self.colorbar = pg.ColorBarItem(colorMap=self.colormap, interactive=False, width=12)
            self.colorbar.setImageItem(self.image, insert_in=self.item)
            self.colorbar.axis.setCacheMode(self.colorbar.axis.CacheMode.DeviceCoordinateCache)
            self.hint.setText("click to start there; drag to pan, wheel to zoom")
            self.title.setText("<b>Loss landscape</b>")
        elif self.mode == "1d":
            self.item.addItem(self.landscape_curve)
            self.item.addItem(self.path)
            self._add_markers()
            self.item.setLabel("bottom", self.axes[0][0])
            self.item.setLabel("left", "loss")
            self.hint.setText("click to start there")
            self.title.setText("<b>Loss along the parameter</b>")
        else:
            self.item.setLabel("bottom", "step")
            self.item.setLabel("left", "value")
            self.legend = self.item.addLegend(offset=(-10, 10))
            cols = layout.param_columns
            shown = [i for _, i in self.axes][:MAX_LINES]
            for k, i in enumerate(shown):
                pen = pg.mkPen(pg.intColor(k, hues=max(len(shown), 3)), width=1)
                self.lines.append(self.item.plot([], [], pen=pen, name=cols[i]))
            more = len(self.axes) - len(shown)
            self.hint.setText(f"{len(self.axes)} elements" + (f"; the first {MAX_LINES} shown"
                                                               if more > 0 else ""))
            self.title.setText("<b>Parameters</b>")
            self.item.disableAutoRange()
            self._set_range(([0, 10], [-1, 1]), both=True)
            return
        self._set_range(self._initial_range(landscape))
        self.update_landscape()

    def _add_markers(self) -> None:
        for marker in (self.start_marker, self.current_marker):
            marker.point = None
            marker.hide()
            self.item.addItem(marker, ignoreBounds=True)

    def _initial_range(self, landscape: dict[str, list[float]] | None) -> tuple:
        pts = self.start[[i for _, i in self.axes]]
        spans = [max(1.0, 1.5 * abs(v)) for v in pts]
        ranges = [[v - s, v + s] for v, s in zip(pts, spans)]
        if landscape:
            for k, axis in enumerate(("x", "y")[:len(pts)]):
                if axis in landscape:
                    ranges[k] = list(landscape[axis])
        return tuple(ranges)

    def _set_range(self, ranges: tuple, both: bool = False) -> None:
        self._updating_range = True
        vb = self.item.getViewBox()
        if self.mode == "2d" or both:
            vb.setRange(xRange=ranges[0], yRange=ranges[1], padding=0)
        else:
            vb.setRange(xRange=ranges[0], padding=0)
        self._updating_range = False

    # --- landscape ----------------------------------------------------------------------

    def update_landscape(self) -> None:
        """Evaluate the loss over the visible range (one vectorized call)."""
        if self.problem is None or self.mode not in ("1d", "2d"):
            return
        (x0, x1), (y0, y1) = self.item.getViewBox().viewRange()
        idx = [i for _, i in self.axes]
        if self.mode == "1d":
            if self._landscape_x == (x0, x1):
                return  # only the y range moved: the curve is still right
            self._landscape_x = (x0, x1)
            xs = np.linspace(x0, x1, GRID_1D)
            loss = evaluate_landscape(self.problem, self.layout_, self.base, idx, xs[:, None])
            self.landscape_curve.setData(xs, loss, connect="finite")
            self._autorange_y(loss)
            return
        xs = np.linspace(x0, x1, GRID_2D)
        ys = np.linspace(y0, y1, GRID_2D)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        z = evaluate_landscape(self.problem, self.layout_, self.base, idx,
                               np.column_stack([gx.ravel(), gy.ravel()])).reshape(GRID_2D, GRID_2D)
        self.z = z
        self._draw_image(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _autorange_y(self, loss: np.ndarray) -> None:
        finite = loss[np.isfinite(loss)]
        if len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.05 * (hi - lo) or 1.0
            self._updating_range = True
            self.item.getViewBox().setYRange(lo - pad, hi + pad, padding=0)
            self._updating_range = False

    def _draw_image(self, rect: QRectF) -> None:
        z = self.z
        finite = z[np.isfinite(z)]
        if not len(finite):
            self.image.clear()
            return
        lo, hi = float(finite.min()), float(finite.max())
        if self._auto_log:
            # Steep (Rosenbrock): most of the map sits in the bottom tenth of the range, so
            # linear colors would paint it all one color.
            median = float(np.median(finite))
            steep = (median - lo) < 0.1 * (hi - lo)
            blocker_state = self.logColorsCheck.blockSignals(True)
            self.logColorsCheck.setChecked(steep)
            self.logColorsCheck.blockSignals(blocker_state)
        if self.logColorsCheck.isChecked():
            eps = max(1e-12, 1e-9 * (hi - lo))
            shown = np.log10(z - lo + eps)
            label = "log10(loss − min)"
        else:
            shown = z
            label = "loss"
        shown = np.where(np.isfinite(shown), shown, np.nanmax(shown[np.isfinite(shown)]))
        levels = (float(shown.min()), float(shown.max()) if shown.max() > shown.min() else float(shown.min()) + 1)
        self.image.setImage(shown, levels=levels)
        self.image.setRect(rect)
        if self.colorbar is not None:
            self.colorbar.setLevels(levels)
            self.colorbar.axis.setLabel(label)

    def _on_log_colors_toggled(self, _on: bool) -> None:
        self._auto_log = False
        if self.z is not None:
            (x0, x1), (y0, y1) = self.item.getViewBox().viewRange()
            self._draw_image(QRectF(x0, y0, x1 - x0, y1 - y0))

    # --- live data ----------------------------------------------------------------------

    def refresh(self, history: History | None, current: np.ndarray, current_loss: float,
                start: np.ndarray | None = None) -> None:
        """Redraw the path from ``history`` and the current point."""
        if self.problem is None or not len(current):
            return
        if start is not None:
            self.start = np.asarray(start, dtype=np.float64)
        idx = [i for _, i in self.axes]
        rows = history.params if history is not None and len(history) else np.zeros((0, len(current)))
        if self.mode == "lines":
            steps = history.steps if history is not None else np.zeros(0)
            keep = _thin(steps, MAX_PATH_POINTS)
            for line, i in zip(self.lines, idx):
                line.setData(steps[keep], rows[keep, i])
            if len(steps):
                vb = self.item.getViewBox()
                (x0, x1), (y0, y1) = vb.viewRange()
                right = max(10.0, 2 ** math.ceil(math.log2(max(float(steps[-1]), 1.0) * 1.05)))
                shown = rows[:, idx[:MAX_LINES]]
                new_y = sticky_range((y0, y1), *finite_bounds(shown))
                self._set_range(([0, right], list(new_y) if new_y else [y0, y1]), both=True)
            return
        if self.mode == "2d":
            pts = np.vstack([rows[:, idx], current[idx][None, :]])
            keep = _thin(pts, MAX_PATH_POINTS)
            self._set_path(pts[keep, 0], pts[keep, 1], symbol_size=5)
            s = self.start[idx]
            self._mark(self.start_marker, s[0], s[1])
            self._mark(self.current_marker, current[idx[0]], current[idx[1]])
            if not self._user_range:
                self._grow_range(pts)
        else:
            xs = np.append(rows[:, idx[0]], current[idx[0]])
            losses = np.append(history.loss if history is not None and len(history) else [], current_loss)
            keep = _thin(xs, MAX_PATH_POINTS)
            self._set_path(xs[keep], losses[keep], symbol_size=6)
            s = self.start[idx[0]]
            s_loss = history.loss[0] if history is not None and len(history) else current_loss
            self._mark(self.start_marker, s, s_loss)
            self._mark(self.current_marker, current[idx[0]], current_loss)
            if not self._user_range:
                self._grow_range(xs[:, None])

    def _set_path(self, x: np.ndarray, y: np.ndarray, symbol_size: int) -> None:
        # Dots show each step in slow motion; on long paths they would cost more than the line.
        few = len(x) <= 300
        if self._drawn.get("symbols") != few:
            self._drawn["symbols"] = few
            self.path.setSymbol("o" if few else None)
            self.path.setSymbolSize(symbol_size)
        self.path.setData(x, y, connect="finite")

    @staticmethod
    def _mark(marker: Marker, x: float, y: float) -> None:
        marker.move_to(float(x), float(y))

    def _grow_range(self, pts: np.ndarray) -> None:
        """Widen the view when the path leaves it (unless the user chose a range)."""
        finite = pts[np.isfinite(pts).all(axis=1)]
        if not len(finite):
            return
        view = self.item.getViewBox().viewRange()
        lo, hi = finite.min(axis=0), finite.max(axis=0)
        outside = any(lo[k] < view[k][0] or hi[k] > view[k][1] for k in range(pts.shape[1]))
        if outside:
            # Grow generously: every range change repaints axes and recomputes the landscape.
            self.fit_to_path(points=finite, keep_user=True, margin=0.6)

    def fit_to_path(self, _checked: bool = False, points: np.ndarray | None = None,
                    keep_user: bool = False, margin: float = 0.2) -> None:
        """Fit the range to the path (and the start), with some margin."""
        if self.mode not in ("1d", "2d"):
            return
        idx = [i for _, i in self.axes]
        if points is None:
            xs, ys = self.path.getData()
            points = np.column_stack([xs, ys])[:, :len(idx)] if xs is not None and len(xs) else \
                self.start[idx][None, :]
            if self.mode == "1d":
                points = points[:, :1]
        points = np.vstack([points, self.start[idx][None, :]])
        lo, hi = points.min(axis=0), points.max(axis=0)
        span = np.maximum(hi - lo, np.maximum(0.5, 0.2 * np.abs(hi + lo) / 2))
        pad = margin * span
        ranges = tuple([float(l - p), float(h + p)] for l, h, p in zip(lo, hi, pad))
        if not keep_user:
            self._user_range = False
        self._set_range(ranges if self.mode == "2d" else (ranges[0], None))
        self._recompute.start()

    # --- events -------------------------------------------------------------------------

    def _on_view_range_changed(self, *_args) -> None:
        if self.mode in ("1d", "2d"):
            self._recompute.start()

    def _on_view_range_changed_manually(self, *_args) -> None:
        if self._updating_range:
            return
        self._user_range = True
        (x0, x1), (y0, y1) = self.item.getViewBox().viewRange()
        rng = {"x": [x0, x1]} if self.mode == "1d" else {"x": [x0, x1], "y": [y0, y1]}
        self.rangeChanged.emit(rng)

    def _on_scene_mouse_clicked(self, event) -> None:
        if self.mode not in ("1d", "2d") or event.button() != Qt.MouseButton.LeftButton \
                or event.double():
            return
        vb = self.item.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        start = self.start.copy()
        idx = [i for _, i in self.axes]
        start[idx[0]] = point.x()
        if self.mode == "2d":
            start[idx[1]] = point.y()
        event.accept()
        self.startPointChosen.emit(start)

    def click_at(self, x: float, y: float | None = None) -> None:
        """Choose a start point as a click at (x, y) in data coordinates would."""
        start = self.start.copy()
        idx = [i for _, i in self.axes]
        start[idx[0]] = x
        if y is not None and len(idx) > 1:
            start[idx[1]] = y
        self.startPointChosen.emit(start)

    def freeze_range(self) -> None:
        """Keep the current range (as if the user had chosen it)."""
        self._user_range = True
