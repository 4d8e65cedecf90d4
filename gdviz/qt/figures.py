"""Figures for papers and slides: PNG, SVG, the data behind a plot, and animations.

Every plot is drawn by the same view classes the window uses, so a figure made headless
(``gdviz run --plot ...``) looks like the window. Images come from ``QWidget.render``
(vector-scaled, so a 2x PNG is crisp, and the same path serves SVG through QSvgGenerator:
pyqtgraph's SVG exporter fails on plain QGraphicsItems such as our markers). Every write is
atomic: a failure leaves no half-written file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QGraphicsView, QWidget

from ..core.atomic import atomic_path, atomic_write
from ..core.errors import GdvizError
from ..core.history import ColumnLayout, History
from ..core.problem import Problem
from .rendering import paint_image, paint_svg, save_image, save_svg

ANIMATION_SUFFIXES = (".gif", ".mp4")


def _draw_widget(widget: QWidget) -> Callable[[QPainter, QRectF], None]:
    """Paint ``widget`` into a target rectangle. A graphics view redraws its scene into the
    target (vector-scaled, so a 2x figure is crisp); other widgets are scaled as drawn."""
    w, h = widget.width(), widget.height()

    def draw(painter: QPainter, target: QRectF) -> None:
        if isinstance(widget, QGraphicsView):
            widget.render(painter, target, QRect(0, 0, w, h))
        else:
            painter.scale(target.width() / max(w, 1), target.height() / max(h, 1))
            widget.render(painter)

    return draw


def widget_image(widget: QWidget, scale: float = 2.0) -> QImage:
    """``widget`` drawn into an image ``scale`` times its size."""
    return paint_image(widget.width(), widget.height(), scale, _draw_widget(widget))


def widget_svg(widget: QWidget, title: str = "gdviz") -> bytes:
    return paint_svg(widget.width(), widget.height(), title, _draw_widget(widget))


def save_widget(widget: QWidget, path: str | Path, scale: float = 2.0) -> None:
    """Save ``widget`` as PNG (at ``scale``) or SVG, chosen by the suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        save_image(widget_image(widget, scale), path)
    elif suffix == ".svg":
        save_svg(widget_svg(widget), path)
    else:
        raise GdvizError(f"cannot tell the image format from '{Path(path).name}'; use .png or .svg")


def save_table(columns: list[str], rows: np.ndarray, path: str | Path) -> None:
    """Write rows under a header as CSV, atomically."""
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([repr(float(v)) if not float(v).is_integer() else int(v) for v in row])


def plot_table(kind: str, history: History, axes: list[tuple[str, int]]) -> tuple[list[str], np.ndarray]:
    """The data behind a plot: ``loss`` (step, loss) or ``trajectory`` (step, loss and the
    plotted parameter elements)."""
    if kind == "loss":
        return ["step", "loss"], np.column_stack([history.steps, history.loss])
    names = [name for name, _ in axes]
    index = [i for _, i in axes]
    return (["step", "loss", *names],
            np.column_stack([history.steps, history.loss, history.params[:, index]]))


class _Prefix:
    """The first ``n`` rows of a history, shaped like one (for animation frames)."""

    def __init__(self, history: History, n: int):
        self.steps = history.steps[:n]
        self.loss = history.loss[:n]
        self.params = history.params[:n]
        self.grads = history.grads[:n]

    def __len__(self) -> int:
        return len(self.steps)


class OffscreenFigures:
    """The loss, trajectory and graph views of one run, drawn without a window."""

    def __init__(self, problem: Problem, layout: ColumnLayout, history: History,
                 start: np.ndarray, current: np.ndarray, current_loss: float,
                 landscape: dict | None = None, step_limit: int | None = None,
                 size: tuple[int, int] = (640, 480)):
        from .loss_plot import LossPlotView
        from .trajectory_view import TrajectoryView

        self.problem, self.layout, self.history = problem, layout, history
        self.start, self.current, self.current_loss = start, current, current_loss
        self.step_limit = step_limit
        self.loss = LossPlotView()
        self.trajectory = TrajectoryView()
        for view in (self.loss, self.trajectory):
            view.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
            view.resize(*size)
            view.show()
        self.trajectory.configure(problem, layout, start, landscape)
        self.loss.refresh(history, step_limit)
        self.trajectory.refresh(history, current, current_loss, start)
        if landscape is None:
            self.trajectory.fit_to_path()
            self.trajectory.update_landscape()
        self.trajectory.refresh(history, current, current_loss, start)
        settle()

    def close(self) -> None:
        for view in (self.loss, self.trajectory):
            view.close()
            view.deleteLater()

    def save(self, kind: str, path: str | Path, scale: float = 2.0) -> None:
        """``kind`` is loss, trajectory or graph; the format comes from the suffix (.png,
        .svg, and .csv for the data behind a plot or .json/.dot for the graph)."""
        suffix = Path(path).suffix.lower()
        if kind == "graph":
            self._save_graph(path, scale)
            return
        if kind not in ("loss", "trajectory"):
            raise GdvizError(f"unknown plot '{kind}'; use loss, trajectory or graph")
        view = self.loss if kind == "loss" else self.trajectory
        settle()
        if suffix == ".csv":
            save_table(*plot_table(kind, self.history, self.trajectory.axes), path)
        else:
            save_widget(view.plot, path, scale)

    def _save_graph(self, path, scale: float) -> None:
        from ..core.graph import capture_graph
        from .graph_view import save_graph

        save_graph(capture_graph(self.problem, self.layout.unflatten(self.current)), path, scale)

    def animation_frames(self, count: int) -> Iterator[np.ndarray]:
        """``count`` frames of the run growing step by step: loss curve beside trajectory,
        on fixed axes (those of the whole run), as RGB arrays."""
        history, n = self.history, len(self.history)
        self.loss.auto_range = False
        self.trajectory.freeze_range()
        try:
            for k in range(1, count + 1):
                rows = max(1, round(n * k / count)) if n else 0
                prefix = _Prefix(history, rows)
                last = k == count
                current = self.current if last or rows >= n else history.params[rows]
                loss = self.current_loss if last or rows >= n else float(history.loss[rows])
                self.loss.refresh_arrays(prefix.steps, prefix.loss)
                self.trajectory.refresh(prefix, current, loss, self.start)
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


def write_animation(frames: Iterator[np.ndarray], path: str | Path, fps: float = 15.0,
                    progress: Callable[[int], bool] | None = None) -> int:
    """Write frames as GIF or MP4 (by suffix) through imageio; ``progress(i)`` is called
    after each frame and returning False cancels (nothing is left behind). Returns the
    number of frames written."""
    import imageio.v2 as imageio

    suffix = Path(path).suffix.lower()
    if suffix not in ANIMATION_SUFFIXES:
        raise GdvizError(f"cannot tell the animation format from '{Path(path).name}'; use "
                         ".gif or .mp4")
    written = 0
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7,
                                        macro_block_size=16)
        try:
            for frame in frames:
                writer.append_data(frame)
                written += 1
                if progress is not None and not progress(written):
                    raise _Cancelled()
        finally:
            writer.close()
    return written


class _Cancelled(Exception):
    """Raised inside the atomic write so the partial file is removed."""


def animation(figures: OffscreenFigures, path: str | Path, frames: int = 60, fps: float = 15.0,
              progress: Callable[[int], bool] | None = None) -> bool:
    """Write the run's animation; False when ``progress`` cancelled it (no file is left)."""
    try:
        write_animation(figures.animation_frames(frames), path, fps, progress)
    except _Cancelled:
        return False
    return True
