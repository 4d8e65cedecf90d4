"""The window's side of step inspection: the timeline's keys, what the step shown is drawn
on (the loss cursor, the landscape's marker, the arrows, the Update tab) and the gradient
check's window. The step shown and the worker's answers live in :mod:`.step_inspector`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractItemView, QApplication

if TYPE_CHECKING:
    from .main_window import MainWindow


class Stepping(QObject):
    """Wires the timeline, the inspector and the views of one main window (a QObject
    child of it: the application's focus signal lets go of it with the window)."""

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window = window
        self.gradCheckDialog = None
        self._grad_check_where = ""
        self._arrow_shortcuts: list[QShortcut] = []

    def make_shortcuts(self) -> None:
        """Right steps the run, except on a scrubbed timeline, where it moves on a step;
        Left, Home and End move the timeline while the run rests."""
        w = self.window
        keys = {"Right": self._on_right_key, "Left": lambda: self._move_timeline(-1),
                "Home": lambda: self._move_timeline("home"),
                "End": lambda: self._move_timeline("end")}
        self._arrow_shortcuts = [QShortcut(QKeySequence(name), w, activated=slot)
                                 for name, slot in keys.items()]
        QApplication.instance().focusChanged.connect(self._on_app_focus_changed)

    def connect(self) -> None:
        w = self.window
        i = w.inspector
        w.timeline.rowChosen.connect(self._on_timeline_row_chosen)
        w.timeline.restartRequested.connect(i.restart_here)
        w.timeline.branchRequested.connect(lambda: i.restart_here(branch=True))
        w.trajectoryView.arrowsToggled.connect(lambda _on: self.update_inspected())
        i.rowChanged.connect(w.pacer.mark_dirty)
        i.stepExplained.connect(self._on_inspector_step_explained)
        i.gradCheckReady.connect(self._on_inspector_grad_check_ready)
        i.gradCheckFailed.connect(self._on_inspector_grad_check_failed)

    # --- the timeline -------------------------------------------------------------------

    def _on_timeline_row_chosen(self, row: int) -> None:
        self.window.inspector.set_row(None if row < 0 else row)
        self.window.pacer.mark_dirty()

    def _on_app_focus_changed(self, _old, new) -> None:
        """A list or table with the focus keeps its arrow keys (moving between cells)."""
        on = not isinstance(new, QAbstractItemView)
        for shortcut in self._arrow_shortcuts:
            shortcut.setEnabled(on)

    def _move_timeline(self, delta) -> None:
        w = self.window
        if not w.controller.running and w.timeline.slider.isEnabled():
            w.timeline.move(delta)

    def _on_right_key(self) -> None:
        w = self.window
        if not w.controller.running and w.inspector.row is not None:
            self._move_timeline(1)
        else:
            w._on_controls_step_requested(w.controls.stepCountSpin.value())

    def draw_step_shown(self) -> None:
        """The timeline, the loss cursor and the landscape's marker at the step shown."""
        w = self.window
        c, i = w.controller, w.inspector
        run = c.selected
        if run is None:
            return
        h = run.history
        if i.row is not None and i.row >= len(h):
            i.go_live()
        row = i.row
        w.timeline.show_run(h.steps, run.step, h.stride, row, c.running,
                            loss_only=not h.records_elements)
        if row is None:
            w.lossView.set_cursor(None)
            w.trajectoryView.set_cursor(None)
        else:
            step = int(h.steps[row])
            w.lossView.set_cursor(step)
            w.trajectoryView.set_cursor(h.params[row], float(h.loss[row]), step)

    # --- the update at the step shown ----------------------------------------------------

    def update_inspected(self) -> None:
        """The explanation is computed while someone shows it: the arrows or the Update tab."""
        w = self.window
        w.inspector.wanted = w.trajectoryView.arrowsCheck.isChecked() or \
            w.bottomTabs.currentWidget() is w.updateView
        w.inspector.refresh()

    def _on_inspector_step_explained(self, view) -> None:
        w = self.window
        w.trajectoryView.show_step(view)
        run = w.controller.selected
        note = ""
        if run is not None and not run.history.records_elements:
            note = ("This problem has too many elements to record each step's parameters: "
                    "the update cannot be shown step by step, and the graph shows where the "
                    "run stands.")
        elif w.controller.running:
            note = "The run is running: pause it to see its updates."
        w.updateView.show_step(view, note)

    # --- the gradient check -------------------------------------------------------------

    def check_gradients(self) -> None:
        """The gradient check at the step shown, in a window of its own."""
        from .gradcheck_view import GradCheckDialog

        if self.gradCheckDialog is None:
            self.gradCheckDialog = GradCheckDialog(self.window)
        self._grad_check_where = self._shown_step_words()
        self.gradCheckDialog.show_running(self._grad_check_where)
        if self.gradCheckDialog.isVisible():
            self.gradCheckDialog.raise_()
        else:
            self.gradCheckDialog.show()
        self.window.inspector.check_gradients()

    def _on_inspector_grad_check_ready(self, check) -> None:
        if self.gradCheckDialog is not None:
            self.gradCheckDialog.show_check(check, self._grad_check_where)

    def _on_inspector_grad_check_failed(self, text: str) -> None:
        if self.gradCheckDialog is not None:
            self.gradCheckDialog.show_error(text)

    def _shown_step_words(self) -> str:
        w = self.window
        run, row = w.controller.selected, w.inspector.row
        if run is None:
            return "the start"
        step = int(run.history.steps[row]) if row is not None else run.step
        return f"step {step:,} of {run.label}" + ("" if row is not None else " (where it stands)")
