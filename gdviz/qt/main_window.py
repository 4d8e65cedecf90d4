"""The main window: the problem on the left, controls and live plots on the right."""

from __future__ import annotations

import json
import math
import os
import time

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QMenu,
                               QMessageBox, QProgressDialog, QScrollArea, QSplitter,
                               QVBoxLayout, QWidget)

from ..core.errors import GdvizError
from ..core.presets import all_presets, load_preset
from ..core.session import SUFFIX, Session
from .controller import RUNNING, TrainingController
from .controls import ControlsBar
from .loss_plot import LossPlotView
from .plot_style import GUI_CLOCK
from .problem_panel import ProblemPanel
from .trajectory_view import TrajectoryView

REDRAW_MS = 33  # about 30 redraws a second at most, however fast the loop runs
# The GUI thread shares the GIL with training: a frame (redraw and paint) may take at most
# this share of the time, so expensive frames come less often (down to MAX_REDRAW_MS).
GUI_SHARE = 0.15
MAX_REDRAW_MS = 150
MAX_RECENT = 8
SESSION_FILTER = "gdviz sessions (*.gdviz.json *.json);;All files (*)"
STATE_COLORS = {"idle": "#555", "running": "#1565c0", "paused": "#6d4c41", "finished": "#2e7d32",
                "converged": "#2e7d32", "diverged": "#c62828"}


def app_settings() -> QSettings:
    """Where window geometry and the last problem are kept (tests point it elsewhere)."""
    return QSettings(os.environ.get("GDVIZ_SETTINGS_ORG", "gdviz"), "gdviz")


class MainWindow(QMainWindow):
    """gdviz's window. ``runFinished`` carries the keys of ``gdviz run --json``."""

    runFinished = Signal(dict)

    def __init__(self, session: Session | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("gdviz")
        self.settings = app_settings()
        self.session_path: Path | None = None
        self.png_scale = 2.0
        self._saved_fingerprint = ""
        self._problem_ok = True
        self._dirty = False
        self._frame_cost: float | None = None
        self._frame_ema: float | None = None  # typical seconds of GUI work per frame

        self.controller = TrainingController(parent=self)
        try:
            self._build(session)
        except BaseException:
            self.controller.shutdown()  # never leave the training thread running behind
            raise

    def _build(self, session: Session | None) -> None:
        self.problemPanel = ProblemPanel()
        self.controls = ControlsBar()
        self.lossView = LossPlotView()
        self.trajectoryView = TrajectoryView()
        self.graphArea = self._make_graph_area()
        self.messageLabel = QLabel(objectName="messageLabel")
        self.messageLabel.setWordWrap(True)
        self.messageLabel.hide()

        scroll = QScrollArea()
        scroll.setWidget(self.problemPanel)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(360)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.lossView)
        plots.addWidget(self.trajectoryView)
        plots.setSizes([500, 500])
        lower = QSplitter(Qt.Orientation.Vertical)
        lower.addWidget(plots)
        lower.addWidget(self.graphArea)
        lower.setSizes([420, 300])
        right = QWidget()
        rlayout = QVBoxLayout(right)
        rlayout.setContentsMargins(0, 0, 0, 0)
        rlayout.addWidget(self.controls)
        rlayout.addWidget(self.messageLabel)
        rlayout.addWidget(lower, 1)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(scroll)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        main.setSizes([380, 1000])
        self.setCentralWidget(main)

        self._make_status_bar()
        self._make_menus()
        self._make_shortcuts()
        self._connect()
        self._redraw = QTimer(self, interval=REDRAW_MS)
        self._redraw.timeout.connect(self._on_redraw_timer)
        self._redraw.start()

        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self._restore_settings(session)
        self._mark_saved()

    # --- building -----------------------------------------------------------------------

    def _make_graph_area(self) -> QWidget:
        from .graph_view import GraphPanel
        return GraphPanel()

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.stepLabel = QLabel(objectName="stepLabel")
        self.lossLabel = QLabel(objectName="lossLabel")
        self.rateLabel = QLabel(objectName="rateLabel")
        self.deviceLabel = QLabel(objectName="deviceLabel")
        self.stateLabel = QLabel(objectName="stateLabel")
        for label in (self.stepLabel, self.lossLabel, self.rateLabel, self.deviceLabel, self.stateLabel):
            label.setMinimumWidth(90)
            bar.addPermanentWidget(label)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        self.fileMenu = bar.addMenu("&File")
        self._action(self.fileMenu, "&Open…", self._on_open_triggered, "Ctrl+O",
                     "Open a session file (.gdviz.json)")
        self.recentMenu = self.fileMenu.addMenu("Open &Recent")
        self.examplesMenu = self.fileMenu.addMenu("&Examples")
        for name, preset in all_presets():
            action = self._action(self.examplesMenu, f"{preset.name}", lambda _c=False, n=name:
                                  self.open_example(n), tip=preset.description)
            action.setStatusTip(preset.description)
        self.examplesMenu.setToolTipsVisible(True)
        self.fileMenu.addSeparator()
        self._action(self.fileMenu, "&Save", self._on_save_triggered, "Ctrl+S",
                     "Save the session: problem, settings, where the run is and its history")
        self._action(self.fileMenu, "Save &As…", self._on_save_as_triggered, "Ctrl+Shift+S",
                     "Save the session under a new name")
        self.saveHistoryAction = self._action(self.fileMenu, "Include history in sessions", None,
                                              tip="Store every recorded step in the file")
        self.saveHistoryAction.setCheckable(True)
        self.saveHistoryAction.setChecked(True)
        self.fileMenu.addSeparator()
        self.exportMenu = self.fileMenu.addMenu("&Export")
        for title, kind, formats in (("Loss plot", "loss", ("png", "svg", "csv")),
                                     ("Trajectory plot", "trajectory", ("png", "svg", "csv")),
                                     ("Computation graph", "graph", ("png", "svg", "json"))):
            sub = self.exportMenu.addMenu(title)
            for fmt in formats:
                label = {"csv": "Data (CSV)…", "json": "Graph data (JSON)…"}.get(fmt, f"{fmt.upper()}…")
                self._action(sub, label, lambda _c=False, k=kind, f=fmt: self._ask_export(k, f))
        self._action(self.exportMenu, "Whole window (PNG)…", lambda: self._ask_export("window", "png"))
        history = self.exportMenu.addMenu("History")
        for fmt in ("csv", "json"):
            self._action(history, f"{fmt.upper()}…", lambda _c=False, f=fmt: self._ask_export("history", f))
        animation = self.exportMenu.addMenu("Animation")
        for fmt in ("gif", "mp4"):
            self._action(animation, f"{fmt.upper()}…", lambda _c=False, f=fmt: self._ask_export("animation", f))
        scale_menu = self.exportMenu.addMenu("PNG scale")
        group = QActionGroup(self)
        for factor in (1, 2, 3, 4):
            action = self._action(scale_menu, f"{factor}x", lambda _c=False, f=factor: setattr(self, "png_scale", float(f)))
            action.setCheckable(True)
            action.setChecked(factor == 2)
            group.addAction(action)
        self.fileMenu.addSeparator()
        self.quitAction = self._action(self.fileMenu, "&Quit", self.close, "Ctrl+Q", "Close gdviz (Ctrl+Q)")
        run = bar.addMenu("&Run")
        for text, keys, slot in self._run_keys():
            action = QAction(f"{text}\t{keys}", self)
            action.triggered.connect(slot)
            run.addAction(action)
        self._add_plot_context_menus()
        self._refresh_recent_menu()

    def _action(self, menu: QMenu, text: str, slot, keys: str | None = None,
                tip: str | None = None) -> QAction:
        action = QAction(text, self)
        if keys:
            action.setShortcut(QKeySequence(keys))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _add_plot_context_menus(self) -> None:
        """Right-click on a plot or the graph: export it."""
        for view, kind in ((self.lossView, "loss"), (self.trajectoryView, "trajectory")):
            menu = view.plot.getPlotItem().getViewBox().menu
            menu.addSeparator()
            for fmt, label in (("png", "Export PNG…"), ("svg", "Export SVG…"), ("csv", "Export data (CSV)…")):
                menu.addAction(label, lambda k=kind, f=fmt: self._ask_export(k, f))
        self.graphArea.exportRequested.connect(lambda fmt: self._ask_export("graph", fmt))
        self.graphArea.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.graphArea.view.customContextMenuRequested.connect(self._on_graph_context_menu)

    def _on_graph_context_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("Fit", self.graphArea.view.fit_all)
        for fmt, label in (("png", "Export PNG…"), ("svg", "Export SVG…"), ("json", "Export graph data (JSON)…")):
            menu.addAction(label, lambda f=fmt: self._ask_export("graph", f))
        menu.popup(self.graphArea.view.mapToGlobal(pos))

    def _run_keys(self) -> tuple:
        """(menu text, key, slot) of the run controls: the Run menu and the shortcuts."""
        return (("Play / Pause", "Space", self._on_controls_play_toggled),
                ("Step", "Right", lambda: self._on_controls_step_requested(
                    self.controls.stepCountSpin.value())),
                ("Reset", "R", self.controller.reset))

    def _make_shortcuts(self) -> None:
        # Window-wide keys; a text field that wants the key (typing "r", moving the cursor)
        # takes it first through Qt's shortcut-override, so typing is never hijacked.
        for _text, keys, slot in self._run_keys():
            QShortcut(QKeySequence(keys), self, activated=slot)

    def _connect(self) -> None:
        c, panel = self.controller, self.problemPanel
        panel.problemEdited.connect(self._on_panel_problem_edited)
        panel.hyperChanged.connect(c.set_hyper)
        panel.optimizerChanged.connect(c.set_optimizer)
        panel.stepsChanged.connect(c.set_steps)
        panel.tolChanged.connect(c.set_tol)
        panel.seedChanged.connect(c.set_seed)
        panel.deviceChanged.connect(c.set_device)
        self.controls.playToggled.connect(self._on_controls_play_toggled)
        self.controls.stepRequested.connect(self._on_controls_step_requested)
        self.controls.resetRequested.connect(c.reset)
        self.controls.speedChanged.connect(c.set_speed)
        self.trajectoryView.startPointChosen.connect(self._on_trajectory_start_chosen)
        self.trajectoryView.rangeChanged.connect(c.set_landscape)
        c.problemLoaded.connect(self._on_controller_problem_loaded)
        c.problemInvalid.connect(self._on_controller_problem_invalid)
        c.problemValid.connect(self._on_controller_problem_valid)
        c.historyChanged.connect(self._on_controller_history_changed)
        c.stateChanged.connect(self._on_controller_state_changed)
        c.runFinished.connect(self.runFinished)
        c.message.connect(self.show_message)

    # --- slots --------------------------------------------------------------------------

    def _on_panel_problem_edited(self, function: str, loss: str, params: dict) -> None:
        self.controller.edit_problem(function, loss, params)

    def _on_controls_play_toggled(self) -> None:
        self.problemPanel.flush()
        if self.controller.running:
            self.controller.pause()
        elif self._problem_ok:
            self.controller.play()

    def _on_controls_step_requested(self, count: int) -> None:
        self.problemPanel.flush()
        if self._problem_ok:
            self.controller.step_once(count)

    def _on_trajectory_start_chosen(self, start) -> None:
        self.controller.reset(start)
        self.show_message("New start point chosen on the landscape; the run was reset.")

    def _on_controller_problem_loaded(self) -> None:
        c = self.controller
        self.problemPanel.show_session(c.session, c.problem.shapes)
        self.trajectoryView.configure(c.problem, c.trainer.layout, c.start_point, c.session.landscape)
        self.graphArea.set_problem(c.problem, c.trainer.layout)
        self.lossView.clear()
        self._problem_ok = True
        self._update_controls()
        self._dirty = True

    def _on_controller_problem_invalid(self, field: str, message: str, column: int) -> None:
        self.problemPanel.show_error(field, message, column)
        self._problem_ok = False
        self._update_controls()

    def _on_controller_problem_valid(self) -> None:
        self.problemPanel.clear_errors()
        self._problem_ok = True
        self._update_controls()

    def _on_controller_history_changed(self) -> None:
        self._dirty = True

    def _on_controller_state_changed(self, state: str) -> None:
        self._update_controls()
        if state == "running":
            self.messageLabel.hide()
        self._dirty = True

    def _update_controls(self) -> None:
        self.controls.show_running(self.controller.running, self._problem_ok)

    def show_message(self, text: str) -> None:
        """A line in the status bar, and a banner above the plots for what matters."""
        self.statusBar().showMessage(text, 10_000)
        state = self.controller.state
        color = STATE_COLORS.get(state, "#555") if state in ("diverged", "converged", "finished") else "#555"
        self.messageLabel.setStyleSheet(f"color: {color}; padding: 2px 6px;")
        self.messageLabel.setText(text)
        self.messageLabel.show()

    # --- drawing ------------------------------------------------------------------------

    def _on_redraw_timer(self) -> None:
        painted = GUI_CLOCK.take()  # the paint that followed the previous frame
        if self._frame_cost is not None:
            cost = self._frame_cost + painted
            if self._frame_ema is not None:
                cost = min(cost, 3 * self._frame_ema)  # one slow frame (a relayout) is no trend
            self._frame_ema = cost if self._frame_ema is None else 0.8 * self._frame_ema + 0.2 * cost
            interval = min(MAX_REDRAW_MS, max(REDRAW_MS, 1000 * self._frame_ema / GUI_SHARE))
            self._redraw.setInterval(int(interval))
            self._frame_cost = None
        if not self._dirty:
            return
        self._dirty = False
        start = time.perf_counter()
        self.redraw()
        self._frame_cost = time.perf_counter() - start

    def redraw(self) -> None:
        """Bring every view up to date with the controller (called at most ~30 times a second)."""
        c = self.controller
        if c.history is None:
            return
        self.lossView.refresh(c.history, c.session.steps)
        self.trajectoryView.refresh(c.history, c.current, c.last_loss, c.start_point)
        if self.graphArea.isVisible() and self.graphArea.height() > 40:
            self.graphArea.show_point(c.current)
        self.stepLabel.setText(f"step {c.step:,}")
        self.lossLabel.setText("loss " + (f"{c.last_loss:.6g}" if math.isfinite(c.last_loss) else "—"))
        self.rateLabel.setText(f"{c.steps_per_s:,.0f} steps/s" if c.state == RUNNING or c.steps_per_s else "")
        self.deviceLabel.setText(str(c.trainer.device) if c.trainer else "")
        if self.stateLabel.text() != c.state:
            self.stateLabel.setText(c.state)
            self.stateLabel.setStyleSheet(f"color: {STATE_COLORS.get(c.state, '#555')}; font-weight: bold;")

    # --- settings and closing -----------------------------------------------------------

    def _restore_settings(self, session: Session | None) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if session is None:
            text = self.settings.value("lastSession")
            if isinstance(text, str) and text:
                try:
                    session = Session.from_dict(json.loads(text))
                    session.build_problem()
                except (ValueError, GdvizError):
                    session = None  # a stale or broken remembered problem: start fresh
        self.load_session(session or load_preset("seed-linear"))

    def load_session(self, session: Session) -> bool:
        """Show ``session``; on an error keep what is loaded and say why."""
        try:
            self.controller.load_session(session)
        except GdvizError as exc:
            self.show_message(f"Cannot load: {exc}")
            return False
        return True

    # --- sessions -----------------------------------------------------------------------

    def _fingerprint(self) -> str:
        snap = self.controller.snapshot(include_history=False)
        return json.dumps(snap.to_dict(include_history=False), sort_keys=True, default=str)

    def _mark_saved(self) -> None:
        self._saved_fingerprint = self._fingerprint()
        self._update_title()

    def has_unsaved_changes(self) -> bool:
        return self._fingerprint() != self._saved_fingerprint

    def _update_title(self) -> None:
        name = self.session_path.name if self.session_path else "untitled"
        self.setWindowTitle(f"{name} — gdviz")

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel'. A dialog; tests replace this method."""
        answer = QMessageBox.question(
            self, "Unsaved changes", "The session has changes that are not saved. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def ask_path(self, title: str, suggested: str, filters: str, save: bool) -> str | None:
        """A file dialog; tests replace this method."""
        if save:
            path, _ = QFileDialog.getSaveFileName(self, title, suggested, filters)
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, suggested, filters)
        return path or None

    def report_error(self, title: str, text: str) -> None:
        """Say what went wrong: a banner in the window and a message box that does not block."""
        self.show_message(f"{title}: {text}")
        self.messageLabel.setStyleSheet("color: #c62828; padding: 2px 6px;")
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.lastError = text

    def _confirm_discard(self) -> bool:
        """True when it is fine to replace the session (saved, discarded or unchanged)."""
        if not self.has_unsaved_changes():
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self._on_save_triggered()
        return answer == "discard"

    def open_session(self, path: str | Path) -> bool:
        """Open a session file; on any error the window keeps what it had."""
        path = Path(path)
        try:
            session = Session.load(path)
            self.controller.load_session(session)
        except GdvizError as exc:
            self.report_error(f"Cannot open {path.name}", str(exc))
            return False
        self.session_path = path
        self._add_recent(path)
        self._mark_saved()
        self.show_message(f"Opened {path.name}" + (f" at step {self.controller.step}"
                                                   if self.controller.step else ""))
        return True

    def save_session_to(self, path: str | Path) -> bool:
        path = Path(path)
        self._pause_and_wait()  # the saved optimizer state must match the saved step
        snapshot = self.controller.snapshot(include_history=self.saveHistoryAction.isChecked())
        try:
            snapshot.save(path)
        except GdvizError as exc:
            self.report_error("Cannot save", str(exc))
            return False
        self.session_path = path
        self._add_recent(path)
        self._mark_saved()
        self.show_message(f"Saved {path.name}")
        return True

    def _pause_and_wait(self, timeout_s: float = 5.0) -> None:
        c = self.controller
        if not c.running:
            return
        c.pause()
        deadline = time.perf_counter() + timeout_s
        while c.running and time.perf_counter() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)

    def open_example(self, name: str) -> bool:
        if not self._confirm_discard():
            return False
        if not self.load_session(load_preset(name)):
            return False
        self.session_path = None
        self._mark_saved()
        self.show_message(f"Example: {self.controller.session.name}. "
                          f"{self.controller.session.description}")
        return True

    def _on_open_triggered(self) -> None:
        if not self._confirm_discard():
            return
        folder = str(self.session_path.parent) if self.session_path else ""
        path = self.ask_path("Open session", folder, SESSION_FILTER, save=False)
        if path:
            self.open_session(path)

    def _on_save_triggered(self) -> bool:
        if self.session_path is None:
            return self._on_save_as_triggered()
        return self.save_session_to(self.session_path)

    def _on_save_as_triggered(self) -> bool:
        name = self.session_path.name if self.session_path else f"{self.controller.session.name or 'session'}{SUFFIX}"
        path = self.ask_path("Save session", name.replace(" ", "-"), SESSION_FILTER, save=True)
        if not path:
            return False
        if not path.endswith(".json"):
            path += SUFFIX
        return self.save_session_to(path)

    def _recent(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str)]

    def _add_recent(self, path: Path) -> None:
        text = str(Path(path).resolve())
        files = [text] + [f for f in self._recent() if f != text]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recentMenu.clear()
        files = self._recent()
        for f in files:
            self.recentMenu.addAction(Path(f).name, lambda p=f: self._confirm_discard() and self.open_session(p)) \
                .setToolTip(f)
        if files:
            self.recentMenu.addSeparator()
            self.recentMenu.addAction("Clear", lambda: (self.settings.setValue("recentFiles", []),
                                                        self._refresh_recent_menu()))
        self.recentMenu.setEnabled(bool(files))

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self._dropped_file(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_file(event)
        if path is not None and self._confirm_discard():
            event.acceptProposedAction()
            self.open_session(path)

    @staticmethod
    def _dropped_file(event) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        files = [u.toLocalFile() for u in urls if u.isLocalFile()]
        return files[0] if files and files[0].endswith(".json") else None

    # --- export -------------------------------------------------------------------------

    def _ask_export(self, kind: str, fmt: str) -> None:
        base = (self.session_path.name.removesuffix(SUFFIX) if self.session_path
                else (self.controller.session.name or "gdviz").replace(" ", "-"))
        path = self.ask_path(f"Export {kind}", f"{base}-{kind}.{fmt}", f"{fmt.upper()} (*.{fmt})", save=True)
        if path:
            if not Path(path).suffix:
                path += f".{fmt}"
            self.export(kind, path)

    def export(self, kind: str, path: str | Path) -> bool:
        """Write one figure or data file: kind is loss, trajectory, graph, window, history
        or animation; the format comes from the suffix. Errors are reported, never raised."""
        from .figures import plot_table, save_table, save_widget
        from .rendering import save_image

        c = self.controller
        try:
            suffix = Path(path).suffix.lower()
            if kind in ("loss", "trajectory"):
                view = self.lossView if kind == "loss" else self.trajectoryView
                if suffix == ".csv":
                    save_table(*plot_table(kind, c.history, self.trajectoryView.axes), path)
                else:
                    save_widget(view.plot, path, self.png_scale)
            elif kind == "graph":
                self._export_graph(path, suffix)
            elif kind == "window":
                save_image(self.grab().toImage(), path)
            elif kind == "history":
                c.history.save(path)
            elif kind == "animation":
                return self._export_animation(path)
            else:
                raise GdvizError(f"nothing called '{kind}' to export")
        except GdvizError as exc:
            self.report_error("Export failed", str(exc))
            return False
        self.show_message(f"Exported {Path(path).name}")
        return True

    def _export_graph(self, path, suffix: str) -> None:
        panel = self.graphArea
        panel.refresh_now()
        if panel.graph is None or not panel.scene.node_items:
            raise GdvizError("the graph is still being laid out; try again in a moment")
        if suffix == ".svg":
            panel.scene.render_svg(path)
        elif suffix == ".png":
            panel.scene.render_png(path, self.png_scale)
        elif suffix == ".json":
            from ..core.atomic import atomic_write
            with atomic_write(path, "w", encoding="utf-8") as fh:
                fh.write(panel.graph.to_json())
        else:
            raise GdvizError("export the graph as .png, .svg or .json")

    def _export_animation(self, path, frames: int = 60, fps: float = 15.0) -> bool:
        from .figures import OffscreenFigures, animation

        c = self.controller
        if not len(c.history):
            raise GdvizError("there is no run to animate yet; press Play or Step first")
        c.pause()
        figures = OffscreenFigures(c.problem, c.trainer.layout, c.history, c.start_point,
                                   c.current, c.last_loss, c.session.landscape, c.session.steps)
        dialog = QProgressDialog("Drawing the animation…", "Cancel", 0, frames, self)
        dialog.setWindowTitle("Export animation")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)

        def progress(done: int) -> bool:
            dialog.setValue(done)
            QApplication.processEvents()
            return not dialog.wasCanceled()

        try:
            finished = animation(figures, path, frames, fps, progress)
        finally:
            dialog.close()
            figures.close()
        if not finished:
            self.show_message("Animation cancelled; nothing was written.")
            return False
        self.show_message(f"Exported {Path(path).name} ({frames} frames)")
        return True

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self._confirm_discard():
            event.ignore()
            return
        self.controller.shutdown()
        self._redraw.stop()
        self.settings.setValue("geometry", self.saveGeometry())
        snapshot = self.controller.snapshot(include_history=False).with_changes(state=None)
        self.settings.setValue("lastSession", json.dumps(snapshot.to_dict(include_history=False)))
        self.settings.sync()
        super().closeEvent(event)
