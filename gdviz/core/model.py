"""The model: one problem and the set of runs on it, as plain data that announces changes.

A :class:`RunSet` holds every :class:`Run` (its settings, colour, label, visibility, and where
it stands: values, step, status, optimizer state, history), which run is selected, and the
step limit and tolerance they share. It never touches torch: the engine
(:mod:`gdviz.core.engine`) does the stepping and hands back :class:`EngineBatch` objects,
which :meth:`RunSet.apply` records. The window's controller and views subscribe to the
events; the command line uses the same model without them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .events import Event
from .history import ColumnLayout, History
from .optimizers import OPTIMIZERS, normalize_hypers
from .status import Status
from .records import EngineBatch, EngineRun, RowState
from .schedules import Schedule, check_clip_norm

#: Every run's history together holds at most this many numbers (about 160 MB).
HISTORY_BUDGET = 20_000_000

#: Okabe-Ito, distinguishable with the common colour-vision deficiencies; then more hues.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")


def palette_color(index: int) -> str:
    if index < len(PALETTE):
        return PALETTE[index]
    import colorsys
    h = (index * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.8)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


#: viridis at nine points: a sequential ramp for runs ordered by a value (an lr sweep)
_RAMP = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
         (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37))


def ramp_color(t: float) -> str:
    """A colour from dark purple (t = 0) to yellow (t = 1)."""
    t = min(max(float(t), 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_RAMP[i], _RAMP[i + 1])]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def describe_optimizer(optimizer: str, hypers: dict[str, Any], schedule: Schedule | None = None,
                       clip_norm: float | None = None) -> str:
    """A short label such as 'Adam lr 0.02' or 'SGD lr 0.001 momentum 0.9 nesterov, cosine
    down to 0, clip 1'."""
    spec = OPTIMIZERS[optimizer]
    h = normalize_hypers(optimizer, hypers)
    parts = [spec.title, f"lr {h['lr']:g}"]
    for hyper in spec.hypers:
        if hyper.name == "lr" or h[hyper.name] == hyper.default:
            continue
        value = h[hyper.name]
        parts.append(hyper.name.replace("_", " ") if value is True
                     else f"{hyper.name.replace('_', ' ')} {value:g}")
    text = " ".join(parts)
    if schedule is not None and not schedule.is_constant:
        text += f", {schedule.describe()}"
    if clip_norm is not None:
        text += f", clip {clip_norm:g}"
    return text


@dataclass
class RunSettings:
    """How a run trains: optimizer and hyperparameters, and how it is shown."""

    optimizer: str = "sgd"
    hypers: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    color: str = ""
    visible: bool = True
    start: np.ndarray | None = None  # a flat start point; None: the problem's initial values
    schedule: Schedule = field(default_factory=Schedule)  # the learning rate over the steps
    clip_norm: float | None = None   # gradients scaled down to at most this norm

    def __post_init__(self) -> None:
        self.clip_norm = check_clip_norm(self.clip_norm)


class Run:
    """One run: its settings and where it stands. Plain data only."""

    def __init__(self, run_id: int, settings: RunSettings, layout: ColumnLayout,
                 values: np.ndarray, history_limit: int):
        self.id = run_id
        self.settings = settings
        self.step = 0
        self.values = np.asarray(values, dtype=np.float64).copy()
        self.loss = math.nan
        self.grad: np.ndarray | None = None  # the gradient at ``values``, once computed
        self.status = Status.IDLE
        self.message = ""
        self.optimizer_state: RowState | None = None
        self.history = History(layout, max_values=history_limit)
        #: with mini-batches: the full data's loss at each epoch start, as (step, loss)
        self.epoch_losses: list[tuple[int, float]] = []

    @property
    def label(self) -> str:
        st = self.settings
        return st.label or describe_optimizer(st.optimizer, st.hypers, st.schedule, st.clip_norm)

    @property
    def best_loss(self) -> float:
        finite = self.history.loss[np.isfinite(self.history.loss)]
        values = [float(finite.min())] if len(finite) else []
        if math.isfinite(self.loss):
            values.append(self.loss)
        return min(values) if values else math.nan

    def engine_run(self) -> EngineRun:
        st = self.settings
        return EngineRun(self.id, st.optimizer, dict(st.hypers), self.values.copy(), self.step,
                         copy.deepcopy(self.optimizer_state), self.status, self.message,
                         st.schedule, st.clip_norm)


class RunSet:
    """The runs of one problem, the selected one, and the limits they share.

    Events: ``runs_changed()`` (added, removed, settings, order), ``progressed()`` (new
    steps recorded or values changed), ``selection_changed(run_id)``.
    """

    def __init__(self, layout: ColumnLayout, initial: np.ndarray, steps: int = 1000,
                 tol: float | None = None):
        self.layout = layout
        self.initial = np.asarray(initial, dtype=np.float64).copy()
        self.steps = int(steps)
        self.tol = tol
        self.runs: list[Run] = []
        self.selected_id: int | None = None
        self._next_id = 0
        self._limit: int | None = None
        self.runs_changed = Event()
        self.progressed = Event()
        self.selection_changed = Event()

    # --- looking up ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)

    def get(self, run_id: int) -> Run:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise KeyError(run_id)

    @property
    def selected(self) -> Run | None:
        if self.selected_id is None:
            return self.runs[0] if self.runs else None
        return self.get(self.selected_id)

    def visible(self) -> list[Run]:
        return [r for r in self.runs if r.settings.visible]

    # --- changing the set ---------------------------------------------------------------

    def add(self, settings: RunSettings, announce: bool = True) -> Run:
        """A new run at its start point (its own, or the problem's initial values)."""
        settings.hypers = normalize_hypers(settings.optimizer, settings.hypers)
        if not settings.color:
            used = {r.settings.color for r in self.runs}
            settings.color = next((c for c in (palette_color(i) for i in range(len(self.runs) + 9))
                                   if c not in used), palette_color(len(self.runs)))
        run = Run(self._next_id, settings, self.layout, self.start_of(settings),
                  self._limit or HISTORY_BUDGET)
        self._next_id += 1
        self.runs.append(run)
        self._share_history_budget()
        if self.selected_id is None:
            self.selected_id = run.id
        if announce:
            self.runs_changed.emit()
        return run

    def start_of(self, settings: RunSettings) -> np.ndarray:
        return self.initial.copy() if settings.start is None else \
            np.asarray(settings.start, dtype=np.float64).copy()

    def fork(self, run_id: int, settings: RunSettings | None = None) -> Run:
        """A new run from where ``run_id`` stands now: its point, step, optimizer state and
        history (so its curve starts where the parent's is)."""
        parent = self.get(run_id)
        settings = settings or copy.deepcopy(parent.settings)
        if settings.color == parent.settings.color:
            settings.color = ""
        settings.label = settings.label if settings.label != parent.settings.label else ""
        child = self.add(settings, announce=False)
        child.values, child.step, child.loss = parent.values.copy(), parent.step, parent.loss
        child.grad = parent.grad
        if settings.optimizer == parent.settings.optimizer:
            child.optimizer_state = copy.deepcopy(parent.optimizer_state)
        child.status = Status.PAUSED if parent.step else Status.IDLE
        if parent.status == Status.FINISHED:
            child.status = Status.FINISHED
        child.history.extend(parent.history.steps, parent.history.loss, parent.history.params,
                             parent.history.grads)
        child.epoch_losses = list(parent.epoch_losses)
        self.runs_changed.emit()
        return child

    def remove(self, run_id: int) -> None:
        self.runs = [r for r in self.runs if r.id != run_id]
        if self.selected_id == run_id:
            self.selected_id = self.runs[0].id if self.runs else None
            self.selection_changed.emit(self.selected_id)
        self._share_history_budget()
        self.runs_changed.emit()

    def select(self, run_id: int) -> None:
        if run_id != self.selected_id:
            self.get(run_id)
            self.selected_id = run_id
            self.selection_changed.emit(run_id)

    def update_settings(self, run_id: int, **changes: Any) -> None:
        """Label, colour, visibility, optimizer, hyperparameters, schedule or clip of one run."""
        run = self.get(run_id)
        if "clip_norm" in changes:
            changes["clip_norm"] = check_clip_norm(changes["clip_norm"])
        for key, value in changes.items():
            setattr(run.settings, key, value)
        if "optimizer" in changes:
            run.optimizer_state = None
        run.settings.hypers = normalize_hypers(run.settings.optimizer, run.settings.hypers)
        self.runs_changed.emit()

    def reset(self, run_ids: Iterable[int] | None = None) -> None:
        """Runs back to their start points: step 0, no history, a fresh optimizer."""
        ids = set(run_ids) if run_ids is not None else {r.id for r in self.runs}
        for run in self.runs:
            if run.id in ids:
                run.values = self.start_of(run.settings)
                run.step, run.loss, run.status, run.message = 0, math.nan, Status.IDLE, ""
                run.grad = None
                run.optimizer_state = None
                run.history.clear()
                run.epoch_losses = []
        self.progressed.emit()

    def set_limits(self, steps: int | None = None, tol: float | None | str = "keep") -> None:
        """A new step limit or tolerance; runs they no longer stop can go on (as the
        engine decides in :meth:`Engine.set_limits`)."""
        if steps is not None:
            self.steps = int(steps)
        if tol != "keep":
            self.tol = tol  # type: ignore[assignment]
        for run in self.runs:
            if run.status == Status.FINISHED and run.step < self.steps:
                run.status = Status.PAUSED
            if run.status == Status.CONVERGED and (self.tol is None or not run.loss <= self.tol):
                run.status = Status.PAUSED
        self.progressed.emit()

    def _share_history_budget(self) -> None:
        limit = max(1_000, HISTORY_BUDGET // max(1, len(self.runs)))
        if self._limit is not None and 0.8 < limit / self._limit < 1.25 \
                and all(r.history.max_values == self._limit for r in self.runs[-1:]):
            return  # close enough: not worth touching every run's history
        self._limit = limit
        for run in self.runs:
            run.history.set_limit(limit)

    # --- what the engine reports --------------------------------------------------------

    def apply(self, batch: EngineBatch) -> None:
        """Record a batch: new history rows, where each run stands, stops."""
        for run_id, progress in batch.runs.items():
            try:
                run = self.get(run_id)
            except KeyError:
                continue  # removed while the batch was on its way
            rows = progress.rows
            if len(rows) and len(run.history) and rows.steps[0] <= run.history.steps[-1]:
                # a run that stopped rests on a point its history already holds; going on
                # from there, the engine reports that point again
                fresh = rows.steps > run.history.steps[-1]
                rows = type(rows)(rows.steps[fresh], rows.loss[fresh], rows.params[fresh],
                                  rows.grads[fresh])
            if len(rows):
                run.history.extend(rows.steps, rows.loss, rows.params, rows.grads)
            last = run.epoch_losses[-1][0] if run.epoch_losses else -1
            run.epoch_losses += [mark for mark in progress.epochs if mark[0] > last]
            run.values, run.step, run.loss = progress.current, progress.step, progress.loss
            run.grad, run.status = progress.grad, progress.status
            if progress.status.stopped:
                run.message = progress.message
        self.progressed.emit()

    def end_run(self) -> None:
        """The engine stopped stepping: runs it left mid-way are paused (or finished at the
        step limit), as the engine marks them."""
        for run in self.runs:
            if run.status == Status.RUNNING:
                run.status = Status.FINISHED if run.step >= self.steps else Status.PAUSED
        self.progressed.emit()

    def apply_export(self, runs: dict[int, EngineRun]) -> None:
        """Take the engine's plain copy of each run (values, step, optimizer state)."""
        for run_id, er in runs.items():
            try:
                run = self.get(run_id)
            except KeyError:
                continue
            run.values, run.step, run.optimizer_state = er.values.copy(), er.step, er.state
            run.status = er.status if er.status != Status.RUNNING else Status.PAUSED
            run.message = er.message or run.message

    def engine_runs(self) -> list[EngineRun]:
        return [run.engine_run() for run in self.runs]

    # --- the leaderboard ----------------------------------------------------------------

    def leaderboard(self) -> list[dict[str, Any]]:
        """Per run: label, optimizer, status, steps, final and best loss, and the steps it
        took to reach the tolerance (or, without one, to come within 1e-3 of the best run's
        loss)."""
        bests = [r.best_loss for r in self.runs if math.isfinite(r.best_loss)]
        target = self.tol if self.tol is not None else (min(bests) + 1e-3 if bests else None)
        rows = []
        for run in self.runs:
            reach = None
            if target is not None and len(run.history):
                hit = np.flatnonzero(run.history.loss <= target)
                if len(hit):
                    reach = int(run.history.steps[hit[0]])
                elif math.isfinite(run.loss) and run.loss <= target:
                    reach = run.step
            rows.append({"id": run.id, "label": run.label, "color": run.settings.color,
                         "optimizer": run.settings.optimizer, "status": run.status.value,
                         "steps": run.step, "loss": run.loss, "best_loss": run.best_loss,
                         "steps_to_target": reach})
        return rows

    def target_description(self) -> str:
        return (f"steps to reach the tolerance {self.tol:g}" if self.tol is not None
                else "steps to come within 1e-3 of the best run's loss")


def comparison_runs(current: RunSettings, initial: np.ndarray) -> list[RunSettings]:
    """The classic comparison (the window's Runs > Compare optimizers, ``gdviz race
    --compare``), with learning rates that suit the problem's scale: gradient descent at the
    current SGD learning rate (or a cautious one), the adaptive methods at about a
    hundredth of the start's size per step (``initial``: every parameter's start, flat)."""
    sgd_lr = current.hypers["lr"] if current.optimizer == "sgd" else 1e-3
    scale = float(np.max(np.abs(initial))) if np.size(initial) else 1.0
    adaptive = float(f"{0.01 * max(1.0, scale):.2g}")
    plan = [("sgd", {"lr": sgd_lr}, "SGD"),
            ("sgd", {"lr": sgd_lr, "momentum": 0.9}, "Momentum"),
            ("sgd", {"lr": sgd_lr, "momentum": 0.9, "nesterov": True}, "Nesterov"),
            ("rmsprop", {"lr": adaptive}, "RMSprop"),
            ("adam", {"lr": adaptive}, "Adam"),
            ("adamw", {"lr": adaptive}, "AdamW")]
    return [RunSettings(o, h, label, palette_color(k)) for k, (o, h, label) in enumerate(plan)]
