"""The main window: the problem on the left, controls and live plots on the right."""

from __future__ import annotations

import json
import math
import os
import time

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QLabel, QMainWindow, QScrollArea, QSplitter, QVBoxLayout,
                               QWidget)

from ..core.errors import GdvizError
from ..core.presets import load_preset
from ..core.session import Session
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
        self._restore_settings(session)

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
        self.fileMenu = self.menuBar().addMenu("&File")
        self.quitAction = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"))
        self.quitAction.setToolTip("Close gdviz (Ctrl+Q)")
        self.quitAction.triggered.connect(self.close)
        self.fileMenu.addAction(self.quitAction)
        run = self.menuBar().addMenu("&Run")
        for text, keys, slot in (("Play / Pause", "Space", self._on_controls_play_toggled),
                                 ("Step", "Right", lambda: self._on_controls_step_requested(
                                     self.controls.stepCountSpin.value())),
                                 ("Reset", "R", self.controller.reset)):
            action = QAction(f"{text}\t{keys}", self)
            action.triggered.connect(slot)
            run.addAction(action)

    def _make_shortcuts(self) -> None:
        # Window-wide keys; a text field that wants the key (typing "r", moving the cursor)
        # takes it first through Qt's shortcut-override, so typing is never hijacked.
        for keys, slot in (("Space", self._on_controls_play_toggled),
                           ("Right", lambda: self._on_controls_step_requested(
                               self.controls.stepCountSpin.value())),
                           ("R", self.controller.reset)):
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

    def closeEvent(self, event) -> None:  # noqa: N802
        self.controller.shutdown()
        self._redraw.stop()
        self.settings.setValue("geometry", self.saveGeometry())
        snapshot = self.controller.snapshot(include_history=False).with_changes(state=None)
        self.settings.setValue("lastSession", json.dumps(snapshot.to_dict(include_history=False)))
        self.settings.sync()
        super().closeEvent(event)
