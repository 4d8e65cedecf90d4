"""The one object that owns a run: the session, the worker and its thread, the history.

Views announce intent (play, step, an edited function) by calling the controller's slots;
they learn what happened from its signals. Views never touch the trainer. Every change to
the run bumps ``generation`` when it invalidates what is in flight, so batches still
queued from an old run are dropped on arrival.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.errors import ExpressionError, GdvizError
from ..core.history import History
from ..core.presets import load_preset
from ..core.problem import ParamSpec, Problem
from ..core.session import Session
from ..core.trainer import StepBatch, Trainer
from .worker import ENDED, TrainingWorker

IDLE, RUNNING, PAUSED = "idle", "running", "paused"
# One batch per redraw: every batch wakes the GUI thread, which then competes for the GIL.
BATCH_S = 0.033


class TrainingController(QObject):
    """Owns the worker thread and the state of the current run."""

    problemLoaded = Signal()               # a new problem: views rebuild their layout
    problemInvalid = Signal(str, str, int)  # field, message, column (0 when unknown)
    problemValid = Signal()
    historyChanged = Signal()              # new rows or a new state: views redraw (throttled)
    stateChanged = Signal(str)             # idle, running, paused, finished, converged, diverged
    runFinished = Signal(dict)             # a run ended (limit, tolerance, divergence)
    message = Signal(str)                  # a line for the status bar

    _configureWorker = Signal(int, object)
    _runWorker = Signal(int, int, int)
    _resetWorker = Signal(int, object)

    def __init__(self, session: Session | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session or load_preset("seed-linear")
        self.problem: Problem | None = None
        self.trainer: Trainer | None = None
        self.history: History | None = None
        self.generation = 0
        self._token = 0
        self.state = IDLE
        self.step = 0
        self.current = np.zeros(0)
        self.start_point = np.zeros(0)
        self.last_loss = math.nan
        self.steps_per_s = 0.0
        self._rate_from: tuple[float, int] | None = None

        self._thread = QThread()
        self._thread.setObjectName("gdviz-training")
        self.worker = TrainingWorker()
        self.worker.moveToThread(self._thread)
        self._configureWorker.connect(self.worker.configure)
        self._runWorker.connect(self.worker.run)
        self._resetWorker.connect(self.worker.reset)
        self.worker.batchReady.connect(self._on_worker_batch)
        self.worker.runEnded.connect(self._on_worker_run_ended)
        self.worker.stateReady.connect(self._on_worker_state)
        self.worker.failed.connect(self._on_worker_failed)
        self._thread.start()

    # --- problem ------------------------------------------------------------------------

    def load_session(self, session: Session) -> None:
        """Build the problem and a trainer for ``session``; raises GdvizError when invalid
        (the current run is then left untouched)."""
        problem = session.build_problem()
        state = session.state or {}
        trainer = Trainer(problem, session.optimizer, session.hypers, device=session.device,
                          max_steps=session.steps, tol=session.tol, start=state.get("values"),
                          start_step=state.get("step", 0), max_batch_s=BATCH_S,
                          optimizer_state=state.get("optimizer"))
        history = History(trainer.layout)
        session.restore_history(history)
        self._stop_running()
        self.session, self.problem, self.trainer, self.history = session, problem, trainer, history
        self.generation += 1
        self.step = trainer.step
        self.current = trainer.flat_params()
        self.start_point = problem.initial_flat()
        self.last_loss = trainer.current_loss()
        self.steps_per_s = 0.0
        self._set_state(PAUSED if trainer.step else IDLE)
        self._configureWorker.emit(self.generation, trainer)
        self.problemLoaded.emit()
        self.problemValid.emit()
        self.historyChanged.emit()

    def edit_problem(self, function: str, loss: str, params: dict[str, ParamSpec]) -> bool:
        """Apply an edited function, loss or initial values if they compile; otherwise report
        the error and keep the last good problem loaded."""
        try:
            names = Problem(function, loss, params, seed=self.session.seed).names
        except ExpressionError as exc:
            self.problemInvalid.emit(exc.field, exc.bare_message, exc.column or 0)
            return False
        except GdvizError as exc:
            self.problemInvalid.emit("params", str(exc), 0)
            return False
        params = {n: params.get(n, ParamSpec()) for n in names}
        s = self.session
        if (function, loss, params) == (s.function, s.loss, s.params):
            self.problemValid.emit()
            return True
        what = "function" if function != s.function else "loss" if loss != s.loss else "initial values"
        return self._reload(s.with_changes(function=function, loss=loss, params=params,
                                           state=None, history=None, landscape=None
                                           if function != s.function else s.landscape),
                            f"The {what} changed, so the run was reset.")

    def _reload(self, session: Session, note: str) -> bool:
        try:
            self.load_session(session)
        except ExpressionError as exc:
            self.problemInvalid.emit(exc.field, exc.bare_message, exc.column or 0)
            return False
        except GdvizError as exc:
            self.problemInvalid.emit("params", str(exc), 0)
            self.message.emit(str(exc))
            return False
        self.message.emit(note)
        return True

    def set_seed(self, seed: int) -> None:
        if seed != self.session.seed:
            self._reload(self.session.with_changes(seed=seed, state=None, history=None),
                         f"Seed {seed}: new initial values, the run was reset.")

    def set_device(self, device: str) -> None:
        if device != self.session.device:
            self._reload(self.session.with_changes(device=device, state=None, history=None),
                         f"Device {device}: the run was reset.")

    # --- settings that apply to the live run --------------------------------------------

    def set_hyper(self, name: str, value: Any) -> None:
        """Takes effect at the next step, also mid-run."""
        hypers = {**self.session.hypers, name: value}
        self.session.hypers = hypers
        if name == "lr" and self.trainer is not None:
            # A float set on the optimizer is atomic under the GIL: the very next step uses it.
            self.trainer.optimizer.set("lr", float(value))
        self.worker.submit(lambda t: t.set_hyper(name, value))

    def set_optimizer(self, name: str, hypers: dict[str, Any]) -> None:
        self.session.optimizer, self.session.hypers = name, dict(hypers)
        self.worker.submit(lambda t: t.set_optimizer(name, hypers))
        self.message.emit(f"Optimizer {name}: continues from the current point.")

    def set_steps(self, steps: int) -> None:
        self.session.steps = int(steps)
        self.worker.submit(lambda t: setattr(t, "max_steps", int(steps)))

    def set_tol(self, tol: float | None) -> None:
        self.session.tol = tol
        self.worker.submit(lambda t: setattr(t, "tol", tol))

    def set_speed(self, steps_per_s: float) -> None:
        self.worker.set_speed(steps_per_s)

    def set_landscape(self, landscape: dict[str, list[float]] | None) -> None:
        self.session.landscape = landscape

    # --- running ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def play(self) -> None:
        """Run to the step limit; from the start again when the last run finished."""
        if self.trainer is None or self.running:
            return
        if self.state in ("finished", "converged") and self.step >= self.session.steps:
            self.reset()
        self._start(-1)

    def pause(self) -> None:
        if self.running:
            self.worker.cancel(self._token)

    def step_once(self, count: int = 1) -> None:
        """Exactly ``count`` optimizer steps (not past the step limit)."""
        if self.trainer is None or self.running:
            return
        count = min(int(count), max(self.session.steps - self.step, 0))
        if count <= 0:
            self.message.emit("The step limit is reached; raise it or press Reset.")
            return
        self._start(count)

    def _start(self, steps: int) -> None:
        self._token += 1
        self._rate_from = (time.perf_counter(), self.step)
        self._set_state(RUNNING)
        self._runWorker.emit(self._token, self.generation, steps)

    def reset(self, start: np.ndarray | None = None) -> None:
        """Back to the initial values (same seed, same start), or to a new start point."""
        if self.trainer is None:
            return
        self._stop_running()
        self.generation += 1
        self.session.state, self.session.history = None, None
        self.history.clear()
        if start is not None:
            self.start_point = np.asarray(start, dtype=np.float64)
        self.step = 0
        self.steps_per_s = 0.0
        self._set_state(IDLE)
        self._resetWorker.emit(self.generation, self.start_point)
        self.historyChanged.emit()

    def _stop_running(self) -> None:
        if self.running:
            self.worker.cancel(self._token)

    # --- from the worker ----------------------------------------------------------------

    @Slot(int, object)
    def _on_worker_batch(self, generation: int, batch: StepBatch) -> None:
        if generation != self.generation:
            return  # from a run that was reset or replaced
        self.history.extend(batch.steps, batch.loss, batch.params, batch.grads)
        self.step = batch.step
        self.current = batch.current
        if len(batch):
            self.last_loss = float(batch.loss[-1])
        if self._rate_from is not None:
            t0, s0 = self._rate_from
            dt = time.perf_counter() - t0
            if dt > 0.05:
                self.steps_per_s = (self.step - s0) / dt
        self.historyChanged.emit()

    @Slot(int, object)
    def _on_worker_run_ended(self, generation: int, summary: dict) -> None:
        if generation != self.generation:
            return
        self.step = summary["steps"]
        if summary["loss"] is not None:
            self.last_loss = summary["loss"]
        status = summary["status"]
        self._set_state(status)
        if status in ENDED:
            if summary.get("message"):
                self.message.emit(summary["message"])
            elif status == "finished":
                self.message.emit(f"Finished: {self.step} steps.")
            self.runFinished.emit(summary)
        self.historyChanged.emit()

    @Slot(int, object)
    def _on_worker_state(self, generation: int, state: dict) -> None:
        if generation != self.generation:
            return
        self.step = state["step"]
        self.current = state["current"]
        self.last_loss = state["loss"]
        self.historyChanged.emit()

    @Slot(int, str)
    def _on_worker_failed(self, generation: int, text: str) -> None:
        if generation == self.generation:
            self.message.emit(text)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # --- sessions and shutdown ----------------------------------------------------------

    def snapshot(self, include_history: bool = True) -> Session:
        """The session as it stands now: settings, where the run is, and its history."""
        names = self.trainer.layout.unflatten(self.current) if self.trainer else {}
        state = {"step": int(self.step), "values": {n: v.tolist() for n, v in names.items()}} \
            if self.step else None
        if state and not self.running and self.trainer is not None:
            # Only while the worker is idle: its optimizer state must match this step.
            optimizer = self.trainer.optimizer_state()
            if optimizer:
                state["optimizer"] = optimizer
        history = None
        if include_history and self.history is not None and len(self.history):
            history = {"columns": self.history.columns,
                       "rows": self.history.table().tolist()}
        return self.session.with_changes(state=state, history=history,
                                         params=dict(self.session.params),
                                         hypers=dict(self.session.hypers))

    def shutdown(self) -> None:
        """Stop the run and the thread; returns once the thread has finished."""
        self.worker.cancel(self._token + 1_000_000)
        self._thread.quit()
        if not self._thread.wait(10_000):  # a step that never returns: do not hang on exit
            self._thread.terminate()
            self._thread.wait()
