"""The main window: the problem and the runs on the left, controls and live views on the right.

It lays the views out and wires them to the controller. Its other jobs have their own
homes: sessions and files (:mod:`.documents`), exports (:mod:`.exporting`) and redraw pacing
(:mod:`.pacing`).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from PySide6.QtCore import QByteArray, QSettings, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QLabel, QMainWindow, QMenu, QMessageBox,
                               QScrollArea, QSizePolicy, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from ..core.errors import GdvizError
from ..core.model import RunSettings, describe_optimizer
from ..core.presets import all_presets, load_preset
from ..core.session import Session
from .analysis import AnalysisController, run_from_start
from .analysis_view import CurvatureView, LrRangeView
from .controller import TrainingController
from .controls import ControlsBar
from .data_fit import DataFit
from .data_panel import DataPanel
from .data_view import DataView
from .documents import Documents
from .exporting import Exporting
from .graph_view import GraphPanel
from .leaderboard import LeaderboardView
from .loss_plot import LossPlotView
from .lr_plot import LrPlotView
from .pacing import RedrawPacer
from .problem_panel import ProblemPanel
from .runs_panel import STATUS_COLORS, RunsPanel
from .surface_view import SurfaceView
from .step_inspector import StepInspector
from .stepping import Stepping
from .timeline_view import TimelineBar
from .trajectory_view import TrajectoryView
from .update_view import UpdateView

#: While a run plays, numbers (the runs' statuses and steps, the leaderboard, the step and
#: loss under the plots) change at most this often: faster than that no one can read them,
#: and every change costs the training thread (the GUI shares its GIL).
READOUT_S = 0.2


class _GraphWindow(QWidget):
    """The computation graph, popped out into a window of its own."""

    closed = Signal()

    def __init__(self, panel: QWidget, parent: QWidget):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Computation graph — gdviz")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(panel)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)


def app_settings() -> QSettings:
    """Where window geometry and the last problem are kept (tests point it elsewhere)."""
    return QSettings(os.environ.get("GDVIZ_SETTINGS_ORG", "gdviz"), "gdviz")


class MainWindow(QMainWindow):
    """gdviz's window. ``runFinished`` carries the keys of ``gdviz run --json`` for the
    selected run."""

    runFinished = Signal(dict)

    def __init__(self, session: Session | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("gdviz")
        self.settings = app_settings()
        self._problem_ok = True
        self.lastError = ""
        self._graph_window: _GraphWindow | None = None
        self._loaded_once = False
        self._data_source: str | None = None
        self.controller = TrainingController(parent=self)
        try:
            self._build(session)
        except BaseException:
            self.controller.shutdown()  # never leave the training thread running behind
            raise

    def _build(self, session: Session | None) -> None:
        self.problemPanel = ProblemPanel()
        self.runsPanel = RunsPanel()
        self.problemPanel.layout().insertWidget(1, self.runsPanel)
        self.dataPanel = DataPanel()
        self.problemPanel.layout().insertWidget(1, self.dataPanel)
        self.controls = ControlsBar()
        self.lossView = LossPlotView()
        self.lrPlot = LrPlotView()
        self.lrPlot.link_x(self.lossView.plot)
        self.surfaceView = SurfaceView()
        self.trajectoryView = TrajectoryView()
        self.graphArea = GraphPanel()
        self.leaderboard = LeaderboardView()
        self.analyses = AnalysisController(self.controller, self)
        self.curvatureView = CurvatureView()
        self.lrRangeView = LrRangeView()
        self.dataView = DataView()
        self.dataFit = DataFit(self.controller, self.dataView, self)
        self.timeline = TimelineBar()
        self.updateView = UpdateView()
        self.inspector = StepInspector(self.controller, self)
        self.stepping = Stepping(self)
        # The banner keeps its room whether it shows text or not: nothing below it may move
        # while the app is used (a click aimed at a box must land on that box).
        self.messageLabel = QLabel(objectName="messageLabel")
        self.messageLabel.setWordWrap(True)
        self.messageLabel.setFixedHeight(2 * self.messageLabel.fontMetrics().lineSpacing() + 6)
        self.messageLabel.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.messageLabel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        scroll = QScrollArea()
        scroll.setWidget(self.problemPanel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.problemPanel.minimumSizeHint().width() + 24)
        plots = QSplitter(Qt.Orientation.Horizontal)
        loss_column = QSplitter(Qt.Orientation.Vertical)
        loss_column.addWidget(self.lossView)
        loss_column.addWidget(self.lrPlot)
        loss_column.setSizes([330, 90])
        plots.addWidget(loss_column)
        # the 3-D surface beside the 2-D landscape (its OpenGL is made when first shown)
        self.landscapeTabs = QTabWidget(objectName="landscapeTabs")
        self.landscapeTabs.setDocumentMode(True)
        self.landscapeTabs.addTab(self.trajectoryView, "Landscape")
        self.landscapeTabs.addTab(self.surfaceView, "3-D surface")
        plots.addWidget(self.landscapeTabs)
        plots.setSizes([500, 500])
        self.bottomTabs = QTabWidget(objectName="bottomTabs")
        self.bottomTabs.addTab(self.dataView, "Data and fit")
        self.bottomTabs.setTabVisible(0, False)  # until there is data
        self.bottomTabs.addTab(self.graphArea, "Computation graph")
        self.bottomTabs.setCurrentWidget(self.graphArea)
        self.bottomTabs.addTab(self.leaderboard, "Leaderboard")
        self.bottomTabs.addTab(self.curvatureView, "Curvature")
        self.bottomTabs.addTab(self.lrRangeView, "LR range test")
        self.bottomTabs.addTab(self.updateView, "Update")
        upper = QWidget()
        ulayout = QVBoxLayout(upper)
        ulayout.setContentsMargins(0, 0, 0, 0)
        ulayout.setSpacing(2)
        ulayout.addWidget(plots, 1)
        ulayout.addWidget(self.timeline)
        lower = QSplitter(Qt.Orientation.Vertical)
        lower.addWidget(upper)
        lower.addWidget(self.bottomTabs)
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
        main.setSizes([400, 1000])
        self.setCentralWidget(main)

        self.documents = Documents(self, self.settings)
        self.exporting = Exporting(self)
        self.pacer = RedrawPacer(self.redraw, self)
        self._readouts_at = -math.inf  # when the numbers (statuses, step, loss) were last shown
        self._make_status_bar()
        self._make_menus()
        self._make_shortcuts()
        self._connect()
        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self._restore_settings(session)

    # --- building -----------------------------------------------------------------------

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
        file = self.fileMenu = bar.addMenu("&File")
        self._action(file, "&Open…", self.documents.ask_open, "Ctrl+O", "Open a session file (.gdviz.json)")
        self.recentMenu = file.addMenu("Open &Recent")
        self._action(file, "Open &data…", self.documents.ask_open_data, "Ctrl+D",
                     "Fit a model to a CSV file: its columns become variables of the function "
                     "and the loss")
        self.removeDataAction = self._action(file, "Remove data", self.documents.remove_data,
                                             tip="Stop fitting data")
        self.examplesMenu = file.addMenu("&Examples")
        for name, preset in all_presets():
            action = self._action(self.examplesMenu, preset.name,
                                  lambda _c=False, n=name: self.open_example(n), tip=preset.description)
            action.setStatusTip(preset.description)
        self.examplesMenu.setToolTipsVisible(True)
        file.addSeparator()
        self._action(file, "&Save", self.documents.save, "Ctrl+S",
                     "Save the session: problem, runs, where each run is and its history")
        self._action(file, "Save &As…", self.documents.save_as, "Ctrl+Shift+S",
                     "Save the session under a new name")
        self.saveHistoryAction = self._action(file, "Include history in sessions", None,
                                              tip="Store every recorded step in the file")
        self.saveHistoryAction.setCheckable(True)
        self.saveHistoryAction.setChecked(True)
        file.addSeparator()
        self.exportMenu = file.addMenu("&Export")
        self.exporting.build_menu(self.exportMenu)
        file.addSeparator()
        self.quitAction = self._action(file, "&Quit", self.close, "Ctrl+Q", "Close gdviz (Ctrl+Q)")
        edit = bar.addMenu("&Edit")
        self.undoAction = self._action(edit, "&Undo", self.controller.undo, "Ctrl+Z",
                                       "Bring back the runs a reset, a change of problem or a "
                                       "click on the landscape replaced")
        self.redoAction = self._action(edit, "&Redo", self.controller.redo, "Ctrl+Shift+Z",
                                       "Bring back what the last undo replaced")
        run = bar.addMenu("&Run")
        for text, keys, slot in self._run_keys():
            action = QAction(f"{text}\t{keys}", self)
            action.triggered.connect(slot)
            run.addAction(action)
        runs = bar.addMenu("Ru&ns")
        p = self.runsPanel
        self._action(runs, "Add run", p.addRequested.emit, tip=p.addButton.toolTip())
        self._action(runs, "Duplicate run", p.duplicateButton.click, tip=p.duplicateButton.toolTip())
        self._action(runs, "Branch from here", p.forkButton.click, tip=p.forkButton.toolTip())
        self.restartAction = self._action(
            runs, "Restart from the step shown", lambda: self.inspector.restart_here(),
            tip=self.timeline.restartButton.toolTip())
        self._action(runs, "Remove run", p.removeButton.click, tip=p.removeButton.toolTip())
        runs.addSeparator()
        runs.addAction(p.compareAction)
        runs.addAction(p.sweepAction)
        self._make_analysis_menu(bar)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "The expression &language", self._on_help_language,
                     tip="What can be typed in the function, the loss and the initial values")
        self._action(help_menu, "&Keyboard and mouse", self._on_help_shortcuts)
        self._action(help_menu, "&About gdviz", self._on_help_about)
        self.exporting.add_plot_context_menus()
        self.graphArea.exportRequested.connect(lambda fmt: self.exporting.ask("graph", f".{fmt}"))
        self.graphArea.popOutRequested.connect(self._on_graph_pop_out_requested)
        self.graphArea.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.graphArea.view.customContextMenuRequested.connect(self._on_graph_context_menu)
        self.leaderboard.exportRequested.connect(lambda: self.exporting.ask("leaderboard", ".csv"))
        self.documents.refresh_recent_menu()

    def _make_analysis_menu(self, bar) -> None:
        analysis = self.analysisMenu = bar.addMenu("&Analysis")
        self.basinAction = self._action(
            analysis, "&Basin map", None, tip="Color every start on a grid over the landscape "
            "by the minimum the selected run's optimizer reaches from it (two parameters)")
        self.basinAction.setCheckable(True)
        self.basinAction.toggled.connect(self._on_basin_action_toggled)
        self.lrRangeAction = self._action(
            analysis, "&Learning-rate range test", self.run_lr_range_test,
            tip="The final loss of a short run at each of many learning rates, from where the "
            "selected run stands: where learning starts and where it breaks")
        self.curvatureAction = self._action(
            analysis, "&Curvature at the current point", self.show_curvature,
            tip="The Hessian's eigenvalues, condition number and stable learning rates at the "
            "selected run's point, its directions on the landscape, and λmax along the run")
        self.gradCheckAction = self._action(
            analysis, "Check &gradients", self.check_gradients,
            tip="Autograd's gradient against finite differences for every parameter element at "
            "the step shown, with the relative error; kinks (abs, relu at 0) are flagged")

    def _action(self, menu: QMenu, text: str, slot, keys: str | None = None,
                tip: str | None = None) -> QAction:
        action = QAction(text, self)
        if keys:
            action.setShortcut(QKeySequence(keys))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot is not None:
            action.triggered.connect(lambda _c=False: slot())
        menu.addAction(action)
        return action

    def _on_help_language(self) -> None:
        from ..core.expressions import FUNCTIONS
        from .help import language_html, show_text
        self.helpDialog = show_text(self, "The expression language",
                                    language_html({n: f.help for n, f in FUNCTIONS.items()}))

    def _on_help_shortcuts(self) -> None:
        from .help import show_text, shortcuts_html
        self.helpDialog = show_text(self, "Keyboard and mouse", shortcuts_html())

    def _on_help_about(self) -> None:
        import sys

        from .help import about_html, show_text, versions
        torch = sys.modules.get("torch")
        self.helpDialog = show_text(self, "About gdviz", about_html(
            versions(getattr(torch, "__version__", None), self.controller.device)))

    def _on_graph_pop_out_requested(self) -> None:
        """The graph in a window of its own (as large as the screen allows); closing that
        window puts it back in its tab."""
        if self._graph_window is not None:
            self._graph_window.raise_()
            return
        index = self.bottomTabs.indexOf(self.graphArea)
        placeholder = QLabel("The computation graph is in its own window; close that window "
                             "to bring it back here.", alignment=Qt.AlignmentFlag.AlignCenter)
        self.bottomTabs.insertTab(index, placeholder, "Computation graph")
        window = _GraphWindow(self.graphArea, self)
        self.graphArea.popButton.hide()

        def dock() -> None:
            self.bottomTabs.removeTab(self.bottomTabs.indexOf(placeholder))
            self.bottomTabs.insertTab(index, self.graphArea, "Computation graph")
            self.bottomTabs.setCurrentIndex(index)
            self.graphArea.popButton.show()
            self.graphArea.show()
            self._graph_window = None

        window.closed.connect(dock)
        self._graph_window = window
        window.resize(1100, 700)
        window.show()

    def _on_graph_context_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("Fit", self.graphArea.view.fit_all)
        for suffix, label in ((".png", "Export PNG…"), (".svg", "Export SVG…"),
                              (".json", "Export graph data (JSON)…")):
            menu.addAction(label, lambda s=suffix: self.exporting.ask("graph", s))
        menu.popup(self.graphArea.view.mapToGlobal(pos))

    def _run_keys(self) -> tuple:
        """(menu text, key, slot) of the run controls: the Run menu and the shortcuts."""
        return (("Play / Pause", "Space", self._on_controls_play_toggled),
                ("Step", "Right", lambda: self._on_controls_step_requested(
                    self.controls.stepCountSpin.value())),
                ("Reset", "R", self._on_controls_reset_requested))

    def _make_shortcuts(self) -> None:
        # Window-wide keys; a text field that wants the key (typing "r", moving the cursor)
        # takes it first through Qt's shortcut-override, so typing is never hijacked.
        for _text, keys, slot in self._run_keys():
            if keys != "Right":
                QShortcut(QKeySequence(keys), self, activated=slot)
        self.stepping.make_shortcuts()  # Right, Left, Home, End

    def _connect(self) -> None:
        c, panel, runs = self.controller, self.problemPanel, self.runsPanel
        panel.problemEdited.connect(self._on_panel_problem_edited)
        panel.hyperChanged.connect(lambda name, value: c.set_hyper(name, value))
        panel.optimizerChanged.connect(lambda name, hypers: c.set_optimizer(name, hypers))
        panel.scheduleBox.scheduleChanged.connect(self._on_panel_schedule_changed)
        panel.stepsChanged.connect(c.set_steps)
        panel.tolChanged.connect(c.set_tol)
        panel.seedChanged.connect(c.set_seed)
        panel.deviceChanged.connect(c.set_device)
        runs.runSelected.connect(c.select_run)
        runs.addRequested.connect(self._on_runs_add_requested)
        runs.duplicateRequested.connect(c.duplicate_run)
        runs.forkRequested.connect(self._on_runs_fork_requested)
        runs.removeRequested.connect(c.remove_run)
        runs.renamed.connect(lambda i, text: c.update_run(i, label=text))
        runs.recolored.connect(lambda i, color: c.update_run(i, color=color))
        runs.visibilityToggled.connect(lambda i, on: c.update_run(i, visible=on))
        runs.compareRequested.connect(c.compare_optimizers)
        runs.sweepRequested.connect(c.lr_sweep)
        self.leaderboard.runSelected.connect(c.select_run)
        self.controls.playToggled.connect(self._on_controls_play_toggled)
        self.controls.stepRequested.connect(self._on_controls_step_requested)
        self.controls.resetRequested.connect(self._on_controls_reset_requested)
        self.controls.speedChanged.connect(c.set_speed)
        c.set_speed(self.controls.speed())
        self.trajectoryView.startPointChosen.connect(self._on_trajectory_start_chosen)
        self.trajectoryView.rangeChanged.connect(c.set_landscape)
        self.trajectoryView.landscapeRequested.connect(c.request_landscape)
        c.landscapeReady.connect(self.trajectoryView.show_landscape)
        c.landscapeReady.connect(self._on_controller_landscape_ready)  # after the 2-D view's
        self.landscapeTabs.currentChanged.connect(self._on_landscape_tabs_current_changed)
        self.surfaceView.exportRequested.connect(lambda: self.exporting.ask("surface", ".png"))
        panel.stepsChanged.connect(lambda _s: self.pacer.mark_dirty())  # the lr plot's plan
        self.graphArea.captureRequested.connect(c.request_graph)
        c.graphReady.connect(self.graphArea.show_graph)
        c.problemLoaded.connect(self._on_controller_problem_loaded)
        c.loadingStarted.connect(self._on_controller_loading_started)
        c.cudaChecked.connect(self._on_controller_cuda_checked)
        c.problemInvalid.connect(self._on_controller_problem_invalid)
        c.problemValid.connect(self._on_controller_problem_valid)
        c.runsChanged.connect(self._on_controller_runs_changed)
        c.selectionChanged.connect(self._on_controller_selection_changed)
        c.progressed.connect(self.pacer.mark_dirty)
        c.stateChanged.connect(self._on_controller_state_changed)
        c.runFinished.connect(self.runFinished)
        c.message.connect(self.show_message)
        self._connect_analyses()
        d = self.dataPanel
        d.openRequested.connect(self.documents.ask_open_data)
        d.removeRequested.connect(self.documents.remove_data)
        d.batchSizeChanged.connect(c.set_batch_size)

    def _connect_analyses(self) -> None:
        a, t, panel = self.analyses, self.trajectoryView, self.problemPanel
        t.basinsRequested.connect(self._on_trajectory_basins_requested)
        t.basinsDropped.connect(a.forget_basins)
        t.basinStartChosen.connect(self._on_trajectory_basin_start_chosen)
        t.basinsCheck.toggled.connect(self._on_basins_check_toggled)
        t.modeChanged.connect(self._on_trajectory_mode_changed)
        a.basinsReady.connect(t.show_basins)
        a.basinsFailed.connect(self._on_analyses_basins_failed)
        a.basinsStale.connect(lambda: t.update_basins(force=True))
        panel.stepsChanged.connect(lambda _s: a.settings_changed())  # after the controller's
        panel.tolChanged.connect(lambda _t: a.settings_changed())
        self.lrRangeView.runRequested.connect(a.request_lr_range)
        self.lrRangeView.lrChosen.connect(self._on_lr_range_lr_chosen)
        a.lrRangeStarted.connect(self.lrRangeView.show_running)
        a.lrRangeReady.connect(self.lrRangeView.show_result)
        a.lrRangeFailed.connect(self.lrRangeView.show_error)
        a.curvatureReady.connect(self._on_analyses_curvature_ready)
        a.curvatureFailed.connect(self._on_analyses_curvature_failed)
        a.lrLimitChanged.connect(panel.show_lr_limit)
        a.sharpnessReady.connect(self.curvatureView.show_sharpness)
        self.curvatureView.computeRequested.connect(self._on_curvature_compute_requested)
        self.bottomTabs.currentChanged.connect(self._on_bottom_tabs_current_changed)
        self.stepping.connect()

    def check_gradients(self) -> None:
        """The gradient check at the step shown, in a window of its own."""
        self.stepping.check_gradients()

    # --- slots --------------------------------------------------------------------------

    def _on_panel_problem_edited(self, function: str, loss: str, params: dict) -> None:
        self.controller.edit_problem(function, loss, params)

    def _on_controller_landscape_ready(self, grid) -> None:
        """The grid the 2-D landscape just took is the 3-D surface's too."""
        view = self.trajectoryView
        if view.mode == "2d" and grid.ys is not None and view.z is grid.z:
            (nx, ix), (ny, iy) = view.axes
            self.surfaceView.show_grid(grid, (nx, ny), (ix, iy))
            self.pacer.mark_dirty()

    def _on_landscape_tabs_current_changed(self, _index: int) -> None:
        if self.landscapeTabs.currentWidget() is self.surfaceView and \
                self.surfaceView.gl is not None:
            self.surfaceView.set_runs(list(self.controller.runset or []))
        self.pacer.mark_dirty()

    def _show_surface_mode(self) -> None:
        """The 3-D surface needs the 2-D landscape; otherwise it says why it is empty. Its
        old grid (another problem's, or another slice's) goes; the next one comes with the
        2-D view's."""
        if self.trajectoryView.mode == "2d":
            self.surfaceView.clear("The surface is drawn once the landscape is computed.")
        else:
            n = self.controller.layout.n_grads if self.controller.layout else 0
            more = (" Tick \"landscape of\" above the 2-D plot and choose two of them."
                    if n > 2 else "")
            self.surfaceView.clear(
                "The 3-D surface shows a landscape of two parameters; this problem has "
                f"{n:,} trainable element{'' if n == 1 else 's'}.{more}")

    def _on_panel_schedule_changed(self, schedule, clip_norm) -> None:
        try:
            self.controller.set_schedule(schedule, clip_norm)
        except GdvizError as exc:  # the box checks first; this is the last word
            self.show_message(str(exc))

    def _on_controls_play_toggled(self) -> None:
        self.problemPanel.flush()
        if self.controller.running:
            self.controller.pause()
        elif self._problem_ok:
            self.clear_message()  # what it said was for before this run
            self.inspector.go_live()  # play continues from where the run stands
            self.controller.play()

    def _on_controls_step_requested(self, count: int) -> None:
        self.problemPanel.flush()
        if self._problem_ok:
            self.inspector.go_live()
            self.controller.step_once(count)

    def _on_controls_reset_requested(self) -> None:
        self.inspector.go_live()
        self.controller.reset()
        self.clear_message()
        self.lossView.clear()

    def _on_trajectory_start_chosen(self, start) -> None:
        self.controller.set_start(start)

    # --- analyses -----------------------------------------------------------------------

    def _on_trajectory_basins_requested(self, base, indices, x_range, y_range, grid: int,
                                        token: int) -> None:
        run = self.controller.selected
        if run is None:
            return
        self.trajectoryView.basin_title = (
            f"{describe_optimizer(run.settings.optimizer, run.settings.hypers)}, "
            f"{self.controller.runset.steps:,} steps")
        self.analyses.request_basins(base, indices, x_range, y_range, grid, token)

    def _on_trajectory_basin_start_chosen(self, flat, shown) -> None:
        c = self.controller
        run = c.add_run(run_from_start(c.selected, flat, shown))
        c.select_run(run.id)
        self.show_message(f"A new run from ({shown[0]:.3g}, {shown[1]:.3g}): {run.label}. "
                          "Press Play to watch it reach its basin.")

    def _on_analyses_basins_failed(self, text: str) -> None:
        self.trajectoryView.basins_failed(text)
        self.show_message(text)

    def _on_basin_action_toggled(self, on: bool) -> None:
        view = self.trajectoryView
        if on and view.mode != "2d":
            blocker = QSignalBlocker(self.basinAction)
            self.basinAction.setChecked(False)
            del blocker
            n = self.controller.layout.n_grads if self.controller.layout else 0
            more = " Tick \"landscape of\" above the plot and choose two of them." if n > 2 \
                else ""
            self.show_message("A basin map is drawn over the landscape of two parameters; this "
                              f"problem has {n:,} trainable element{'' if n == 1 else 's'}."
                              + more)
            return
        view.basinsCheck.setChecked(on)

    def _on_basins_check_toggled(self, on: bool) -> None:
        blocker = QSignalBlocker(self.basinAction)
        self.basinAction.setChecked(on)
        del blocker

    def run_lr_range_test(self) -> None:
        """Show the learning-rate range test and run it with the settings shown there."""
        self.problemPanel.flush()
        self.bottomTabs.setCurrentWidget(self.lrRangeView)
        self.lrRangeView.runButton.click()

    def _on_lr_range_lr_chosen(self, lr: float) -> None:
        c = self.controller
        run_id = self.lrRangeView.info.get("run")
        if run_id not in {r.id for r in c.runset}:
            run_id = c.runset.selected_id
        c.set_hyper("lr", float(lr), run_id)
        self.show_message(f"Learning rate {lr:.3g} for {c.runset.get(run_id).label}.")

    def show_curvature(self) -> None:
        """The Curvature tab, the arrows on the landscape, and the Hessian now."""
        self.bottomTabs.setCurrentWidget(self.curvatureView)
        if self.trajectoryView.mode == "2d":
            self.trajectoryView.curvatureCheck.setChecked(True)
        self._on_curvature_compute_requested()

    def _on_curvature_compute_requested(self) -> None:
        self.analyses.request_curvature(force=True)
        self.analyses.request_sharpness(force=True)

    def _on_analyses_curvature_ready(self, curvature, info: dict) -> None:
        self.trajectoryView.show_curvature(*self._curvature_in_view(curvature))
        self.curvatureView.show_point(curvature, info)

    def _curvature_in_view(self, curvature) -> tuple:
        """The Hessian's eigenvalues and eigenvectors in the plane of the landscape on show
        (of two elements: the whole Hessian; of a slice: its 2 x 2 block)."""
        view = self.trajectoryView
        names = [name for name, _ in view.axes]
        if view.mode != "2d" or curvature.hessian is None or \
                any(name not in curvature.columns for name in names):
            return None, None
        k = [curvature.columns.index(name) for name in names]
        return np.linalg.eigh(np.asarray(curvature.hessian)[np.ix_(k, k)])

    def _on_trajectory_mode_changed(self) -> None:
        self._show_surface_mode()
        self._on_controller_runs_changed()  # the runs' drawings, made anew
        if self.analyses.curvature is not None:
            self.trajectoryView.show_curvature(*self._curvature_in_view(self.analyses.curvature))
        self.pacer.mark_dirty()

    def _on_analyses_curvature_failed(self, text: str) -> None:
        self.trajectoryView.show_curvature(None, None)
        self.curvatureView.show_error(text)

    def _on_bottom_tabs_current_changed(self, _index: int) -> None:
        self.stepping.update_inspected()
        self.analyses.show_sharpness(self.bottomTabs.currentWidget() is self.curvatureView)
        self.pacer.mark_dirty()  # the tab shown now (the leaderboard) is drawn at the next frame

    def _on_runs_add_requested(self) -> None:
        selected = self.controller.selected.settings
        self.controller.add_run(RunSettings(selected.optimizer, dict(selected.hypers),
                                            schedule=selected.schedule,
                                            clip_norm=selected.clip_norm))

    def _on_runs_fork_requested(self, run_id: int) -> None:
        self.pause_and_wait()
        if self.inspector.row is not None and run_id == self.controller.runset.selected_id:
            self.inspector.restart_here(branch=True)  # from the step the timeline shows
            return
        self.controller.fork_run(run_id)
        self.show_message("Branched: the new run starts where the selected one stands. "
                          "Change its optimizer, then press Play to compare.")

    def _on_controller_problem_loaded(self) -> None:
        c = self.controller
        first = not self._loaded_once
        self._loaded_once = True
        self.problemPanel.show_session(c.session, c.info.shapes)
        self.trajectoryView.configure(c.info.layout, c.info.initial, c.session.landscape)
        self._show_surface_mode()
        self.graphArea.set_problem()
        self.lossView.clear()
        self.inspector.go_live()
        self.curvatureView.clear()
        self.lrRangeView.clear()
        self._show_data()
        self._problem_ok = True
        self._update_controls()
        if first:
            self.documents.mark_saved()
            if self.messageLabel.text().startswith("Starting torch"):
                self.clear_message()

    def _epochs_text(self, step: int) -> str:
        """With mini-batches, how many passes over the data ``step`` steps make."""
        info = self.controller.info
        if info is None or info.data is None or not info.batch_size:
            return ""
        per_epoch = max(1, info.data.rows // info.batch_size)  # the last partial batch is dropped
        return f" · epoch {step / per_epoch:,.1f}"

    def _show_data(self) -> None:
        """The data box, and the data tab: shown (and brought forward) for a new dataset."""
        c = self.controller
        data = c.info.data
        self.dataPanel.show_data(data, c.info.batch_size, c.info.notes)
        self.removeDataAction.setEnabled(data is not None)
        index = self.bottomTabs.indexOf(self.dataView)
        self.bottomTabs.setTabVisible(index, data is not None)
        source = data.source if data is not None else None
        if source != self._data_source and data is not None:
            self.bottomTabs.setCurrentIndex(index)
        elif data is None and self.bottomTabs.currentIndex() == index:
            self.bottomTabs.setCurrentWidget(self.graphArea)
        self._data_source = source
        self.dataFit.reset()

    def _on_controller_runs_changed(self) -> None:
        c = self.controller
        runs, selected = list(c.runset), c.runset.selected_id
        self.lossView.set_runs(runs, selected)
        self.lrPlot.set_runs(runs, selected, c.runset.steps)
        self.trajectoryView.set_runs(runs, selected)
        self.surfaceView.set_runs(runs)
        self.runsPanel.show_runs(runs, selected)
        run = c.selected
        self.problemPanel.show_run(run.settings.optimizer, run.settings.hypers, run.label,
                                   len(runs) > 1, run.settings.schedule, run.settings.clip_norm)
        self.pacer.mark_dirty()

    def _on_controller_selection_changed(self, _run_id: int) -> None:
        self.inspector.go_live()  # another run: its own steps
        self._on_controller_runs_changed()
        self.graphArea.set_problem()  # another run: its own values (same structure)

    def _on_controller_problem_invalid(self, field: str, message: str, column: int) -> None:
        self.problemPanel.show_error(field, message, column)
        self._problem_ok = False
        self._update_controls()

    def _on_controller_problem_valid(self) -> None:
        self.problemPanel.clear_errors()
        self._problem_ok = True
        self._update_controls()

    def _on_controller_state_changed(self, state: str) -> None:
        if state == "running" and "press Play" in self.messageLabel.text():
            self.clear_message()  # done: the runs are playing
        self.inspector.refresh()  # paused: the last update can be explained
        self.stepping.draw_step_shown()  # the timeline rests while the run plays
        self._update_controls()
        self._show_state(state)
        self.pacer.mark_dirty()

    def _show_state(self, state: str) -> None:
        if self.stateLabel.text() != state:
            self.stateLabel.setText(state)
            self.stateLabel.setStyleSheet(f"color: {STATUS_COLORS.get(state, '#555')}; font-weight: bold;")

    def _update_controls(self) -> None:
        self.controls.show_running(self.controller.running, self._problem_ok)

    def show_message(self, text: str) -> None:
        """A line in the status bar, and the banner above the plots."""
        self.statusBar().showMessage(text, 10_000)
        state = self.controller.state
        color = STATUS_COLORS.get(state, "#444") if state in ("diverged", "converged", "finished") else "#444"
        self.messageLabel.setStyleSheet(f"color: {color}; padding: 2px 6px;")
        self.messageLabel.setText(text)
        self.messageLabel.setToolTip(text)

    def clear_message(self) -> None:
        if self.statusBar().currentMessage() == self.messageLabel.text():
            self.statusBar().clearMessage()  # the same line there is just as out of date
        self.messageLabel.setText("")
        self.messageLabel.setToolTip("")

    # --- drawing ------------------------------------------------------------------------

    def redraw(self) -> None:
        """Bring every view up to date with the model (at most ~30 times a second; the
        numbers, at most every READOUT_S while running)."""
        c = self.controller
        if c.runset is None:
            return
        runs, selected = list(c.runset), c.runset.selected_id
        self.lossView.refresh(runs, selected, c.runset.steps)
        self.lrPlot.refresh(runs, c.runset.steps)
        self.trajectoryView.refresh(runs, selected, c.runset.steps)
        self.surfaceView.refresh(runs)
        self.stepping.draw_step_shown()
        if self.graphArea.isVisible() and self.graphArea.height() > 40:
            self.graphArea.show_point(self.inspector.point())
        self.inspector.refresh()
        if self.dataView.isVisible():
            self.dataFit.refresh()
        self._show_state(c.state)
        now = time.monotonic()
        if c.running and now - self._readouts_at < READOUT_S:
            return
        self._readouts_at = now
        self.runsPanel.show_progress(runs)
        if self.leaderboard.isVisible():
            self.leaderboard.refresh(c.runset)
        self.stepLabel.setText(f"step {c.step:,}" + self._epochs_text(c.step))
        self.lossLabel.setText("loss " + (f"{c.last_loss:.6g}" if math.isfinite(c.last_loss) else "—"))
        rate = c.steps_per_s
        self.rateLabel.setText(f"{rate:,.0f} step{'' if round(rate) == 1 else 's'}/s"
                               if c.running or rate else "")
        self.deviceLabel.setText(c.device)

    # --- sessions (see documents.py) ----------------------------------------------------

    def load_session(self, session: Session) -> bool:
        """Show ``session``; on an error keep what is loaded and say why."""
        try:
            self.pause_and_wait()
            self.controller.load_session(session)
        except GdvizError as exc:
            self.show_message(f"Cannot load: {exc}")
            return False
        return True

    def _restore_settings(self, session: Session | None) -> None:
        """Geometry, then the first problem: the given session, else the one open when the
        window last closed, else the seed example. It is built while the worker thread
        imports torch, so the window paints (and takes typing) before that is done."""
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        seed = load_preset("seed-linear")
        first = session or self._remembered_session()
        self._load_first(first or seed, None if first is None else seed)

    def _remembered_session(self) -> Session | None:
        text = self.settings.value("lastSession")
        if not isinstance(text, str) or not text:
            return None
        try:
            return Session.from_dict(json.loads(text))
        except (ValueError, GdvizError, RecursionError, TypeError):
            self.settings.remove("lastSession")  # stale or broken: forget it
            return None

    def _load_first(self, session: Session, fallback: Session | None) -> None:
        self.problemPanel.show_session(session, None)  # the texts now, the shapes when built

        def failed(error: GdvizError) -> None:
            if fallback is None:
                self.show_message(f"Cannot load: {error}")
                return
            self.settings.remove("lastSession")
            self._load_first(fallback, None)

        self.controller.load_session_async(session, failed)

    def _on_controller_loading_started(self) -> None:
        self.show_message("Starting torch… you can type, and Play starts the run as soon as "
                          "it is ready.")

    def _on_controller_cuda_checked(self, reason) -> None:
        from ..core.expressions import FUNCTIONS  # torch is loaded now

        self.problemPanel.configure(sorted(FUNCTIONS), reason)
        if self.controller.session is not None:
            blocker = QSignalBlocker(self.problemPanel.deviceCombo)
            auto = self.controller.session.device == "auto"
            if auto:
                self.problemPanel.deviceCombo.setCurrentIndex(1 if reason is None else 0)
            del blocker

    @property
    def session_path(self) -> Path | None:
        return self.documents.path

    @property
    def png_scale(self) -> float:
        return self.exporting.png_scale

    @png_scale.setter
    def png_scale(self, value: float) -> None:
        self.exporting.png_scale = value

    def open_session(self, path) -> bool:
        return self.documents.open(path)

    def save_session_to(self, path) -> bool:
        return self.documents.save_to(path, self.saveHistoryAction.isChecked())

    def open_example(self, name: str) -> bool:
        return self.documents.open_example(name)

    def has_unsaved_changes(self) -> bool:
        return self.documents.has_unsaved_changes()

    def export(self, kind: str, path) -> bool:
        return self.exporting.export(kind, path)

    def export_animation(self, path, frames: int = 60, fps: float = 15.0,
                         size: tuple[int, int] = (640, 480)) -> bool:
        return self.exporting.animation(path, frames, fps, size)

    def ask_animation_options(self) -> tuple[int, float, tuple[int, int]] | None:
        """Frames, frame rate and size for an animation; tests replace this method."""
        from .exporting import AnimationOptions
        dialog = AnimationOptions(self)
        return dialog.values() if dialog.exec() == AnimationOptions.DialogCode.Accepted else None

    def pause_and_wait(self, timeout_s: float = 5.0) -> None:
        """Pause and let the run's last batches arrive, so what is read next is complete."""
        c = self.controller
        if not c.running:
            return
        c.pause()
        deadline = time.perf_counter() + timeout_s
        while c.running and time.perf_counter() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)

    # --- dialogs (tests replace these) --------------------------------------------------

    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel'."""
        answer = QMessageBox.question(
            self, "Unsaved changes", "The session has changes that are not saved. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(answer, "cancel")

    def ask_path(self, title: str, suggested: str, filters: str, save: bool) -> str | None:
        """A file dialog: Qt's own, with plain icons, so that it never reads a file's
        contents to guess its type (which hangs on /proc/kmsg)."""
        from .file_dialog import ask_file
        return ask_file(self, title, suggested, filters, save)

    def report_error(self, title: str, text: str) -> None:
        """Say what went wrong: the banner and a message box that does not block."""
        self.show_message(f"{title}: {text}")
        self.messageLabel.setStyleSheet("color: #c62828; padding: 2px 6px;")
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.lastError = text

    # --- drag and drop, closing ---------------------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self.documents.dropped_file(event) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        self.documents.drop(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.documents.confirm_discard():
            event.ignore()
            return
        self.pacer.stop()
        self.analyses.cancel_basins()  # a piece in progress stops within a few steps
        self.controller.shutdown()
        self.graphArea.shutdown()
        if self._graph_window is not None:
            self._graph_window.close()
        self.settings.setValue("geometry", self.saveGeometry())
        c = self.controller
        doc = c.document(include_history=False) if c.runset is not None else c.session
        if doc is not None:  # closed before the first problem was even built: keep that one
            remembered = doc.with_changes(runs=[r.fresh() for r in doc.runs])
            self.settings.setValue("lastSession",
                                   json.dumps(remembered.to_dict(include_history=False)))
        self.settings.sync()
        super().closeEvent(event)
