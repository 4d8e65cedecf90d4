"""The controller: owns the model of the runs, the worker and its thread, and wires views to
them.

State lives in one place each:

- the session (problem definition and shared settings) and the :class:`RunSet` (every
  run's settings, values, status, history, and the selected run) live here, on the GUI
  thread, as plain data;
- every tensor and optimizer state lives in the worker's engine, on its thread.

Views announce intent by calling the controller; they learn what happened from its signals
(the model's events, bridged). Every change that invalidates what is in flight bumps
``generation``, so batches still queued from an old problem are dropped on arrival.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..core.analysis.landscape import LandscapeGrid
from ..core.errors import ExpressionError, GdvizError
from ..core.model import Run, RunSet, RunSettings, comparison_runs, ramp_color
from ..core.params import ParamSpec
from ..core.records import EngineBatch, ProblemInfo, RowState
from ..core.report import run_summary
from ..core.schedules import Schedule, check_clip_norm
from ..core.session import (DataSource, Session, apply_overrides, build_runset,
                            session_from_runset)
from ..core.status import Status
from .landscape_pieces import LandscapeJob, next_piece
from .worker import EngineWorker

# Nothing here imports torch: the worker thread does, when it builds the first problem, so
# the window can paint before torch has loaded.

# One batch per redraw: every batch wakes the GUI thread, which then competes for the GIL.
BATCH_S = 0.033


def _build(worker: EngineWorker, generation: int, session: Session):
    """On the worker's thread: the problem, the engine and the model for ``session``."""
    from ..core.device import resolve_device
    from ..core.engine import Engine

    problem = session.build_problem()
    device = resolve_device(session.device)
    runset = build_runset(session, problem.layout, problem.initial_flat())
    engine = Engine(problem, device, session.steps, session.tol, BATCH_S)
    for run in runset.engine_runs():
        engine.add_run(run)
        if run.step == 0 or not np.isfinite(runset.get(run.id).loss):
            runset.get(run.id).loss = engine.loss_at(run.values)
    worker.adopt(generation, problem, engine)
    return problem.info(), runset, str(device)


def _cuda_reason(_worker: EngineWorker) -> str | None:
    from ..core.device import cuda_unavailable_reason
    return cuda_unavailable_reason()


class TrainingController(QObject):
    """See the module docstring."""

    problemLoaded = Signal()               # a new problem and model: views rebuild
    problemInvalid = Signal(str, str, int)  # field, message, column (0 when unknown)
    problemValid = Signal()
    runsChanged = Signal()                 # runs added, removed, renamed, recoloured...
    progressed = Signal()                  # new steps or values: views redraw (throttled)
    selectionChanged = Signal(int)
    stateChanged = Signal(str)             # idle, running, paused, finished, converged, diverged
    runFinished = Signal(dict)             # the run ended: the selected run's summary
    message = Signal(str)                  # a line for the status bar
    landscapeReady = Signal(object)        # LandscapeGrid
    loadingStarted = Signal()              # a problem is being built (the first one: torch loads)
    cudaChecked = Signal(object)           # why CUDA cannot be used here, or None
    graphReady = Signal(object)            # ComputationGraph of the selected run

    _startRun = Signal(int, int, int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.session: Session | None = None
        self.info: ProblemInfo | None = None
        self.runset: RunSet | None = None
        self.device = "cpu"
        self.generation = 0
        #: counts the times the window needed the worker at once (loading a problem): a long
        #: analysis under way stops when it changes
        self.preempted = 0
        self._token = 0
        self.running = False
        self.steps_per_s = 0.0
        self._rate_from: tuple[float, int] | None = None
        self._requests = itertools.count(1)
        self.loading = False
        self._queued: int | None = None  # Play (-1) or Step (n) pressed while loading
        self._undo: list[Session] = []
        self._redo: list[Session] = []  # what an undo replaced, until the next change
        self._callbacks: dict[int, tuple] = {}
        self._landscape_job: LandscapeJob | None = None
        self._state = "idle"

        self._thread = QThread()
        self._thread.setObjectName("gdviz-training")
        self.worker = EngineWorker()
        self.worker.batch_s = BATCH_S
        self.worker.moveToThread(self._thread)
        self._startRun.connect(self.worker.run)
        self.worker.batchReady.connect(self._on_worker_batch)
        self.worker.runEnded.connect(self._on_worker_run_ended)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.replied.connect(self._on_worker_replied)
        self._thread.start()

    # --- the selected run (what single-run views show) ----------------------------------

    @property
    def selected(self) -> Run | None:
        return self.runset.selected if self.runset is not None else None

    @property
    def step(self) -> int:
        run = self.selected
        return run.step if run else 0

    @property
    def current(self) -> np.ndarray:
        run = self.selected
        return run.values if run else np.zeros(0)

    @property
    def last_loss(self) -> float:
        run = self.selected
        return run.loss if run else math.nan

    @property
    def history(self):
        run = self.selected
        return run.history if run else None

    @property
    def layout(self):
        return self.info.layout if self.info else None

    @property
    def state(self) -> str:
        return self._state

    def _update_state(self) -> None:
        run = self.selected
        state = "running" if self.running else (run.status.value if run else "idle")
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    # --- loading a problem --------------------------------------------------------------

    def load_session(self, session: Session) -> None:
        """Build the problem and the runs of ``session``; raises GdvizError (an
        ExpressionError for a mistake in the function or loss) when it cannot, leaving
        what is loaded untouched."""
        self._stop_running()
        self.preempted += 1  # a long analysis on the worker stops for this
        generation = self.generation + 1
        built = self.worker.call(lambda w: _build(w, generation, session))
        self._install(generation, session, *built)
        # A first problem still building (the window's, when a file is opened at start) is
        # replaced: its answer is dropped, so nothing waits for it any more.
        self.loading, self._queued = False, None

    def load_session_async(self, session: Session,
                           on_error: Callable[[GdvizError], None] | None = None) -> None:
        """Start building ``session`` and return at once: the window's first problem, built
        while the worker thread imports torch. Play and Step pressed meanwhile wait for it
        (``loading``); ``on_error`` hears of a session that cannot be built."""
        self._stop_running()
        self.generation += 1
        generation = self.generation
        self.loading = True
        self.session = session
        self.loadingStarted.emit()

        def done(built) -> None:
            if generation != self.generation:
                return  # something else was loaded meanwhile
            self.loading = False
            self._install(generation, session, *built)
            queued, self._queued = self._queued, None
            if queued is not None:
                self._start(queued)

        def failed(error: GdvizError) -> None:
            if generation == self.generation:
                self.loading, self._queued = False, None
                if on_error is not None:
                    on_error(error)

        self.request(lambda w: _build(w, generation, session), done, failed)
        self.request(_cuda_reason, self.cudaChecked.emit)

    def _install(self, generation: int, session: Session, info: ProblemInfo, runset: RunSet,
                 device: str) -> None:
        self.generation = generation
        self.session, self.info, self.device = session, info, device
        if self.runset is not None:
            self._disconnect_model(self.runset)
        self.runset = runset
        runset.runs_changed.connect(self.runsChanged.emit)
        runset.progressed.connect(self.progressed.emit)
        runset.selection_changed.connect(self._on_model_selection_changed)
        self.steps_per_s = 0.0
        self.running = False
        self.problemLoaded.emit()
        self.problemValid.emit()
        self.runsChanged.emit()
        self.progressed.emit()
        self._update_state()
        for warning in session.warnings:
            self.message.emit(warning)

    def _disconnect_model(self, runset: RunSet) -> None:
        runset.runs_changed.disconnect(self.runsChanged.emit)
        runset.progressed.disconnect(self.progressed.emit)
        runset.selection_changed.disconnect(self._on_model_selection_changed)

    def document(self, include_history: bool = False) -> Session:
        """The session as the model stands (without asking the engine: for edits)."""
        return session_from_runset(self.session, self.runset, include_history)

    def _reload(self, session: Session, note: str) -> bool:
        """Load ``session`` in place of what is loaded; a run of more than a few steps that
        this replaces can be brought back with :meth:`undo`."""
        previous = self._keepsake()
        try:
            self.load_session(session)
        except ExpressionError as exc:
            self._report_invalid(exc)
            return False
        except GdvizError as exc:
            self.problemInvalid.emit("params", str(exc), 0)
            return False
        self._remember(previous)
        self.message.emit(note + (" Ctrl+Z brings the previous run back." if previous else ""))
        return True

    def _report_invalid(self, exc: ExpressionError) -> None:
        """A mistake in the function or the loss, with a word on renamed data columns: a
        CSV column called 'sin' is sin_data, and typing sin would otherwise only say that
        sin is a function."""
        message = exc.bare_message
        data = self.info.data if self.info is not None else None
        if data is not None:
            for name, header in data.headers.items():
                if header != name and header and f"'{header}'" in message:
                    message += f" (the data's column '{header}' is called {name} here)"
                    break
        self.problemInvalid.emit(exc.field, message, exc.column or 0)

    # --- undo -----------------------------------------------------------------------------

    UNDO_STEPS = 5       # a run shorter than this is not worth an undo
    UNDO_DEPTH = 10
    #: how long an undo point waits for the worker's optimizer states before it keeps the
    #: window's own copy of the runs (a long analysis holds the worker; the click must not)
    KEEPSAKE_WAIT_S = 1.0

    def _keepsake(self) -> Session | None:
        """The session as it stands, history included, when it holds real progress."""
        if self.runset is None or max((r.step for r in self.runset), default=0) <= self.UNDO_STEPS:
            return None
        self._stop_running()
        try:
            return self.snapshot(include_history=True, timeout_s=self.KEEPSAKE_WAIT_S)
        except GdvizError:  # the worker is busy with a long request: the model as it stands
            return session_from_runset(self.session, self.runset, True)

    def _remember(self, session: Session | None) -> None:
        self._redo.clear()  # a new change: what was undone stays undone
        if session is not None:
            self._undo.append(session)
            del self._undo[:-self.UNDO_DEPTH]

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Bring back the runs a reset or a change of problem replaced (their history too)."""
        if self._swap(self._undo, self._redo, "undo"):
            self.message.emit("Undone: the previous runs are back, where they were. "
                              "Ctrl+Shift+Z redoes.")
            return True
        return False

    def redo(self) -> bool:
        """Bring back what the last undo replaced."""
        if self._swap(self._redo, self._undo, "redo"):
            self.message.emit("Redone.")
            return True
        return False

    def _swap(self, source: list[Session], target: list[Session], word: str) -> bool:
        """Load the last session of ``source``, keeping what it replaces in ``target``."""
        if not source:
            self.message.emit(f"Nothing to {word}.")
            return False
        if self.runset is not None:
            self._stop_running()
            current = self.snapshot(include_history=True)
        else:
            current = None
        session = source.pop()
        try:
            self.load_session(session)
        except GdvizError as exc:
            source.append(session)  # still there for another try
            self.message.emit(f"Cannot {word}: {exc}")
            return False
        if current is not None:
            target.append(current)
            del target[:-self.UNDO_DEPTH]
        return True

    def edit_problem(self, function: str, loss: str, params: dict[str, ParamSpec]) -> bool:
        """Apply an edited function, loss or initial values if they build; otherwise report
        the error and keep the last good problem loaded."""
        s = self.session
        if (function, loss, params) == (s.function, s.loss, s.params):
            self.problemValid.emit()
            return True
        what = "function" if function != s.function else "loss" if loss != s.loss \
            else "initial values"
        try:
            params = function_params(function, params, self.info.data)
        except ExpressionError as exc:
            self._report_invalid(exc)
            return False
        new = apply_overrides(self.document(), function=function, loss=loss, params=params)
        if function != s.function:
            # An edited example is no longer that example: it saves under a name of its own.
            new = new.with_changes(name="", description="")
        return self._reload(new, f"The {what} changed, so the run was reset.")

    def set_data(self, source: DataSource | None) -> None:
        """Fit ``source``'s data (None: no data). Its columns stop being parameters (and
        names that were columns become parameters again); the runs restart. Raises
        GdvizError (a DataError for a file that cannot be read) when the data or the problem
        with it cannot be used, leaving everything as it was."""
        s = self.session
        dataset = source.load() if source is not None else None
        params = function_params(s.function, s.params, dataset)
        batch = s.batch_size if source is not None else None
        new = apply_overrides(self.document(), data=source, batch_size=batch, params=params)
        previous = self._keepsake()
        self.load_session(new)
        self._remember(previous)
        if dataset is None:
            self.message.emit("The data was removed: its columns are parameters again, and the "
                              "runs restart.")
            return
        notes = "; ".join(self.info.notes)
        self.message.emit(f"Fitting {dataset.describe()}." + (f" Note: {notes}." if notes else "")
                          + " The runs restart.")

    def set_batch_size(self, batch_size: int | None) -> None:
        """Rows per mini-batch (None: the full data every step); the runs restart."""
        if batch_size == self.session.batch_size or self.session.data is None:
            return
        what = "full batch" if batch_size is None else f"mini-batches of {batch_size:,} rows"
        self._reload(apply_overrides(self.document(), batch_size=batch_size),
                     f"Now {what}, so the run was reset.")

    def set_seed(self, seed: int) -> None:
        if seed != self.session.seed:
            self._reload(apply_overrides(self.document(), seed=seed),
                         f"Seed {seed}: new initial values, the run was reset.")

    def set_device(self, device: str) -> None:
        if device != self.session.device:
            self._reload(apply_overrides(self.document(), device=device)
                         .with_changes(runs=[r.fresh() for r in self.session.runs]),
                         f"Device {device}: the run was reset.")

    def set_start(self, flat: np.ndarray) -> None:
        """A new start point for every run (a click on the landscape): it becomes the
        parameters' initial values, so the table and saved sessions show it."""
        layout = self.info.layout
        params = dict(self.session.params)
        for name, value in layout.unflatten(np.asarray(flat, dtype=np.float64)).items():
            old = params.get(name, ParamSpec())
            params[name] = ParamSpec(_value_text(value), old.frozen)
        new = apply_overrides(self.document(), params=params)
        self._reload(new, "New start point chosen on the landscape; the run was reset.")

    # --- settings -------------------------------------------------------------------------

    def set_steps(self, steps: int) -> None:
        self.session = self.session.with_changes(steps=int(steps))
        self.runset.set_limits(steps=int(steps))
        self.worker.post(lambda w, s=int(steps): w.engine.set_limits(max_steps=s))
        self._update_state()

    def set_tol(self, tol: float | None) -> None:
        self.session = self.session.with_changes(tol=tol)
        self.runset.set_limits(tol=tol)
        self.worker.post(lambda w: w.engine.set_limits(tol=tol))
        self._update_state()

    def set_speed(self, steps_per_s: float) -> None:
        self.worker.set_speed(steps_per_s)

    def set_landscape(self, landscape: dict[str, list[float]] | None) -> None:
        self.session = self.session.with_changes(landscape=landscape)

    def set_hyper(self, name: str, value: Any, run_id: int | None = None) -> None:
        """A hyperparameter of one run (the selected one by default); takes effect at the
        next step, also mid-run."""
        run = self.runset.get(run_id) if run_id is not None else self.selected
        hypers = {**run.settings.hypers, name: value}
        self.runset.update_settings(run.id, hypers=hypers)
        self.worker.post(lambda w, i=run.id: w.engine.set_hyper(i, name, value))

    def set_schedule(self, schedule: Schedule, clip_norm: float | None,
                     run_id: int | None = None) -> None:
        """A run's learning-rate schedule and gradient clip (the selected run by default);
        they take effect at the next step, also mid-run. The schedule spans the step limit."""
        run = self.runset.get(run_id) if run_id is not None else self.selected
        clip_norm = check_clip_norm(clip_norm)
        self.runset.update_settings(run.id, schedule=schedule, clip_norm=clip_norm)
        self.worker.post(lambda w, i=run.id: w.engine.set_schedule(i, schedule, clip_norm))

    def set_optimizer(self, name: str, hypers: dict[str, Any], run_id: int | None = None) -> None:
        """Switch a run's optimizer: it continues from its current point with a fresh state."""
        run = self.runset.get(run_id) if run_id is not None else self.selected
        self.runset.update_settings(run.id, optimizer=name, hypers=dict(hypers))
        self.worker.post(lambda w, i=run.id: w.engine.set_optimizer(i, name, hypers))
        self.message.emit(f"Optimizer {name}: continues from the current point.")

    # --- the set of runs ----------------------------------------------------------------

    def select_run(self, run_id: int) -> None:
        self.runset.select(run_id)

    def _on_model_selection_changed(self, run_id: int) -> None:
        self.selectionChanged.emit(run_id)
        self._update_state()
        self.progressed.emit()

    def add_run(self, settings: RunSettings) -> Run:
        run = self.runset.add(settings)
        engine_run = run.engine_run()
        values = np.array(run.values, dtype=np.float64)
        generation = self.generation

        def add(w: EngineWorker) -> float | None:
            w.engine.add_run(engine_run)
            return w.engine.loss_at(values) if w.generation == generation else None

        def show(loss: float | None) -> None:
            # a new run's loss where it starts, before its first step (not "—")
            if loss is not None and run.step == 0 and not math.isfinite(run.loss):
                run.loss = loss
                self.progressed.emit()

        self.request(add, show)
        return run

    def duplicate_run(self, run_id: int) -> Run:
        """The same settings, from the start."""
        parent = self.runset.get(run_id).settings
        return self.add_run(RunSettings(parent.optimizer, dict(parent.hypers),
                                        (parent.label + " copy") if parent.label else "", "",
                                        True, parent.start, parent.schedule, parent.clip_norm))

    def fork_run(self, run_id: int, optimizer: str | None = None) -> Run:
        """"Branch from here": a new run from where ``run_id`` stands, optimizer state and
        history included (with another optimizer, a fresh state)."""
        self.sync()
        settings = None
        if optimizer is not None and optimizer != self.runset.get(run_id).settings.optimizer:
            parent = self.runset.get(run_id).settings
            settings = RunSettings(optimizer, {"lr": parent.hypers["lr"]})
        child = self.runset.fork(run_id, settings)
        engine_run = child.engine_run()
        self.worker.post(lambda w: w.engine.add_run(engine_run))
        self.runset.select(child.id)
        return child

    def restart_run(self, run_id: int, row: int, state: RowState | None,
                    remember: bool = True) -> None:
        """"Restart from here": put a paused run back at its history row ``row`` (its
        parameters, step and loss there) with optimizer state ``state`` (None: fresh); the
        later rows are dropped, and Ctrl+Z brings them back (with ``remember``)."""
        if remember:
            self._remember(self._keepsake())
        self._stop_running()
        run = self.runset.get(run_id)
        history = run.history
        step = int(history.steps[row])
        values = history.params[row].astype(np.float64).copy()
        run.values, run.step, run.loss = values, step, float(history.loss[row])
        run.grad, run.message, run.optimizer_state = None, "", state
        run.status = Status.PAUSED if step else Status.IDLE
        run.epoch_losses = [mark for mark in run.epoch_losses if mark[0] <= step]
        history.truncate(step)
        self.worker.post(lambda w: w.engine.reset(run_id, values, step, state))
        self.runsChanged.emit()
        self.progressed.emit()
        self._update_state()

    def remove_run(self, run_id: int) -> None:
        if len(self.runset) <= 1:
            self.message.emit("A session keeps at least one run.")
            return
        if self.runset.get(run_id).step > self.UNDO_STEPS:  # Ctrl+Z brings it back
            self._remember(self.snapshot(include_history=True))
        self.runset.remove(run_id)
        self.worker.post(lambda w: w.engine.remove_run(run_id))
        self._update_state()

    def update_run(self, run_id: int, **changes: Any) -> None:
        """Label, colour or visibility (nothing the engine needs)."""
        self.runset.update_settings(run_id, **changes)

    def replace_runs(self, settings: list[RunSettings], note: str) -> None:
        """A new set of runs from the common start (Compare optimizers, LR sweep)."""
        from ..core.session import RunRecord

        records = [RunRecord(s.optimizer, dict(s.hypers), s.label, s.color, s.visible, None)
                   for s in settings]
        self._reload(self.document().with_changes(runs=records, selected=0), note)

    def compare_optimizers(self) -> None:
        """SGD, momentum, Nesterov, RMSprop, Adam and AdamW with sensible learning rates."""
        self.replace_runs(comparison_runs(self.selected.settings, self.info.initial),
                          "Comparing six optimizers from the same start: press Play.")

    def lr_sweep(self, optimizer: str, low: float, high: float, count: int) -> None:
        lrs = np.geomspace(low, high, count) if count > 1 else np.array([low])
        runs = [RunSettings(optimizer, {"lr": float(lr)}, f"lr {lr:.3g}",
                            ramp_color(k / max(1, count - 1))) for k, lr in enumerate(lrs)]
        self.replace_runs(runs, f"{count} runs of {optimizer}, lr {low:g} to {high:g}: press Play.")

    # --- running ------------------------------------------------------------------------

    def play(self) -> None:
        """Run every run to the step limit; from the start again when all have ended."""
        if self.loading:
            self._queued = -1
            self.message.emit("Starting torch… the run begins as soon as it is ready.")
            return
        if self.runset is None or self.running:
            return
        if all(r.status.stopped for r in self.runset) and \
                not any(r.status == Status.DIVERGED for r in self.runset):
            self.reset()
        if not self._runnable():
            self.message.emit("Every run has ended; press Reset to start again.")
            return
        self._start(-1)

    def _runnable(self) -> list[Run]:
        return [r for r in self.runset if not r.status.stopped and r.step < self.runset.steps]

    def pause(self) -> None:
        if self.running:
            self.worker.cancel(self._token)

    def step_once(self, count: int = 1) -> None:
        """Exactly ``count`` lock steps (not past the step limit)."""
        if self.loading:
            self._queued = int(count)
            self.message.emit("Starting torch… the steps are taken as soon as it is ready.")
            return
        if self.runset is None or self.running:
            return
        if not self._runnable():
            self.message.emit("The step limit is reached (or every run has ended); raise it "
                              "or press Reset.")
            return
        self._start(int(count))

    def _start(self, steps: int) -> None:
        self._token += 1
        self._rate_from = (time.perf_counter(), self.step)
        self.running = True
        for run in self._runnable():
            run.status = Status.RUNNING
        self._update_state()
        self._startRun.emit(self._token, self.generation, steps)

    def reset(self) -> None:
        """Every run back to its start: same seed, same start, a fresh optimizer (Ctrl+Z
        brings them back)."""
        if self.runset is None:
            return
        self._remember(self._keepsake())
        self._stop_running()
        self.generation += 1
        generation = self.generation
        self.runset.reset()
        starts = {r.id: r.values.copy() for r in self.runset}

        def reset_engine(w: EngineWorker) -> dict[int, float]:
            for run_id, values in starts.items():
                w.engine.reset(run_id, values)
            w.generation = generation
            return {run_id: w.engine.loss_at(values) for run_id, values in starts.items()}

        def show_losses(losses: dict[int, float]) -> None:
            if generation == self.generation:
                for run_id, loss in losses.items():
                    if self.runset.get(run_id).step == 0:
                        self.runset.get(run_id).loss = loss
                self.progressed.emit()

        self.request(reset_engine, show_losses)
        self.steps_per_s = 0.0
        self.running = False
        self._update_state()

    def _stop_running(self) -> None:
        if self.running:
            self.worker.cancel(self._token)
            self.running = False

    def sync(self, timeout_s: float = 60.0) -> None:
        """Bring the model's optimizer states up to date with the engine (waits for it)."""
        generation = self.generation
        runs = self.worker.call(lambda w: w.engine.export() if w.generation == generation else {},
                                timeout_s)
        self.runset.apply_export(runs)

    def snapshot(self, include_history: bool = True, timeout_s: float = 60.0) -> Session:
        """The session as it stands now: problem, runs, where each is (optimizer state
        included: the engine is asked, after it applied every pending change) and history."""
        self.sync(timeout_s)
        return session_from_runset(self.session, self.runset, include_history)

    def summary(self, run: Run | None = None) -> dict:
        run = run or self.selected
        return run_summary(run, self.info.layout, self.info.loss_summed, self.device,
                           self.runset.steps, 0.0, 0)

    # --- asking the worker --------------------------------------------------------------

    def request(self, fn: Callable[[EngineWorker], Any], callback: Callable[[Any], None],
                on_error: Callable[[GdvizError], None] | None = None) -> None:
        """Run ``fn(worker)`` on the worker's thread; ``callback(result)`` here after (or
        ``on_error(error)``; without it, the error becomes a message)."""
        request_id = next(self._requests)
        self._callbacks[request_id] = (callback, on_error)
        self.worker.post(fn, reply=request_id)

    def request_landscape(self, base: np.ndarray, indices: list[int], xs: np.ndarray,
                          ys: np.ndarray | None, token: int) -> None:
        """The loss over a grid, in pieces on large data (see landscape_pieces.py); the
        answers come through ``landscapeReady``. A newer request cancels this one."""
        if self._landscape_job is not None:
            self._landscape_job.cancelled = True
        job = self._landscape_job = LandscapeJob(
            token, self.generation, np.asarray(base, dtype=np.float64).copy(), list(indices),
            np.asarray(xs, dtype=np.float64), None if ys is None else np.asarray(ys, dtype=np.float64))
        self._request_landscape_piece(job)

    def _request_landscape_piece(self, job: LandscapeJob) -> None:
        def answered(answer: tuple[LandscapeGrid | None, bool]) -> None:
            grid, finished = answer
            if job.cancelled:
                return
            if grid is not None:
                self.landscapeReady.emit(grid)
            if finished:
                return
            if self.running:  # the run first: as long a pause as the piece took
                QTimer.singleShot(max(1, round(1000 * job.seconds)), self,
                                  lambda: job.cancelled or self._request_landscape_piece(job))
            else:
                self._request_landscape_piece(job)

        self.request(lambda w: next_piece(job, w), answered)

    def request_graph(self, flat: np.ndarray, token: int) -> None:
        generation = self.generation

        def capture(w: EngineWorker):
            from ..core.graph_capture import capture_graph

            if w.generation != generation or w.problem is None or \
                    len(flat) != w.problem.layout.n_params:
                return None
            graph = capture_graph(w.problem, w.problem.layout.unflatten(flat))
            graph.token = token
            return graph

        # always answered (None: dropped), so the graph panel knows no capture is in flight
        self.request(capture, self.graphReady.emit, lambda error: (
            self.graphReady.emit(None), self.message.emit(str(error))))

    @Slot(int, object, object)
    def _on_worker_replied(self, request_id: int, result: Any, error: Any) -> None:
        callback, on_error = self._callbacks.pop(request_id, (None, None))
        if error is not None:
            if on_error is not None:
                on_error(error)
            else:
                self.message.emit(str(error))
            return
        if callback is not None:
            callback(result)

    # --- from the worker ----------------------------------------------------------------

    @Slot(int, object)
    def _on_worker_batch(self, generation: int, batch: EngineBatch) -> None:
        if generation != self.generation:
            return  # from a run that was reset or replaced
        selected = self.selected
        self.runset.apply(batch)
        if self._rate_from is not None and selected is not None:
            t0, s0 = self._rate_from
            dt = time.perf_counter() - t0
            if dt > 0.05:
                self.steps_per_s = max(0.0, (selected.step - s0) / dt)
        for run_id, progress in batch.ended.items():
            if progress.message:
                label = self.runset.get(run_id).label if len(self.runset) > 1 else ""
                self.message.emit(f"{label}: {progress.message}" if label else progress.message)
        self._update_state()

    @Slot(int, int)
    def _on_worker_run_ended(self, generation: int, token: int) -> None:
        if generation != self.generation or token != self._token:
            return
        self.running = False
        self.runset.end_run()
        self._update_state()
        run = self.selected
        if run is not None and run.status.stopped:
            if run.status == Status.FINISHED and len(self.runset) == 1:
                self.message.emit(f"Finished: {run.step} steps.")
            self.runFinished.emit(self.summary(run))
        self.progressed.emit()

    @Slot(int, str)
    def _on_worker_failed(self, generation: int, text: str) -> None:
        if generation == self.generation:
            self.message.emit(text)

    # --- shutdown -----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the run and the thread; returns once the thread has finished."""
        self.worker.cancel(self._token + 1_000_000)
        self._thread.quit()
        if not self._thread.wait(10_000):  # a step that never returns: do not hang on exit
            self._thread.terminate()
            self._thread.wait()


def function_params(function: str, params: dict[str, ParamSpec], data) -> dict[str, ParamSpec]:
    """The parameters of ``function``: what ``params`` says for names still in it, rand(1)
    for new names; names no longer there are dropped, and ``data``'s columns (a Dataset,
    or None) are not parameters. Raises ExpressionError for a function that does not
    compile."""
    from ..core.expressions import compile_expression  # pure Python; torch is loaded by now

    names = compile_expression(function, "function", reserved=("y", "loss")).names
    columns = set(data.names) if data is not None else set()
    return {n: params.get(n, ParamSpec()) for n in names if n not in columns}


def _value_text(value: np.ndarray) -> str:
    """An initial value as the table shows it: a number, or a nested list."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):.6g}"
    return np.array2string(arr, separator=", ", precision=6, floatmode="maxprec",
                           threshold=10**9).replace("\n", "")
