"""Figures for papers and slides, drawn by the window's own view classes.

Every plot is drawn by the same views the window uses, so a figure made headless (``gdviz
run --plot ...``) looks like the window. Images come from ``QWidget.render``
(vector-scaled, so a 2x PNG is crisp, and the same path serves SVG through QSvgGenerator:
pyqtgraph's SVG exporter fails on plain QGraphicsItems such as our markers). Every write is
atomic: a failure leaves no half-written file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter
from PySide6.QtWidgets import QApplication, QGraphicsView, QWidget

from ..core.analysis.landscape import LANDSCAPE_VALUES, affordable_axes, landscape_grid
from ..core.errors import GdvizError
from ..core.model import Run, RunSet
from ..core.problem import Problem
from ..qt.rendering import paint_image, paint_svg, save_image, save_svg


def _draw_widget(widget: QWidget) -> Callable[[QPainter, QRectF], None]:
    """Paint ``widget`` into a target rectangle. A graphics view redraws its scene into the
    target (vector-scaled, so a 2x figure is crisp); other widgets are scaled as drawn."""
    w, h = widget.width(), widget.height()

    def draw(painter: QPainter, target: QRectF) -> None:
        if isinstance(widget, QGraphicsView):
            widget.render(painter, target, QRect(0, 0, w, h))
        else:
            painter.scale(target.width() / max(w, 1), target.height() / max(h, 1))
            widget.render(painter, QPoint(0, 0))

    return draw


TITLE_FONT = QFont("DejaVu Sans", 10)
TITLE_H = 24  # pixels at scale 1: one line saying what the figure shows


def _with_title(draw: Callable[[QPainter, QRectF], None], title: str, width: float,
                height: float) -> Callable[[QPainter, QRectF], None]:
    """A drawing with a title line above it: a slide says what it shows."""
    if not title:
        return draw

    def titled(painter: QPainter, target: QRectF) -> None:
        k = target.height() / (height + TITLE_H)
        painter.save()
        painter.scale(k, k)
        painter.setFont(TITLE_FONT)
        painter.setPen(QColor("#111111"))
        metrics = QFontMetricsF(TITLE_FONT)
        shown = metrics.elidedText(title, Qt.TextElideMode.ElideRight, width - 16)
        painter.drawText(QRectF(8, 0, width - 16, TITLE_H),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, shown)
        painter.restore()
        painter.save()
        painter.translate(0, TITLE_H * k)
        draw(painter, QRectF(0, 0, target.width(), target.height() - TITLE_H * k))
        painter.restore()

    return titled


def widget_image(widget: QWidget, scale: float = 2.0, title: str = "") -> QImage:
    """``widget`` drawn into an image ``scale`` times its size (with a title line above)."""
    w, h = widget.width(), widget.height()
    extra = TITLE_H if title else 0
    return paint_image(w, h + extra, scale, _with_title(_draw_widget(widget), title, w, h))


def widget_svg(widget: QWidget, title: str = "") -> bytes:
    w, h = widget.width(), widget.height()
    extra = TITLE_H if title else 0
    return paint_svg(w, h + extra, title or "gdviz", _with_title(_draw_widget(widget), title, w, h))


def save_widget(widget: QWidget, path: str | Path, scale: float = 2.0, title: str = "") -> None:
    """Save ``widget`` as PNG (at ``scale``) or SVG, chosen by the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        save_image(widget_image(widget, scale, title), path)
    elif suffix == ".svg":
        save_svg(widget_svg(widget, title), path)
    else:
        raise GdvizError(f"cannot tell the image format from '{Path(path).name}'; use .png or .svg")


def figure_title(function: str, loss: str, runs: list, steps: int | None = None) -> str:
    """What a figure shows, in one line: the function, the loss, the run and its step."""
    text = f"y = {function}" + ("" if loss.strip() == "y" else f",  loss = {loss}")
    if len(runs) == 1:
        run = runs[0]
        text += f",  {run.label},  step {run.step if steps is None else steps:,}"
    elif runs:
        text += f",  {len(runs)} runs,  step {max(r.step for r in runs) if steps is None else steps:,}"
    return text


class _Prefix:
    """The first ``n`` rows of a run's history, shaped like a run (for animation frames)."""

    def __init__(self, run: Run, n: int, last: bool):
        self.id, self.settings, self.label = run.id, run.settings, run.label
        history = run.history
        self.history = _Rows(history, n)
        if last or n >= len(history):
            self.values, self.loss = run.values, run.loss
        else:
            self.values, self.loss = history.params[n], float(history.loss[n])


class _Rows:
    def __init__(self, history, n: int):
        self.steps, self.loss = history.steps[:n], history.loss[:n]
        self.params, self.grads = history.params[:n], history.grads[:n]

    def __len__(self) -> int:
        return len(self.steps)


class OffscreenFigures:
    """The loss and trajectory views of a set of runs, drawn without a window: an export
    source (see :mod:`gdviz.export.registry`).

    ``problem`` computes the landscape and the graph here; the window passes ``compute``
    instead, a function that has its worker thread (the owner of torch) do it."""

    def __init__(self, problem: Problem | None, runset: RunSet, landscape: dict | None = None,
                 size: tuple[int, int] = (640, 480), compute=None):
        from ..qt.loss_plot import LossPlotView
        from ..qt.trajectory_view import TrajectoryView

        self.problem, self.runset = problem, runset
        self.problem_text = (problem.function_text, problem.loss_text) if problem is not None \
            else ("", "y")
        # compute(fn) runs fn(problem) where torch may be used, and returns its result
        self.compute = compute or (lambda fn: fn(problem))
        self.window = None
        self.size = size
        self.data_view = None  # made when the data is drawn
        self.loss = LossPlotView()
        self.trajectory = TrajectoryView()
        for view in (self.loss, self.trajectory):
            view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
            view.resize(*size)
            view.show()
        self.trajectory.landscapeRequested.connect(self._on_landscape_requested)
        self.trajectory.configure(runset.layout, runset.initial, landscape)
        runs, selected = list(runset), runset.selected_id
        self.loss.set_runs(runs, selected)
        self.trajectory.set_runs(runs, selected)
        self.loss.refresh(runs, selected, runset.steps)
        self.trajectory.refresh(runs, selected)
        if landscape is None:
            self.trajectory.fit_to_path()
            self.trajectory.update_landscape()
        self.trajectory.refresh(runs, selected)
        settle()

    def _on_landscape_requested(self, base, indices, xs, ys, token) -> None:
        # Synchronously: a figure is drawn once, with its landscape.
        # a figure waits for its landscape once: four times the window's budget
        grid = self.compute(lambda problem: landscape_grid(
            problem, base, indices,
            *affordable_axes(xs, ys, problem.data_rows, 4 * LANDSCAPE_VALUES), token))
        self.trajectory.show_landscape(grid)

    # --- the export source --------------------------------------------------------------

    @property
    def loss_plot(self) -> QWidget:
        settle()
        return self.loss.plot

    @property
    def trajectory_plot(self) -> QWidget:
        settle()
        return self.trajectory.plot

    @property
    def trajectory_axes(self) -> list[tuple[str, int]]:
        return self.trajectory.axes

    def data_picture(self):
        """The data and each visible run's model (drawn in the data view): (FitPicture,
        runs)."""
        from ..core.analysis.fit import fit_picture
        from ..qt.data_view import DataView

        runs = self.runset.visible() or [self.selected]
        if self.problem is not None and self.problem.data is None:
            raise GdvizError("there is no data to draw: give --data FILE.csv or --dataset NAME")
        rows = np.stack([np.asarray(r.values, dtype=np.float64) for r in runs])
        picture = self.compute(lambda problem: fit_picture(problem, rows))
        if self.data_view is None:
            self.data_view = DataView()
            self.data_view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
            self.data_view.resize(*self.size)
            self.data_view.show()
        self.data_view.show_picture(picture, runs, self.runset.selected_id)
        settle()
        return picture, runs

    @property
    def data_plot(self) -> QWidget:
        if self.data_view is None:
            self.data_picture()
        settle()
        return self.data_view.plot

    @property
    def title(self) -> str:
        runs = [r for r in self.runset if r.settings.visible] or [self.selected]
        return figure_title(self.problem_text[0], self.problem_text[1], runs)

    @property
    def selected(self) -> Run:
        return self.runset.selected

    def graph(self):
        from ..core.graph_capture import capture_graph
        values = self.runset.layout.unflatten(self.selected.values)
        return self.compute(lambda problem: capture_graph(problem, values))

    def save(self, kind: str, path: str | Path, scale: float = 2.0) -> None:
        from .registry import export
        export(self, kind, path, scale)

    def close(self) -> None:
        for view in (self.loss, self.trajectory, self.data_view):
            if view is None:
                continue
            view.close()
            view.deleteLater()

    # --- animation ----------------------------------------------------------------------

    def animation_frames(self, count: int) -> Iterator[np.ndarray]:
        """``count`` frames of the runs growing step by step: loss curves beside
        trajectories, on fixed axes (those of the whole runs), as RGB arrays."""
        runs = [r for r in self.runset if r.settings.visible] or [self.selected]
        longest = max(len(r.history) for r in runs)
        self.loss.auto_range = False
        self.trajectory.freeze_range()
        selected = self.runset.selected_id
        try:
            for k in range(1, count + 1):
                rows = max(1, round(longest * k / count)) if longest else 0
                prefixes = [_Prefix(r, rows, k == count) for r in runs]
                self.loss.refresh(prefixes, selected, self.runset.steps)
                self.trajectory.refresh(prefixes, selected)
                settle()
                yield side_by_side(widget_image(self.loss.plot, 1.0),
                                   widget_image(self.trajectory.plot, 1.0))
        finally:
            self.loss.auto_range = True


def settle() -> None:
    """Let pending layout and update events run: pyqtgraph places its items (the color bar,
    axes) lazily, and an offscreen widget gets no other chance to."""
    QApplication.sendPostedEvents()
    QApplication.processEvents()


def side_by_side(left: QImage, right: QImage) -> np.ndarray:
    """Two images next to each other as one RGB array whose sides are multiples of 16
    (what video codecs want)."""
    a, b = qimage_to_array(left), qimage_to_array(right)
    h = max(a.shape[0], b.shape[0])
    w = a.shape[1] + b.shape[1]
    H, W = -(-h // 16) * 16, -(-w // 16) * 16
    out = np.full((H, W, 3), 255, np.uint8)
    out[:a.shape[0], :a.shape[1]] = a
    out[:b.shape[0], a.shape[1]:a.shape[1] + b.shape[1]] = b
    return out


def qimage_to_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return data.reshape(h, image.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()

