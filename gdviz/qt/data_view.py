"""The data and the fit: the data's points with each visible run's model over them.

It draws a :class:`gdviz.core.analysis.fit.FitPicture` (computed on the worker). One input
column: the points (input against target) and one curve per run, in the run's colour. Two
input columns: the points coloured by their target over a heat map of the selected run's
prediction and, for a classifier (values between 0 and 1), every run's p = 0.5 line: the
decision boundary as it forms.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..core.model import Run
from .plot_style import legend_label, legend_style, new_plot

#: blue (0) through white to red (1): two classes and the probability between them
CLASSES = pg.ColorMap([0.0, 0.5, 1.0], [(33, 102, 172), (247, 247, 247), (178, 24, 43)])


class DataView(QWidget):
    """See the module docstring. ``show_picture`` draws; ``clear`` forgets the data."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("dataView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Data and fit</b>"))
        self.hint = QLabel(objectName="dataHint")
        self.hint.setStyleSheet("color: #555;")
        self.hint.setWordWrap(True)
        header.addWidget(self.hint, 1)
        layout.addLayout(header)
        self.plot, self.item = new_plot(grid_alpha=0.2)
        layout.addWidget(self.plot, 1)
        self.legend = self.item.addLegend(offset=(10, 10), **legend_style())
        self.legend.hide()  # until there is something to name
        self.image = pg.ImageItem()
        self.image.setZValue(-10)
        self.item.addItem(self.image)
        self.points = pg.ScatterPlotItem(size=6, pxMode=True)
        self.points.setZValue(5)
        self.item.addItem(self.points)
        self.curves: dict[int, pg.PlotCurveItem] = {}
        self.boundaries: dict[int, pg.IsocurveItem] = {}
        self.picture = None
        self._points_key: tuple | None = None
        self.clear()

    # --- drawing -------------------------------------------------------------------------

    def clear(self, reason: str = "") -> None:
        """No picture (a new problem): ``reason`` says why, if there is one."""
        for curve in self.curves.values():
            self.item.removeItem(curve)
        for line in self.boundaries.values():
            _drop(line)
        self.curves, self.boundaries = {}, {}
        self.points.clear()
        self.image.clear()
        self.legend.clear()
        self.legend.hide()  # empty, it would still draw its box
        self.picture, self._points_key = None, None
        self.hint.setText(reason)

    def show_reason(self, reason: str) -> None:
        self.clear(reason)

    def show_picture(self, picture, runs: list[Run], selected: int | None) -> None:
        """Draw ``picture``, whose values are those of ``runs`` in that order."""
        if picture.kind == "none":
            self.clear(picture.reason)
            return
        # new points, axes or runs: everything is drawn anew (the legend names the runs)
        key = self._key(picture) + tuple((r.id, r.label, r.settings.color) for r in runs)
        fresh = self._points_key != key
        if fresh:
            self.clear()
            self._points_key = key
        self.picture = picture
        if picture.kind == "curve":
            self._show_curves(picture, runs, fresh)
        else:
            self._show_field(picture, runs, selected, fresh)
        if fresh:
            self.fit_view()

    @staticmethod
    def _key(picture) -> tuple:
        """What the points and axes depend on: a new key redraws them."""
        first = next(iter(picture.points.values()), np.zeros(0))
        return (picture.kind, tuple(picture.inputs), tuple(picture.targets), len(first),
                float(first[:1].sum()), float(first[-1:].sum()),
                tuple(float(g[0]) for g in picture.grid) + tuple(float(g[-1]) for g in picture.grid))

    def _rows_note(self, picture) -> str:
        drawn = len(next(iter(picture.points.values()), []))
        rows = picture.rows
        return (f"{rows:,} rows" if drawn == rows else f"{drawn:,} of {rows:,} rows drawn")

    def _show_curves(self, picture, runs: list[Run], fresh: bool) -> None:
        x = picture.inputs[0]
        target = picture.targets[0] if picture.targets else None
        if fresh:
            self.item.setLabel("bottom", x)
            self.item.setLabel("left", target or "y")
            if target is not None:
                self.points.setData(picture.points[x], picture.points[target],
                                    brush=pg.mkBrush(60, 60, 60, 150), pen=None, size=6)
                self.legend.show()
                self.legend.addItem(self.points, f"data ({target} against {x})")
            self.hint.setText(f"{self._rows_note(picture)}; lines: y of each run over {x}")
        xs = picture.grid[0]
        wanted = {r.id for r in runs}
        for run_id in [i for i in self.curves if i not in wanted]:
            self.item.removeItem(self.curves.pop(run_id))
        for k, run in enumerate(runs):
            curve = self.curves.get(run.id)
            if curve is None:
                curve = self.curves[run.id] = pg.PlotCurveItem()
                self.item.addItem(curve)
                self.legend.addItem(curve, legend_label(run.label))
            curve.setPen(pg.mkPen(run.settings.color or "#1f77b4", width=2))
            curve.setData(xs, picture.values[k], connect="finite")

    def _show_field(self, picture, runs: list[Run], selected: int | None, fresh: bool) -> None:
        x, y = picture.inputs
        gx, gy = picture.grid
        values = picture.values
        classifier = picture.probability or bool(
            np.nanmin(values, initial=0.0) >= 0 and np.nanmax(values, initial=1.0) <= 1)
        target = picture.targets[0] if picture.targets else None
        index = next((k for k, r in enumerate(runs) if r.id == selected), 0)
        if classifier:
            levels, cmap = (0.0, 1.0), CLASSES
        else:
            finite = values[np.isfinite(values)]
            levels = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if target is not None:
                t = picture.points[target]
                levels = (min(levels[0], float(t.min())), max(levels[1], float(t.max())))
            cmap = pg.colormap.get("viridis")
        self.image.setColorMap(cmap)
        # the picture's rows follow y, its columns x; ImageItem wants [x, y]
        self.image.setImage(values[index].T, levels=levels, autoLevels=False)
        self.image.setOpacity(0.75)
        self.image.setRect(QRectF(gx[0], gy[0], gx[-1] - gx[0], gy[-1] - gy[0]))
        if fresh:
            self.item.setLabel("bottom", x)
            self.item.setLabel("left", y)
            if target is not None:
                t = picture.points[target]
                span = (levels[1] - levels[0]) or 1.0
                brushes = [pg.mkBrush(c) for c in cmap.map((t - levels[0]) / span, "qcolor")]
                self.points.setData(picture.points[x], picture.points[y], brush=brushes,
                                    pen=pg.mkPen("#222", width=0.8), size=7)
                self.legend.show()
                self.legend.addItem(self.points, f"data, coloured by {target}")
            what = ("colour: the selected run's prediction (blue 0, red 1); lines: where each "
                    "run predicts 0.5" if classifier else "colour: the selected run's y")
            self.hint.setText(f"{self._rows_note(picture)}; {what}")
        wanted = {r.id for r in runs} if classifier else set()
        for run_id in [i for i in self.boundaries if i not in wanted]:
            _drop(self.boundaries.pop(run_id))
        if not classifier:
            return
        for k, run in enumerate(runs):
            line = self.boundaries.get(run.id)
            pen = pg.mkPen(run.settings.color or "#1f77b4", width=2.5)
            if line is None:
                line = self.boundaries[run.id] = pg.IsocurveItem(level=0.5, pen=pen)
                line.setParentItem(self.image)  # in the image's coordinates
                line.setZValue(10)
                self.legend.addItem(pg.PlotDataItem(pen=pen), f"{legend_label(run.label)}: p = 0.5")
            line.setPen(pen)
            line.setData(np.nan_to_num(values[k].T, nan=0.5), level=0.5)

    def fit_view(self) -> None:
        """The range of the points and the grid."""
        picture = self.picture
        if picture is None:
            return
        vb = self.item.getViewBox()
        if picture.kind == "curve":
            x0, x1 = picture.grid[0][0], picture.grid[0][-1]
            target = picture.targets[0] if picture.targets else None
            ys = picture.points[target] if target is not None else picture.values[
                np.isfinite(picture.values)]
            if len(ys):
                lo, hi = float(np.min(ys)), float(np.max(ys))
                pad = 0.1 * (hi - lo) or 1.0
                vb.setRange(xRange=(x0, x1), yRange=(lo - pad, hi + pad), padding=0)
        else:
            gx, gy = picture.grid
            vb.setRange(xRange=(gx[0], gx[-1]), yRange=(gy[0], gy[-1]), padding=0)


def _drop(line: pg.IsocurveItem) -> None:
    """Take a boundary line off the picture (it hangs on the image, not the plot)."""
    scene = line.scene()
    line.setParentItem(None)
    if scene is not None:
        scene.removeItem(line)
