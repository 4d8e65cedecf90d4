"""Where the parameters go, drawn over the loss landscape, for every visible run.

- one trainable scalar: the loss as a function of it, with each run's visited points on it;
- two (two scalars, or one parameter with two elements): the loss landscape as a heat map
  (log colours for steep functions), each run's path in its colour, start and current
  points marked; clicking the map sets a new start point; panning or zooming recomputes
  the landscape;
- more: each element of the selected run against the step, with a legend; or, with
  "landscape of" ticked, the landscape over two chosen elements (a slice: the others held at
  their initial values), drawn as for two.

Over the two-parameter landscape two layers can be shown: the basin map (which minimum the
current optimizer reaches from every start, :mod:`.basin_layer`; a click on it makes the
start a new run) and the curvature directions at the selected run's point (two arrows along
the Hessian's eigenvectors).

The view never computes the landscape (or the basins) itself: it asks
(``landscapeRequested``, ``basinsRequested``) and draws the answer (:meth:`show_landscape`,
:meth:`show_basins`); the worker thread, which owns torch, computes it.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from ..core.analysis.landscape import LandscapeGrid
from ..core.history import ColumnLayout
from ..core.model import Run
from .basin_layer import BasinLayer
from .state_arrows import StateArrows
from .plot_style import (FastCurve, Marker, finite_bounds, legend_entries, legend_label,
                         legend_style, new_plot, sticky_range)

GRID_2D = 120
BASIN_GRID = 200
ARROW_PX = 70
GRID_1D = 400
MAX_PATH_POINTS = 5000
MAX_LINES = 12
#: where the landscape's legend may go: (x, y) of the corner, 0 left or top, 1 right or bottom
LEGEND_CORNERS = ((0, 0), (1, 0), (0, 1), (1, 1))
LEGEND_MARGIN = 10   # pixels between the legend and the plot's edge
LEGEND_PLACE_S = 0.5
LEGEND_DRAG = pg.LegendItem.mouseDragEvent
#: what the markers mean, for a slide read without the app (the glyphs drawn in their colours)
MARKER_KEY = ("<span style='color:#00c853'>&#9679;</span> start&nbsp;&nbsp; "
              "<span style='color:#777'>&#9679;</span> now (run's colour)&nbsp;&nbsp; "
              "&#9734; lowest shown")
#: runs named at most in the landscape's legend, which lies over the paths (a sweep: its
#: first, its last and a few between)
LANDSCAPE_LEGEND = 8


def thin(x: np.ndarray, limit: int) -> np.ndarray:
    """Every s-th index of ``x`` and its last, s the smallest power of two that keeps about
    ``limit`` at most: as a path grows, the points kept stay the same (until s doubles), so
    a thinned path does not shimmer from frame to frame, and a frame looks at the kept
    points only."""
    n = len(x)
    stride = 1
    while n > stride * limit:
        stride *= 2
    keep = np.arange(0, n, stride)
    if n and keep[-1] != n - 1:
        keep = np.append(keep, n - 1)
    return keep


class _RunDrawing:
    """One run's path (painted in C++: a race repaints every path each frame), a dot at each
    step while the path is short and the runs few, and the current-point marker."""

    def __init__(self, color: str):
        self.path = FastCurve(pg.mkPen(color, width=1))
        self.dots = pg.ScatterPlotItem(symbol="o", size=4, brush=color, pen=None)
        self.dots.setParentItem(self.path)  # shown, hidden and stacked with its path
        self.dots.hide()
        self.marker = Marker(color, 12, outline="white")
        self.color = color

    def set_color(self, color: str, width: int) -> None:
        self.color = color
        self.path.setPen(pg.mkPen(color, width=width))
        self.dots.setBrush(pg.mkBrush(color))
        self.marker.setBrush(pg.mkBrush(color))


class _CurvatureArrows:
    """The Hessian's two eigenvectors as arrows from a point: red along the steepest
    curvature, blue along the flattest, each labelled with its eigenvalue."""

    COLORS = ("#1565c0", "#c62828")  # smaller eigenvalue, larger

    def __init__(self):
        self.arrows = [pg.ArrowItem(pxMode=True, headLen=11, tipAngle=36, tailLen=ARROW_PX - 11,
                                    tailWidth=3, brush=c, pen=pg.mkPen("w", width=1))
                       for c in self.COLORS]
        self.labels = [pg.TextItem(color=c, anchor=(0.5, 0.5), fill=pg.mkBrush(255, 255, 255, 200))
                       for c in self.COLORS]
        for item in self.arrows + self.labels:
            item.setZValue(15)
            item.hide()
        self.values: np.ndarray | None = None
        self.vectors: np.ndarray | None = None

    def items(self) -> list:
        return self.arrows + self.labels

    def set(self, values: np.ndarray | None, vectors: np.ndarray | None) -> None:
        self.values, self.vectors = values, vectors
        if values is not None:
            for label, value in zip(self.labels, values):
                label.setText(f"λ {value:.4g}")

    def hide(self) -> None:
        for item in self.items():
            item.hide()

    def draw(self, point: tuple[float, float] | None, pixel: tuple[float, float]) -> None:
        """From ``point`` (data coordinates), ARROW_PX pixels long whatever the zoom;
        ``pixel``: the data size of a pixel along x and y."""
        if point is None or self.vectors is None or not all(p > 0 for p in pixel):
            self.hide()
            return
        pw, ph = pixel
        for k, (arrow, label) in enumerate(zip(self.arrows, self.labels)):
            vx, vy = self.vectors[:, k]
            if vx < 0 or (vx == 0 and vy < 0):  # an eigenvector's sign is arbitrary: steady
                vx, vy = -vx, -vy
            sx, sy = vx / pw, vy / ph  # in pixels, y up
            norm = math.hypot(sx, sy)
            if not norm > 0:
                arrow.hide()
                label.hide()
                continue
            scale = ARROW_PX / norm
            tip = (point[0] + scale * vx, point[1] + scale * vy)
            arrow.setStyle(angle=math.degrees(math.atan2(-sy, sx)) - 180)
            arrow.setPos(*tip)
            out = (ARROW_PX + 18) / norm
            label.setPos(point[0] + out * vx, point[1] + out * vy)
            arrow.show()
            label.show()


class TrajectoryView(QWidget):
    """The runs' trajectories over the landscape; see the module docstring."""

    startPointChosen = Signal(object)   # a flat parameter row
    rangeChanged = Signal(object)       # {"x": [lo, hi], "y": [lo, hi]}
    landscapeRequested = Signal(object, object, object, object, int)  # base, indices, xs, ys, token
    # base, indices, x range, y range, starts per side, token
    basinsRequested = Signal(object, object, object, object, int, int)
    basinsDropped = Signal()            # the basin layer was turned off
    basinStartChosen = Signal(object, object)  # a flat parameter row, the (x, y) clicked
    curvatureToggled = Signal(bool)
    arrowsToggled = Signal(bool)
    modeChanged = Signal()              # another view of the same problem: runs are drawn anew

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
        self.contoursCheck = QCheckBox("contours", objectName="contoursCheck")
        self.contoursCheck.setToolTip("Draw contour lines of the loss over the map")
        self.contoursCheck.toggled.connect(self._on_contours_toggled)
        self.basinsCheck = QCheckBox("basins", objectName="basinsCheck")
        self.basinsCheck.setToolTip("Basin map: run the selected run's optimizer and settings "
                                    "from every start on a grid over this view, and color each "
                                    "start by the minimum it reaches (darker: more steps). "
                                    "Click a start to make it a run.")
        self.basinsCheck.toggled.connect(self._on_basins_toggled)
        self.curvatureCheck = QCheckBox("curvature", objectName="curvatureCheck")
        self.curvatureCheck.setToolTip("The Hessian's eigenvectors at the selected run's point: "
                                       "red along the steepest curvature, blue along the "
                                       "flattest, labelled with their eigenvalues")
        self.curvatureCheck.toggled.connect(self._on_curvature_toggled)
        self.arrowsCheck = QCheckBox("arrows", objectName="arrowsCheck")
        self.arrowsCheck.setToolTip("At the step shown (the timeline's, or the last one): the "
                                    "negative gradient, the update applied and the optimizer's "
                                    "state (momentum, exp_avg as an arrow, the per-element rate "
                                    "as an ellipse); the legend names each")
        self.arrowsCheck.toggled.connect(self._on_arrows_check_toggled)
        self.sliceCheck = QCheckBox("landscape of", objectName="sliceCheck")
        self.sliceCheck.setToolTip("The loss landscape over two chosen elements, every other "
                                   "element held at its initial value (the runs' paths are "
                                   "drawn projected onto them)")
        self.sliceXCombo = QComboBox(objectName="sliceXCombo")
        self.sliceXCombo.setToolTip("The element on the x axis")
        self.sliceYCombo = QComboBox(objectName="sliceYCombo")
        self.sliceYCombo.setToolTip("The element on the y axis")
        self.sliceCheck.toggled.connect(self._on_slice_changed)
        self.sliceXCombo.currentIndexChanged.connect(self._on_slice_changed)
        self.sliceYCombo.currentIndexChanged.connect(self._on_slice_changed)
        self.fitButton = QPushButton("Fit", objectName="fitButton")
        self.fitButton.setToolTip("Fit the range to the paths")
        self.fitButton.clicked.connect(self.fit_to_path)
        self.hint = QLabel()
        self.hint.setStyleSheet("color: #666;")
        header.addWidget(self.title)
        header.addWidget(self.hint, 1)
        header.addWidget(self.fitButton)
        # a second row: what the landscape is of, and what is drawn over it
        options = QHBoxLayout()
        options.setContentsMargins(0, 0, 0, 0)
        for widget in (self.sliceCheck, self.sliceXCombo, self.sliceYCombo, self.logColorsCheck,
                       self.contoursCheck, self.basinsCheck, self.curvatureCheck, self.arrowsCheck):
            options.addWidget(widget)
            widget.hide()  # until a problem that has them is shown
        options.addStretch(1)
        self.optionsRow = QWidget(objectName="trajectoryOptions")
        self.optionsRow.setLayout(options)
        self.optionsRow.hide()
        # The header's controls never make the view wider than it is given (a figure drawn
        # 480 pixels wide is 480 wide): at a small width they are cut off instead.
        header.setContentsMargins(0, 0, 0, 0)
        header_box = QWidget(objectName="trajectoryHeader")
        header_box.setLayout(header)
        for row in (header_box, self.optionsRow):
            row.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            layout.addWidget(row)

        self.plot, self.item = new_plot(grid_alpha=0.2)  # our Fit button replaces "A"
        layout.addWidget(self.plot, 1)
        # One legend for the plot's life (pyqtgraph keeps returning the first one it made):
        # the runs in the landscape modes, the elements in the parameters plot.
        self.legend = self.item.addLegend(offset=(10, 10), verSpacing=-5, **legend_style())
        self.legend.hide()
        self.legend.mouseDragEvent = self._on_legend_dragged
        self._legend_corner = (0, 0)
        self._legend_placed_at = -math.inf
        self._legend_dragged = False
        self._legend_later = QTimer(self, singleShot=True, interval=int(LEGEND_PLACE_S * 1000))
        self._legend_later.timeout.connect(lambda: self._place_legend(force=True))
        self.colormap = pg.colormap.get("viridis")
        self.image = pg.ImageItem()
        self.image.setColorMap(self.colormap)
        self.image.setZValue(-10)
        # Cached as a pixmap: the paths move every frame, the landscape only on a new range.
        self.image.setCacheMode(self.image.CacheMode.DeviceCoordinateCache)
        self.colorbar: pg.ColorBarItem | None = None
        self.landscape_curve = pg.PlotDataItem(pen=pg.mkPen("#555", width=1))
        self.start_marker = Marker("#00c853", 14, outline="black")
        # the lowest point of the grid on show: where the runs are heading, if they can
        self.min_marker = Marker("#ffffff", 12, outline="black", shape="star")
        self.contours: list[pg.IsocurveItem] = []
        self.drawings: dict[int, _RunDrawing] = {}
        self.lines: list[pg.PlotDataItem] = []
        self.basins = BasinLayer(self.item)
        self.basin_grid = BASIN_GRID
        self.basin_title = ""  # what the map is of, e.g. "Adam lr 0.05"
        self._basin_token = 0
        self._basin_key: tuple | None = None
        self._basin_hint = ""
        self.arrows = _CurvatureArrows()
        self.state_arrows = StateArrows(self.item)
        self.step_view = None          # the inspector's StepView whose vectors are drawn
        self.cursor_row: np.ndarray | None = None  # the timeline's point (None: live)
        self.cursor_loss = math.nan
        self.cursor_step: int | None = None
        self.cursor_line = pg.InfiniteLine(  # the timeline's step on the parameters plot
            angle=90, pen=pg.mkPen("#555", width=1, style=Qt.PenStyle.DashLine))

        self.layout_: ColumnLayout | None = None
        self.elements: list[tuple[str, int]] = []  # the trainable elements that can be drawn
        self.sliced = False  # a landscape over two of more elements
        self.mode = "none"
        self.axes: list[tuple[str, int]] = []
        self.base = np.zeros(0)
        self.z: np.ndarray | None = None
        self._image_rect = QRectF()
        self.selected: int | None = None
        self._auto_log = True
        self._updating_range = False
        self._user_range = False
        self._landscape_key: tuple | None = None
        self._token = 0
        self._dots = True
        self._recompute = QTimer(self, singleShot=True, interval=150)
        self._recompute.timeout.connect(self.update_landscape)
        self.item.getViewBox().sigRangeChangedManually.connect(self._on_view_range_changed_manually)
        self.item.getViewBox().sigRangeChanged.connect(self._on_view_range_changed)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)

    @property
    def path(self) -> FastCurve | None:
        """The selected run's path."""
        drawing = self.drawings.get(self.selected) if self.selected is not None else None
        return drawing.path if drawing else None

    @property
    def current_marker(self) -> Marker | None:
        drawing = self.drawings.get(self.selected) if self.selected is not None else None
        return drawing.marker if drawing else None

    # --- setup --------------------------------------------------------------------------

    def configure(self, layout: ColumnLayout, start: np.ndarray,
                  landscape: dict[str, list[float]] | None) -> None:
        """A new problem: choose the mode and range, and ask for the landscape."""
        self.layout_ = layout
        self._legend_dragged = False  # a new problem: the legend finds its place again
        # names for the elements that are drawn only: a parameter may have millions
        self.elements = layout.trainable_axes(limit=MAX_LINES)
        self.base = np.asarray(start, dtype=np.float64).copy()
        self._fill_slice_combos()
        self._build_mode(landscape)

    def _fill_slice_combos(self) -> None:
        """The elements a slice can be drawn over; the choice stays where the names do."""
        names = [name for name, _ in self.elements]
        several = self.layout_.n_grads > 2
        for k, combo in enumerate((self.sliceXCombo, self.sliceYCombo)):
            blocker = QSignalBlocker(combo)
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            combo.setCurrentIndex(names.index(current) if current in names
                                  else min(k, len(names) - 1))
            del blocker
        for widget in (self.sliceCheck, self.sliceXCombo, self.sliceYCombo):
            widget.setVisible(several)
        self._show_options_row()

    def _show_options_row(self) -> None:
        self.optionsRow.setVisible(any(w.isVisibleTo(self.optionsRow) for w in (
            self.sliceCheck, self.logColorsCheck, self.contoursCheck, self.basinsCheck,
            self.curvatureCheck, self.arrowsCheck)))

    def _on_slice_changed(self, *_args) -> None:
        if self.layout_ is None or self.layout_.n_grads <= 2:
            return
        self._build_mode(None)
        self.modeChanged.emit()

    def _build_mode(self, landscape: dict[str, list[float]] | None) -> None:
        """Clear the plot and set it up for the mode the problem (and the slice) asks for."""
        layout = self.layout_
        n = layout.n_grads
        x, y = self.sliceXCombo.currentIndex(), self.sliceYCombo.currentIndex()
        self.sliced = n > 2 and self.sliceCheck.isChecked() and x != y and min(x, y) >= 0
        self.axes = [self.elements[x], self.elements[y]] if self.sliced else list(self.elements)
        if self.sliced:
            landscape = None  # the session's range is the first two elements'
        self.z = None
        self.item.setTitle(None)  # the marker key is the 2-D map's (set_runs)
        self._anchor_legend((0, 0))  # top left until the paths say otherwise
        self._token += 1  # a landscape still on its way for the old problem is dropped
        self._basin_token += 1
        self._basin_key = None
        self.basins.forget()
        self._basin_hint = ""
        self.arrows.set(None, None)
        self._auto_log = True
        self._user_range = bool(landscape)
        self.item.clear()
        self.legend.clear()
        self.legend.hide()
        self.drawings = {}
        self.lines = []
        self._landscape_key = None
        self.mode = "1d" if n == 1 else "2d" if n == 2 or self.sliced else "lines"
        self.item.setLogMode(False, False)
        if self.colorbar is not None:
            self.colorbar.setVisible(self.mode == "2d")
        self.logColorsCheck.setVisible(self.mode == "2d")
        self.contoursCheck.setVisible(self.mode == "2d")
        self.basinsCheck.setVisible(self.mode == "2d")
        self.curvatureCheck.setVisible(self.mode == "2d")
        self.arrowsCheck.setVisible(self.mode in ("1d", "2d"))
        self._show_options_row()
        self.contours = []
        self.fitButton.setVisible(self.mode != "lines")
        self.state_arrows.hide()
        self.state_arrows.attach()
        self.cursor_line.hide()
        self.item.addItem(self.cursor_line, ignoreBounds=True)
        if self.mode == "2d":
            self.item.addItem(self.image)
            self.basins.attach()
            for item in self.arrows.items():
                self.item.addItem(item, ignoreBounds=True)
            self.item.setLabel("bottom", self.axes[0][0])
            self.item.setLabel("left", self.axes[1][0])
            if self.colorbar is None:  # made once: its cell in the plot's layout stays taken
                self.colorbar = pg.ColorBarItem(colorMap=self.colormap, interactive=False, width=12)
                self.colorbar.setImageItem(self.image, insert_in=self.item)
                self.colorbar.axis.setCacheMode(self.colorbar.axis.CacheMode.DeviceCoordinateCache)
            self.colorbar.show()
            self.hint.setText(self._hint_2d())
            self.title.setText("<b>Loss landscape</b>" + (" (a slice)" if self.sliced else ""))
        elif self.mode == "1d":
            self.item.addItem(self.landscape_curve)
            self.item.setLabel("bottom", self.axes[0][0])
            self.item.setLabel("left", "loss")
            self.hint.setText("click to start there")
            self.title.setText("<b>Loss along the parameter</b>")
        else:
            self.item.setLabel("bottom", "step")
            self.item.setLabel("left", "value")
            self.title.setText("<b>Parameters</b>")
            self.item.disableAutoRange()
            self._set_range(([0, 10], [-1, 1]), both=True)
            return
        for marker in (self.start_marker, self.min_marker):
            marker.point = None
            marker.hide()
            self.item.addItem(marker, ignoreBounds=True)
        self._set_range(self._initial_range(landscape))
        self.update_landscape()

    def set_runs(self, runs: list[Run], selected: int | None) -> None:
        """One path and marker per run (landscape modes), or the selected run's elements."""
        self.selected = selected
        if self.mode == "lines":
            self._build_lines(next((r for r in runs if r.id == selected), None))
            return
        wanted = {r.id for r in runs}
        for run_id in list(self.drawings):
            if run_id not in wanted:
                drawing = self.drawings.pop(run_id)
                self.item.removeItem(drawing.path)
                self.item.removeItem(drawing.marker)
        self.legend.clear()
        shown = [r for r in runs if r.settings.visible]
        for run in runs:
            drawing = self.drawings.get(run.id)
            color = run.settings.color or "#ff1744"
            if drawing is None:
                drawing = _RunDrawing(color)
                self.drawings[run.id] = drawing
                self.item.addItem(drawing.path)
                drawing.marker.point = None
                self.item.addItem(drawing.marker, ignoreBounds=True)
            drawing.set_color(color, 2 if run.id == selected else 1)
            drawing.path.setVisible(run.settings.visible)
            drawing.marker.setVisible(run.settings.visible and drawing.marker.point is not None)
            drawing.path.setZValue(2 if run.id == selected else 1)
        if len(shown) > 1:
            # fewer names than the loss plot's: this legend sits over the paths themselves
            named = legend_entries(shown, LANDSCAPE_LEGEND)
            for run in named:
                self.legend.addItem(self.drawings[run.id].path.sample, legend_label(run.label))
            if len(shown) > len(named):
                self.legend.addItem(pg.PlotDataItem(pen=None), f"… {len(shown)} runs")
        # what the markers mean, as the plot's title: a line above the map, not over it
        self.item.setTitle(MARKER_KEY if self.mode == "2d" else None, size="9pt", color="#222")
        self.legend.setVisible(len(shown) > 1)
        self._halo_paths()
        self._place_legend(force=True)

    def _place_legend(self, force: bool = False) -> None:
        """Put the legend in the corner of the plot that hides the fewest of the points
        drawn (the paths, the start, the markers), as matplotlib's ``loc="best"`` does; the
        basins' legend keeps the lower right. Looked at again at most every
        LEGEND_PLACE_S while the paths grow, and never once the user has dragged it."""
        now = time.monotonic()
        if self.mode not in ("1d", "2d") or not self.legend.isVisible() or self._legend_dragged:
            return
        if not force and now - self._legend_placed_at < LEGEND_PLACE_S:
            if not self._legend_later.isActive():  # the last frame's paths count too
                self._legend_later.start()
            return
        self._legend_placed_at = now
        vb = self.item.getViewBox()
        pw, ph = vb.viewPixelSize()
        if not (pw > 0 and ph > 0):
            return
        box = self.legend.boundingRect()
        w, h = (box.width() + LEGEND_MARGIN) * pw, (box.height() + LEGEND_MARGIN) * ph
        (x0, x1), (y0, y1) = vb.viewRange()
        paths = [np.column_stack(d.path.getData()) for d in self.drawings.values()
                 if d.path.isVisible() and d.path.xData is not None and len(d.path.xData)]
        paths = np.vstack(paths) if paths else np.zeros((0, 2))
        marks = np.array([m.point for m in self._markers() if m.point is not None]).reshape(-1, 2)

        def hidden(corner: tuple[int, int], points: np.ndarray) -> int:
            left = x0 if corner[0] == 0 else x1 - w
            low = y1 - h if corner[1] == 0 else y0
            inside = (points[:, 0] >= left) & (points[:, 0] <= left + w) & \
                (points[:, 1] >= low) & (points[:, 1] <= low + h)
            return int(np.count_nonzero(inside))

        corners = [c for c in LEGEND_CORNERS if not (self.basins_shown and c == (1, 1))]
        # The markers (where each run is now, the start, the lowest point) first, then the
        # paths; ties keep the legend where it is (no jumping about), then the first corner.
        best = min(corners, key=lambda c: (hidden(c, marks), hidden(c, paths),
                                           c != self._legend_corner))
        if best != self._legend_corner:
            self._anchor_legend(best)

    def _anchor_legend(self, corner: tuple[int, int]) -> None:
        self._legend_corner = corner
        offset = (LEGEND_MARGIN if corner[0] == 0 else -LEGEND_MARGIN,
                  LEGEND_MARGIN if corner[1] == 0 else -LEGEND_MARGIN)
        self.legend.anchor(itemPos=corner, parentPos=corner, offset=offset)

    def _markers(self) -> list[Marker]:
        return [self.start_marker, self.min_marker] + [d.marker for d in self.drawings.values()
                                                       if d.marker.isVisible()]

    def _on_legend_dragged(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._legend_dragged = True  # the user's place for it stays
        LEGEND_DRAG(self.legend, event)

    def _halo_paths(self) -> None:
        """Over the basin map the paths get a dark outline and a width of two: a path in a
        colour like its basin's would vanish otherwise."""
        on = self.basins_shown
        # the basins' legend takes the lower right corner; the runs' goes wide and flat along
        # the top, so that both leave the middle of the map (where minima tend to be) in view
        # (and so does a legend of many runs: wide and flat covers fewer of the paths)
        columns = 2 if on or len(self.legend.items) > 6 else 1
        if self.legend.columnCount != columns:
            self.legend.setColumnCount(columns)
        for run_id, drawing in self.drawings.items():
            width = 2 if on or run_id == self.selected else 1
            drawing.path.setPen(pg.mkPen(drawing.color, width=width))
            drawing.path.setShadowPen(pg.mkPen("#202020", width=width + 2) if on else None)

    def _build_lines(self, run: Run | None) -> None:
        # The legend is filled anew with the lines, so lines and names always match.
        for line in self.lines:
            self.item.removeItem(line)
        self.legend.clear()
        self.legend.show()
        self.lines = []
        cols = self.layout_.param_columns
        shown = [i for _, i in self.axes][:MAX_LINES]
        for k, i in enumerate(shown):
            pen = pg.mkPen(pg.intColor(k, hues=max(len(shown), 3)), width=1)
            self.lines.append(self.item.plot([], [], pen=pen, name=cols[i]))
        total = self.layout_.n_grads
        who = f" of {run.label}" if run is not None else ""
        note = "" if self.layout_.records_elements else \
            "; too many to record step by step: the loss is recorded, not the elements"
        self.hint.setText(f"{total:,} elements{who}" +
                          (f"; the first {MAX_LINES} shown" if total > len(shown) else "") + note)

    def _initial_range(self, landscape: dict[str, list[float]] | None) -> tuple:
        pts = self.base[[i for _, i in self.axes]]
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
        """Ask for the loss over the visible range (the answer comes to show_landscape)."""
        if self.layout_ is None or self.mode not in ("1d", "2d"):
            return
        (x0, x1), (y0, y1) = self.item.getViewBox().viewRange()
        key = (x0, x1) if self.mode == "1d" else (x0, x1, y0, y1)
        if key == self._landscape_key:
            return  # only the y range moved in 1-D: the curve is still right
        self._landscape_key = key
        self._token += 1
        idx = [i for _, i in self.axes]
        if self.mode == "1d":
            self.landscapeRequested.emit(self.base, idx, np.linspace(x0, x1, GRID_1D), None,
                                         self._token)
        else:
            self.landscapeRequested.emit(self.base, idx, np.linspace(x0, x1, GRID_2D),
                                         np.linspace(y0, y1, GRID_2D), self._token)
            self.update_basins()

    def show_landscape(self, grid: LandscapeGrid) -> None:
        """Draw an answer to the latest request (older ones are dropped)."""
        if grid.token != self._token:
            return
        if self.mode == "1d" and grid.ys is None:
            self.landscape_curve.setData(grid.xs, grid.z, connect="finite")
            self._autorange_y(grid.z)
        elif self.mode == "2d" and grid.ys is not None:
            self.z = grid.z
            x0, x1, y0, y1 = grid.xs[0], grid.xs[-1], grid.ys[0], grid.ys[-1]
            self._image_rect = QRectF(x0, y0, x1 - x0, y1 - y0)
            self._draw_image(self._image_rect)

    # --- basin map ----------------------------------------------------------------------

    @property
    def basins_shown(self) -> bool:
        return self.mode == "2d" and self.basinsCheck.isChecked()

    def update_basins(self, force: bool = False) -> None:
        """Ask for the basin map over the visible range (``force``: also when the range is
        the same, because the optimizer's settings changed)."""
        if not self.basins_shown:
            return
        (x0, x1), (y0, y1) = self.item.getViewBox().viewRange()
        key = (x0, x1, y0, y1, self.basin_grid)
        if key == self._basin_key and not force:
            return
        self._basin_key = key
        self._basin_token += 1
        self._basin_hint = "basin map: computing…"
        self.hint.setText(self._hint_2d())
        self.basinsRequested.emit(self.base, [i for _, i in self.axes], (x0, x1), (y0, y1),
                                  self.basin_grid, self._basin_token)

    def show_basins(self, bmap, token: int, done: float) -> None:
        """Draw an answer to the latest basin request (``done``: the share of the grid
        computed; the rest is filled in from a coarse grid)."""
        if token != self._basin_token or not self.basins_shown:
            return
        self.basins.show(bmap, done, self.basin_title)
        what = self.basins.describe()
        self._basin_hint = (f"basin map {done:.0%}: {what}…" if done < 1 else
                            f"{what}; click a start to run from there")
        self.hint.setText(self._hint_2d())

    def basins_failed(self, text: str) -> None:
        self._basin_hint = text
        self.hint.setText(self._hint_2d())
        self.hint.setToolTip(text)  # the header clips a long reason

    def _on_basins_toggled(self, on: bool) -> None:
        self.basins.set_visible(on)
        self._halo_paths()
        self._basin_key = None
        if on:
            self.update_basins()
        else:
            self._basin_token += 1
            self._basin_hint = ""
            self.hint.setText(self._hint_2d())
            self.basinsDropped.emit()

    def _hint_2d(self) -> str:
        if self._basin_hint:
            return self._basin_hint
        return ("the other elements held at their initial values; click to start there"
                if self.sliced else "click: start there · drag: pan · wheel: zoom")

    # --- curvature ----------------------------------------------------------------------

    def show_curvature(self, values: np.ndarray | None, vectors: np.ndarray | None) -> None:
        """The Hessian's eigenvalues and eigenvectors (columns) at the selected run's point;
        None: unknown."""
        if values is None or vectors is None or np.shape(vectors) != (2, 2):
            self.arrows.set(None, None)
        else:
            self.arrows.set(np.asarray(values, dtype=np.float64),
                            np.asarray(vectors, dtype=np.float64))
        self._draw_arrows()

    def _on_curvature_toggled(self, on: bool) -> None:
        self._draw_arrows()
        self.curvatureToggled.emit(on)

    def _draw_arrows(self) -> None:
        marker = self.current_marker
        # the Hessian is the live point's: not drawn at a step the timeline went back to
        if self.mode != "2d" or not self.curvatureCheck.isChecked() or marker is None \
                or self.cursor_row is not None:
            self.arrows.hide()
            return
        self.arrows.draw(marker.point, self.item.getViewBox().viewPixelSize())

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
            # Steep or many-welled (Rosenbrock, Himmelblau): most of the map sits low in the
            # range, so linear colours would paint it nearly all one colour.
            median = float(np.median(finite))
            steep = (median - lo) < 0.2 * (hi - lo)
            blocked = self.logColorsCheck.blockSignals(True)
            self.logColorsCheck.setChecked(steep)
            self.logColorsCheck.blockSignals(blocked)
            # decided once per problem: a zoom into a flat part must not switch it back
            self._auto_log = False
        if self.logColorsCheck.isChecked():
            eps = max(1e-12, 1e-9 * (hi - lo))
            shown = np.log10(z - lo + eps)
            label = "log10(loss − min)"
        else:
            shown = z
            label = "loss"
        shown = np.where(np.isfinite(shown), shown, np.nanmax(shown[np.isfinite(shown)]))
        levels = (float(shown.min()), float(shown.max()) if shown.max() > shown.min()
                  else float(shown.min()) + 1)
        self.image.setImage(shown, levels=levels)
        self.image.setRect(rect)
        if self.colorbar is not None:
            self.colorbar.setLevels(levels)
            self.colorbar.axis.setLabel(label)
        i, j = np.unravel_index(np.nanargmin(np.where(np.isfinite(z), z, np.inf)), z.shape)
        self.min_marker.move_to(rect.left() + rect.width() * i / max(1, z.shape[0] - 1),
                                rect.top() + rect.height() * j / max(1, z.shape[1] - 1))
        self.min_marker.setToolTip(f"the lowest loss on this map: {z[i, j]:.6g}")
        self._draw_contours(shown, levels, rect)

    def _draw_contours(self, shown: np.ndarray, levels: tuple[float, float], rect: QRectF) -> None:
        for curve in self.contours:
            self.item.removeItem(curve)
        self.contours = []
        if not self.contoursCheck.isChecked():
            return
        transform = QTransform()
        transform.translate(rect.left(), rect.top())
        transform.scale(rect.width() / max(1, shown.shape[0] - 1),
                        rect.height() / max(1, shown.shape[1] - 1))
        for level in np.linspace(*levels, 12)[1:-1]:  # in the colour scale's own units
            curve = pg.IsocurveItem(data=shown, level=float(level), pen=pg.mkPen((255, 255, 255, 150), width=1))
            curve.setTransform(transform)
            curve.setZValue(-5)
            self.item.addItem(curve, ignoreBounds=True)
            self.contours.append(curve)

    def _on_contours_toggled(self, _on: bool) -> None:
        if self.z is not None:
            self._draw_image(self._image_rect)

    def _on_log_colors_toggled(self, _on: bool) -> None:
        self._auto_log = False
        if self.z is not None:
            self._draw_image(self._image_rect)

    # --- live data ----------------------------------------------------------------------

    def refresh(self, runs: list[Run], selected: int | None,
                step_limit: int | None = None) -> None:
        """Redraw every visible run's path and marker from its history (``step_limit``:
        where the runs end, so the parameters plot's axis need not go past it)."""
        if self.layout_ is None:
            return
        self.selected = selected
        idx = [i for _, i in self.axes]
        if self.mode == "lines":
            run = next((r for r in runs if r.id == selected), None)
            if run is None:
                return
            steps, rows = run.history.steps, run.history.params
            if not run.history.records_elements:
                return  # the hint says why there is nothing to draw
            keep = thin(steps, MAX_PATH_POINTS)
            for line, i in zip(self.lines, idx):
                line.setData(steps[keep], rows[keep, i])
            if len(steps):
                vb = self.item.getViewBox()
                (_x0, _x1), (y0, y1) = vb.viewRange()
                last = float(steps[-1])
                right = max(10.0, 2 ** math.ceil(math.log2(max(last, 1.0) * 1.05)))
                if step_limit and last < step_limit < right:
                    right = float(step_limit)  # the run ends there, as on the loss plot
                new_y = sticky_range((y0, y1), *finite_bounds(rows[:, idx[:MAX_LINES]]))
                self._set_range(([0, right], list(new_y) if new_y else [y0, y1]), both=True)
            else:
                self._set_range(([0, 10], [-1, 1]), both=True)
            return
        everything = []
        starts = set()
        visible = [r for r in runs if r.settings.visible]
        # Dots show each step in slow motion; with many runs they cost more than they tell.
        self._dots = len(visible) <= 2
        budget = max(500, MAX_PATH_POINTS // max(1, len(visible)))
        for run in runs:
            drawing = self.drawings.get(run.id)
            if drawing is None or not run.settings.visible:
                continue
            history = run.history
            rows = history.params if len(history) else np.zeros((0, len(run.values)))
            start = rows[0] if len(rows) else run.values
            starts.add(tuple(start[idx]))
            # the kept steps, then the point now (its values after the last step recorded)
            keep = thin(rows, budget)
            if self.mode == "2d":
                pts = np.vstack([rows[keep][:, idx], run.values[idx][None, :]])
                self._set_path(drawing, pts[:, 0], pts[:, 1], 5)
                drawing.marker.move_to(run.values[idx[0]], run.values[idx[1]])
                everything.append(pts)
            else:
                xs = np.append(rows[keep, idx[0]], run.values[idx[0]])
                losses = np.append(history.loss[keep], run.loss)
                known = np.isfinite(losses)  # an unknown loss (not evaluated yet) is not drawn
                xs, losses = xs[known], losses[known]
                self._set_path(drawing, xs, losses, 6)
                drawing.marker.move_to(run.values[idx[0]], run.loss)
                everything.append(xs[:, None] if len(xs) else run.values[idx][None, :])
        if len(starts) == 1:
            (s,) = starts
            if self.mode == "2d":
                self.start_marker.move_to(s[0], s[1])
            else:
                run = next((r for r in runs if r.id in self.drawings and r.settings.visible), None)
                first = run.history.loss[0] if run is not None and len(run.history) else (
                    run.loss if run is not None else math.nan)
                self.start_marker.move_to(s[0], first)
        else:
            self.start_marker.move_to(math.nan, math.nan)
        if everything and not self._user_range:
            self._grow_range(np.vstack(everything))
        if self.mode == "2d":
            self._draw_arrows()
        self._apply_cursor()
        self._place_legend()

    # --- the timeline's step --------------------------------------------------------------

    def set_cursor(self, row: np.ndarray | None, loss: float = math.nan,
                   step: int | None = None) -> None:
        """Show the timeline's step: the selected run's parameters ``row`` (None: live),
        its loss and step number. Drawn at the next :meth:`refresh` (and now)."""
        self.cursor_row = None if row is None else np.asarray(row, dtype=np.float64)
        self.cursor_loss, self.cursor_step = float(loss), step
        self._apply_cursor()

    def _apply_cursor(self) -> None:
        row = self.cursor_row
        if self.mode == "lines":
            self.cursor_line.setVisible(row is not None and self.cursor_step is not None)
            if self.cursor_step is not None:
                self.cursor_line.setValue(self.cursor_step)
            return
        self.cursor_line.hide()
        marker = self.current_marker
        if row is None or marker is None or self.layout_ is None or len(row) != self.layout_.n_params:
            if self.mode == "2d":
                self._draw_arrows()
            self._draw_state()
            return
        idx = [i for _, i in self.axes]
        if self.mode == "2d":
            marker.move_to(row[idx[0]], row[idx[1]])
        else:
            marker.move_to(row[idx[0]], self.cursor_loss)
        if self.mode == "2d":
            self._draw_arrows()
        self._draw_state()

    def show_step(self, view) -> None:
        """The vectors of one update (a StepView from the step inspector), or None."""
        self.step_view = view
        self._draw_state()

    def _on_arrows_check_toggled(self, on: bool) -> None:
        self._draw_state()
        self.arrowsToggled.emit(on)

    def _draw_state(self) -> None:
        view = self.step_view
        if self.mode not in ("1d", "2d") or not self.arrowsCheck.isChecked() or view is None \
                or self.layout_ is None or len(view.point) != self.layout_.n_params:
            self.state_arrows.hide()
            return
        idx = [i for _, i in self.axes]
        if self.mode == "2d":
            point = (view.point[idx[0]], view.point[idx[1]])
            vectors = {name: vec[idx] for name, vec in view.arrows.items()}
            rates = view.rates[idx] if view.rates is not None else None
        else:
            point = (view.point[idx[0]], view.loss)
            vectors = {name: np.array([vec[idx[0]], 0.0]) for name, vec in view.arrows.items()}
            rates = None
        self.state_arrows.draw(point, vectors, rates, view.rates_name,
                               self.item.getViewBox().viewPixelSize())

    def _set_path(self, drawing: _RunDrawing, x: np.ndarray, y: np.ndarray, size: int) -> None:
        # Dots show each step in slow motion; on long paths they would cost more than the line.
        few = len(x) <= 300 and self._dots
        if few:
            finite = np.isfinite(x) & np.isfinite(y)
            drawing.dots.setData(x[finite], y[finite], size=size)
        if drawing.dots.isVisible() != few:
            drawing.dots.setVisible(few)
        drawing.path.setData(x, y, connect="finite")

    def _grow_range(self, pts: np.ndarray) -> None:
        """Widen the view when a path leaves it (unless the user chose a range)."""
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
        """Fit the range to the paths (and the start), with some margin."""
        if self.mode not in ("1d", "2d"):
            return
        idx = [i for _, i in self.axes]
        if points is None:
            parts = []
            for drawing in self.drawings.values():
                xs, ys = drawing.path.getData()
                if xs is not None and len(xs) and drawing.path.isVisible():
                    parts.append(np.column_stack([xs, ys])[:, :len(idx)])
            points = np.vstack(parts) if parts else self.base[idx][None, :]
            if self.mode == "1d":
                points = points[:, :1]
        points = points[np.isfinite(points).all(axis=1)]
        points = np.vstack([points, self.base[idx][None, :]])
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
            if self.mode == "2d":
                self._draw_arrows()  # they keep their length in pixels
            self._draw_state()
            self._place_legend()

    def _on_view_range_changed_manually(self, *_args) -> None:
        if self._updating_range:
            return
        self._user_range = True
        if self.sliced:
            return  # the session keeps the range of the first two elements' landscape
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
        event.accept()
        if self.basins_shown:  # a new run from there, not a new start for every run
            self.basin_click_at(point.x(), point.y())
            return
        self.click_at(point.x(), point.y() if self.mode == "2d" else None)

    def basin_click_at(self, x: float, y: float) -> None:
        """A click on the basin map: the start of its pixel becomes a new run (outside the
        map, the point clicked)."""
        start = self.base.copy()
        idx = [i for _, i in self.axes]
        x, y = self.basins.start_near(x, y) or (x, y)
        start[idx[0]], start[idx[1]] = x, y
        self.basinStartChosen.emit(start, (x, y))

    def click_at(self, x: float, y: float | None = None) -> None:
        """Choose a start point as a click at (x, y) in data coordinates would."""
        start = self.base.copy()
        idx = [i for _, i in self.axes]
        start[idx[0]] = x
        if y is not None and len(idx) > 1:
            start[idx[1]] = y
        self.startPointChosen.emit(start)

    def freeze_range(self) -> None:
        """Keep the current range (as if the user had chosen it)."""
        self._user_range = True
