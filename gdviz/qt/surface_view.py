"""The 3-D surface: the two-parameter landscape as an orbitable surface with each visible
run's path drawn on it (pyqtgraph's OpenGL items over PyOpenGL).

The OpenGL widget is made only when the tab is first shown, and only where OpenGL works:
under Qt's offscreen platform, without PyOpenGL, or where no context can be made (a remote
desktop, a missing driver) the tab says why and nothing else is touched. The loss grid is the
one the 2-D landscape asked the worker for; this view computes nothing.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPushButton, QStackedWidget,
                               QVBoxLayout, QWidget)

from ..core.errors import GdvizError
from ..core.model import Run

HEIGHT = 1.0     # the surface spans [-1, 1] x [-1, 1] and rises this high
PATH_POINTS = 4000  # a path is drawn from at most this many of its recorded steps
LIFT = 0.012     # paths are drawn this much above their losses' heights
CAMERA = {"distance": 3.3, "elevation": 42, "azimuth": -100}


def _on_top_options() -> dict:
    """Paths and dots are drawn over the surface (no depth test): a narrow valley's floor
    lies between grid points, so the mesh would otherwise hide a path that follows it."""
    from OpenGL import GL
    return {GL.GL_DEPTH_TEST: False, GL.GL_BLEND: True, GL.GL_CULL_FACE: False,
            "glBlendFunc": (GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)}


def opengl_unavailable_reason() -> str | None:
    """Why a 3-D view cannot be drawn here, or None when OpenGL works."""
    if os.environ.get("GDVIZ_NO_OPENGL"):
        return "3-D drawing is turned off (GDVIZ_NO_OPENGL is set)."
    platform = QGuiApplication.platformName()
    if platform in ("offscreen", "minimal", "vnc"):
        return f"Qt's '{platform}' platform offers no OpenGL."
    try:
        import pyqtgraph.opengl  # noqa: F401  (needs PyOpenGL)
    except Exception as exc:  # ImportError, or a broken libGL raising anything
        return f"PyOpenGL could not be loaded ({str(exc)[:120]}); install it with pip install pyopengl."
    from PySide6.QtGui import QOffscreenSurface, QOpenGLContext
    context = QOpenGLContext()
    if not context.create():
        return "no OpenGL context could be made (a remote desktop or a missing graphics driver?)."
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not context.makeCurrent(surface):
            return "the OpenGL context could not be used (a remote desktop or a missing driver?)."
        version = context.format().version()
        if not context.isOpenGLES() and version < (2, 1):
            return f"OpenGL {version[0]}.{version[1]} is too old; 2.1 or newer is needed."
    finally:
        context.doneCurrent()
        surface.destroy()
    return None


def heights(z: np.ndarray, lo: float, hi: float, log: bool) -> np.ndarray:
    """Losses as heights in [0, HEIGHT] over the grid's range [lo, hi] (log: log10 of the loss
    above the lowest, so a deep narrow valley and high walls both show)."""
    z = np.asarray(z, dtype=np.float64)
    if log:
        eps = max((hi - lo) * 1e-3, 1e-12)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.log10(np.clip(z, lo, hi) - lo + eps)
        f_lo, f_hi = math.log10(eps), math.log10(hi - lo + eps)
    else:
        f, f_lo, f_hi = np.clip(z, lo, hi), lo, hi
    span = f_hi - f_lo if f_hi > f_lo else 1.0
    out = (f - f_lo) / span * HEIGHT
    return np.where(np.isfinite(out), out, HEIGHT)


class SurfaceView(QWidget):
    """The landscape in 3-D with the runs' paths (see the module docstring). ``gl`` is the
    GLViewWidget once made; ``reason`` says why there is none."""

    exportRequested = Signal()   # "Export PNG…" in its right-click menu

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("surfaceView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        self.title = QLabel("<b>Loss surface</b>")
        self.logCheck = QCheckBox("log height", objectName="surfaceLogCheck", checked=True)
        self.logCheck.setToolTip("Height by the logarithm of the loss above its lowest point: "
                                 "valleys keep their shape beside high walls")
        self.logCheck.toggled.connect(lambda _on: self._draw_surface())
        self.cameraButton = QPushButton("Reset view", objectName="surfaceCameraButton")
        self.cameraButton.setToolTip("Back to the first camera position (drag to orbit, "
                                     "wheel to zoom, middle-drag to pan)")
        self.cameraButton.clicked.connect(self.reset_camera)
        header.addWidget(self.title)
        header.addWidget(self.logCheck)
        header.addStretch(1)
        header.addWidget(self.cameraButton)
        layout.addLayout(header)
        self.stack = QStackedWidget()
        self.message = QLabel(objectName="surfaceMessage", wordWrap=True,
                              alignment=Qt.AlignmentFlag.AlignCenter)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setText("The 3-D surface is drawn when this tab is shown.")
        self.stack.addWidget(self.message)
        layout.addWidget(self.stack, 1)
        self.gl = None
        self.reason: str | None = None
        self._tried = False
        self._grid = None          # LandscapeGrid of two axes
        self._names: tuple[str, str] = ("x", "y")
        self._indices: tuple[int, int] = (0, 1)
        self._empty_text = "The 3-D surface shows a landscape of two parameters."
        self._surface = None
        self._paths: dict[int, tuple] = {}   # run id -> (line item, dot item, key)
        self._frame = None                   # (x0, x1, y0, y1, lo, hi, log)
        self._runs: list[Run] = []

    # --- OpenGL, made lazily ------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.gl is not None

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._tried:
            self._tried = True
            self._make_gl()

    def _make_gl(self) -> None:
        self.reason = opengl_unavailable_reason()
        if self.reason is None:
            try:
                import pyqtgraph.opengl as gl
                self.gl = gl.GLViewWidget(objectName="surfaceGL")
            except Exception as exc:  # a driver that fails late
                self.reason = f"the OpenGL view could not be made ({str(exc)[:120]})."
        if self.gl is None:
            self.message.setText(f"<p><b>OpenGL is unavailable here</b>: {self.reason}</p>"
                                 "<p>The 2-D landscape and everything else work as usual.</p>")
            for widget in (self.logCheck, self.cameraButton):
                widget.setEnabled(False)
            return
        self.gl.setBackgroundColor("w")
        self.gl.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.gl.customContextMenuRequested.connect(self._on_gl_context_menu)
        self.stack.addWidget(self.gl)
        self.reset_camera()
        self._draw_surface()
        self.set_runs(self._runs)

    def _on_gl_context_menu(self, pos) -> None:
        from PySide6.QtWidgets import QMenu
        menu = QMenu(self)
        menu.addAction("Reset view", self.reset_camera)
        menu.addAction("Export PNG…", self.exportRequested.emit)
        menu.popup(self.gl.mapToGlobal(pos))

    def reset_camera(self) -> None:
        if self.gl is not None:
            from PySide6.QtGui import QVector3D
            self.gl.setCameraPosition(pos=QVector3D(0, 0, HEIGHT * 0.35), **CAMERA)

    # --- model -> view ------------------------------------------------------------------

    def show_grid(self, grid, names: tuple[str, str], indices: tuple[int, int]) -> None:
        """A new loss grid of the 2-D landscape (axes named ``names``, flat columns
        ``indices``)."""
        self._grid, self._names, self._indices = grid, tuple(names), tuple(indices)
        self._draw_surface()

    def clear(self, text: str) -> None:
        """No grid to draw (not yet, or the problem has no two-parameter landscape): say
        ``text`` instead of a surface."""
        self._grid = None
        self._empty_text = text
        self._draw_surface()

    def _draw_surface(self) -> None:
        if self.gl is None:
            return
        grid = self._grid
        if grid is None or grid.ys is None:
            self._frame = None  # the old frame's columns may not exist in this problem
            for line, dot, _key in self._paths.values():
                line.setVisible(False)
                dot.setVisible(False)
            self.message.setText(self._empty_text)
            self.stack.setCurrentWidget(self.message)
            return
        import pyqtgraph as pg
        import pyqtgraph.opengl as gl

        self.stack.setCurrentWidget(self.gl)
        finite = grid.z[np.isfinite(grid.z)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        log = self.logCheck.isChecked()
        x0, x1, y0, y1 = grid.xs[0], grid.xs[-1], grid.ys[0], grid.ys[-1]
        self._frame = (x0, x1, y0, y1, lo, hi, log)
        h = heights(grid.z, lo, hi, log)
        colors = pg.colormap.get("viridis").map(h.ravel() / HEIGHT, mode="float")
        # MeshData wants one row per vertex (x-major, as the surface lays its vertices out)
        colors = np.asarray(colors, dtype=np.float32).reshape(-1, 4)
        xs, ys = self._unit(grid.xs, x0, x1), self._unit(grid.ys, y0, y1)
        if self._surface is None:
            self._surface = gl.GLSurfacePlotItem(x=xs, y=ys, z=h, colors=colors, shader="shaded",
                                                 smooth=False, glOptions="opaque")
            self.gl.addItem(self._surface)
            floor = gl.GLGridItem(size=pg.Vector(2, 2, 1))
            floor.setSpacing(0.25, 0.25, 1)
            floor.setColor((0, 0, 0, 60))
            self.gl.addItem(floor)
            from PySide6.QtGui import QColor, QFont
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.2)
            self._labels = [gl.GLTextItem(color=QColor("#222"), font=font) for _ in range(2)]
            for label in self._labels:
                # last: a text item paints with QPainter, which leaves GL state that hides
                # any line drawn after it
                label.setDepthValue(100)
                self.gl.addItem(label)
        else:
            self._surface.setData(x=xs, y=ys, z=h, colors=colors)
        self._labels[0].setData(pos=(0.0, -1.15, 0.0), text=self._names[0])
        self._labels[1].setData(pos=(-1.15, 0.0, 0.0), text=self._names[1])
        self.title.setText(f"<b>Loss surface</b> over {self._names[0]}, {self._names[1]} "
                           f"(loss {lo:.3g} to {hi:.3g})")
        self._paths_key_reset()
        self.refresh(self._runs)  # the paths in the new frame now, also while paused

    @staticmethod
    def _unit(v: np.ndarray, a: float, b: float) -> np.ndarray:
        return (np.asarray(v, dtype=np.float64) - a) / (b - a if b != a else 1.0) * 2.0 - 1.0

    def _paths_key_reset(self) -> None:
        for run_id, (line, dot, _key) in list(self._paths.items()):
            self._paths[run_id] = (line, dot, None)

    def set_runs(self, runs: list[Run]) -> None:
        """One path per run, in its colour; hidden runs are not drawn."""
        self._runs = list(runs)
        if self.gl is None:
            return
        import pyqtgraph.opengl as gl
        wanted = {r.id for r in runs}
        for run_id in [i for i in self._paths if i not in wanted]:
            line, dot, _key = self._paths.pop(run_id)
            self.gl.removeItem(line)
            self.gl.removeItem(dot)
        for run in runs:
            if run.id not in self._paths:
                # no antialiasing: Mesa's llvmpipe (Xvfb, VMs) draws no wide smooth line at all
                line = gl.GLLinePlotItem(width=3, antialias=False, mode="line_strip",
                                         glOptions=_on_top_options())
                dot = gl.GLScatterPlotItem(size=11, pxMode=True, glOptions=_on_top_options())
                line.setDepthValue(10)   # drawn after the surface
                dot.setDepthValue(11)
                self.gl.addItem(line)
                self.gl.addItem(dot)
                self._paths[run.id] = (line, dot, None)
            line, dot, _key = self._paths[run.id]
            self._paths[run.id] = (line, dot, None)
            line.setVisible(run.settings.visible and self._frame is not None)
            dot.setVisible(run.settings.visible and self._frame is not None)
        self.refresh(runs)

    def refresh(self, runs: list[Run]) -> None:
        """Bring the paths up to date (only those whose runs moved)."""
        if self.gl is None or self._frame is None or not self.isVisible():
            return
        from PySide6.QtGui import QColor

        for run in runs:
            entry = self._paths.get(run.id)
            if entry is None or not run.settings.visible:
                continue
            line, dot, key = entry
            new_key = (len(run.history), run.step, run.loss, self._frame)
            if key == new_key:
                continue
            pts = self._path_points(run)
            color = QColor(run.settings.color or "#1f77b4")
            rgba = (color.redF(), color.greenF(), color.blueF(), 1.0)
            if len(pts) >= 2:
                line.setData(pos=pts, color=rgba)
            line.setVisible(len(pts) >= 2)
            dot.setVisible(True)
            dot.setData(pos=pts[-1:] if len(pts) else np.zeros((0, 3), np.float32), color=rgba)
            self._paths[run.id] = (line, dot, new_key)

    def _path_points(self, run: Run) -> np.ndarray:
        """The run's path in the scene's units, (n, 3): its recorded points (at most
        PATH_POINTS, evenly spaced, as the 2-D view thins) and where it is now, inside the
        grid's range."""
        x0, x1, y0, y1, lo, hi, log = self._frame
        i, j = self._indices
        if len(run.values) <= max(i, j):
            return np.zeros((0, 3), np.float32)
        h = run.history
        rows = h.params if len(h) and h.params.shape[1] > max(i, j) else \
            np.zeros((0, len(run.values)))  # (a history of the loss only: the point now)
        keep_rows = np.linspace(0, len(rows) - 1, min(len(rows), PATH_POINTS)).astype(int)
        xy = np.vstack([rows[keep_rows][:, [i, j]], run.values[[i, j]][None, :]])
        loss = np.append(h.loss[keep_rows] if len(rows) else [], run.loss)
        keep = np.isfinite(loss) & np.isfinite(xy).all(axis=1)
        keep &= (xy[:, 0] >= min(x0, x1)) & (xy[:, 0] <= max(x0, x1))
        keep &= (xy[:, 1] >= min(y0, y1)) & (xy[:, 1] <= max(y0, y1))
        return np.column_stack([self._unit(xy[keep, 0], x0, x1), self._unit(xy[keep, 1], y0, y1),
                                heights(loss[keep], lo, hi, log) + LIFT]).astype(np.float32)

    # --- export -------------------------------------------------------------------------

    def image(self):
        """The 3-D view as a QImage, as drawn on screen (axis names included: they are
        painted over the OpenGL picture, so an offscreen render at another size would lose
        them); GdvizError where OpenGL is unavailable."""
        if self.gl is None:
            raise GdvizError("the 3-D surface needs OpenGL, which is unavailable here"
                             + (f": {self.reason}" if self.reason else
                                "; show its tab first"))
        return self.gl.grabFramebuffer()

    def save_png(self, path, scale: float = 2.0) -> None:
        """Write the view as PNG at its size on screen (``scale`` does not apply)."""
        from .rendering import save_image
        save_image(self.image(), path)
