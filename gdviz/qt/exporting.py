"""The window's exports: the Export menu and plot context menus, built from the one registry
(:mod:`gdviz.export.registry`), with the window as the export source."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFormLayout, QMenu, QProgressDialog, QSpinBox, QWidget)

from ..core.errors import GdvizError
from ..core.session import SUFFIX
from ..export import registry

if TYPE_CHECKING:
    from .main_window import MainWindow


class WindowSource:
    """The window seen as an export source (what the registry's writers draw from)."""

    def __init__(self, window: "MainWindow"):
        self._w = window

    @property
    def loss_plot(self):
        return self._w.lossView.plot

    @property
    def trajectory_plot(self):
        return self._w.trajectoryView.plot

    @property
    def trajectory_axes(self):
        return self._w.trajectoryView.axes

    def data_picture(self):
        """The data view brought up to date now: (FitPicture, the runs drawn)."""
        return self._w.dataFit.picture_now()

    @property
    def data_plot(self):
        return self._w.dataView.plot

    @property
    def surface(self):
        """The 3-D surface view (its PNG is read from OpenGL)."""
        return self._w.surfaceView

    @property
    def runset(self):
        return self._w.controller.runset

    @property
    def selected(self):
        return self._w.controller.selected

    @property
    def window(self):
        return self._w

    @property
    def title(self) -> str:
        """The title line of exported plots (slides say what they show)."""
        from ..export.figures import figure_title

        c = self._w.controller
        runs = [r for r in c.runset if r.settings.visible] or [c.selected]
        return figure_title(c.session.function, c.session.loss, runs)

    @property
    def graph_numbers(self) -> bool:
        """Whether the graph shows typed numbers as nodes (exports draw it as shown)."""
        return self._w.graphArea.numbersCheck.isChecked()

    @property
    def graph_fold(self) -> bool:
        """Whether long sums are folded (exports draw the graph as shown)."""
        return self._w.graphArea.foldCheck.isChecked()

    def graph(self):
        panel = self._w.graphArea
        panel.refresh_now()
        return panel.full_graph if panel.graph is not None else None


class Exporting(QObject):
    """Builds the export menus and writes what they ask for."""

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window = window
        self.png_scale = 2.0
        self.source = WindowSource(window)

    def build_menu(self, menu: QMenu) -> None:
        for kind, (title, formats) in registry.KINDS.items():
            sub = menu.addMenu(title)
            for fmt in formats:
                sub.addAction(fmt.label, lambda k=kind, s=fmt.suffix: self.ask(k, s))
        scale_menu = menu.addMenu("PNG scale")
        group = QActionGroup(self)
        for factor in (1, 2, 3, 4):
            action = scale_menu.addAction(f"{factor}x", lambda f=factor: setattr(self, "png_scale", float(f)))
            action.setCheckable(True)
            action.setChecked(factor == 2)
            group.addAction(action)

    def add_plot_context_menus(self) -> None:
        """Right-click on a plot: export it."""
        w = self.window
        for view, kind in ((w.lossView, "loss"), (w.trajectoryView, "trajectory")):
            menu = view.plot.getPlotItem().getViewBox().menu
            menu.addSeparator()
            for fmt in registry.KINDS[kind][1]:
                menu.addAction(f"Export {fmt.label}", lambda k=kind, s=fmt.suffix: self.ask(k, s))

    def ask(self, kind: str, suffix: str) -> None:
        w = self.window
        path_now = w.documents.path
        base = (path_now.name.removesuffix(SUFFIX) if path_now
                else (w.controller.session.name or "gdviz").replace(" ", "-"))
        folder = w.documents.folder()
        suggested = str(Path(folder) / f"{base}-{kind}{suffix}")
        path = w.ask_path(f"Export {kind}", suggested, f"{suffix[1:].upper()} (*{suffix})", save=True)
        if path:
            if not Path(path).suffix:
                path += suffix
            w.documents.remember_folder(Path(path))
            if kind == "animation":
                options = self.window.ask_animation_options()
                if options is not None:
                    self.animation(path, *options)
            else:
                self.export(kind, path)

    def export(self, kind: str, path: str | Path) -> bool:
        """Write one figure or data file; errors are reported, never raised."""
        try:
            registry.export(self.source, kind, path, self.png_scale)
        except GdvizError as exc:
            self.window.report_error("Export failed", str(exc))
            return False
        self.window.show_message(f"Exported {Path(path).name}")
        return True

    def animation(self, path: str | Path, frames: int = 60, fps: float = 15.0,
                  size: tuple[int, int] = (640, 480)) -> bool:
        """The runs growing step by step, with a cancellable progress dialog."""
        from ..export.animation import animate
        from ..export.figures import OffscreenFigures

        w, c = self.window, self.window.controller
        try:
            registry.check("animation", path)
            if not any(len(r.history) for r in c.runset):
                raise GdvizError("there is no run to animate yet; press Play or Step first")
            w.pause_and_wait()  # a fixed history: the thinning rule must not move it meanwhile
            figures = OffscreenFigures(None, c.runset, c.session.landscape, size=size,
                                       compute=lambda fn: c.worker.call(lambda wk: fn(wk.problem)))
        except GdvizError as exc:
            w.report_error("Export failed", str(exc))
            return False
        dialog = QProgressDialog("Drawing the animation…", "Cancel", 0, frames, w)
        dialog.setWindowTitle("Export animation")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)

        def progress(done: int) -> bool:
            dialog.setValue(done)
            QApplication.processEvents()
            return not dialog.wasCanceled()

        try:
            finished = animate(figures, path, frames, fps, progress)
        except GdvizError as exc:
            w.report_error("Export failed", str(exc))
            return False
        finally:
            dialog.close()
            figures.close()
        if not finished:
            w.show_message("Animation cancelled; nothing was written.")
            return False
        w.show_message(f"Exported {Path(path).name} ({frames} frames)")
        return True


class AnimationOptions(QDialog):
    """Frames, frame rate and size of an animation, asked before it is drawn."""

    SIZES = ((480, 360), (640, 480), (800, 600), (960, 720), (1280, 960))

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Animation")
        form = QFormLayout(self)
        self.framesSpin = QSpinBox(objectName="animationFrames", minimum=2, maximum=2000, value=60)
        self.framesSpin.setToolTip("How many pictures: the run is cut into this many stages")
        self.fpsSpin = QDoubleSpinBox(objectName="animationFps", decimals=1, minimum=0.5,
                                      maximum=60.0, value=15.0)
        self.fpsSpin.setToolTip("Frames per second when it plays")
        self.sizeCombo = QComboBox(objectName="animationSize")
        for w, h in self.SIZES:
            self.sizeCombo.addItem(f"{2 * w} × {h} (each plot {w} × {h})", (w, h))
        self.sizeCombo.setCurrentIndex(1)
        form.addRow("Frames", self.framesSpin)
        form.addRow("Frames per second", self.fpsSpin)
        form.addRow("Size", self.sizeCombo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> tuple[int, float, tuple[int, int]]:
        return self.framesSpin.value(), self.fpsSpin.value(), self.sizeCombo.currentData()
