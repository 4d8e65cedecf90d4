"""The window's analyses: the basin map, the learning-rate range test and the curvature.

Each is a core analysis (:mod:`gdviz.core.analysis`) run on the worker, the one thread that
touches torch, through :meth:`TrainingController.request`; only plain answers (numpy arrays
in the core's result objects) come back, through this object's signals, to the views.

- The basin map comes in pieces, so the window and a run in progress stay responsive: first
  a coarse grid (a quarter of the side) in one request, then the full grid a few grid rows
  per request, each answer the whole map so far (the rows not computed yet filled in from
  the coarse grid). A newer request (pan, zoom, another lr) cancels the old job: its next
  piece is never computed and the piece in flight stops within 16 steps.
- The learning-rate range test is one batched sweep, one request.
- The curvature at the selected run's point is computed when it stops moving (paused,
  stepped, selected, loaded) and at most twice a second while it runs, for problems small
  enough that this is cheap; lambda_max along the run only while the Curvature tab shows,
  for the steps not computed yet.

Nothing here imports torch: the core analyses are imported inside the functions that run
on the worker (the window paints before torch has loaded).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from ..core.errors import GdvizError
from ..core.model import Run, RunSettings

if TYPE_CHECKING:
    from .controller import TrainingController
    from .worker import EngineWorker

#: the coarse grid's side is the map's divided by this
COARSE_DIVISOR = 4
#: seconds one piece of a basin map should keep the worker (the run and other requests wait)
PIECE_S = 0.5
#: a basin map whose coarse grid alone would cost more (starts x steps x rows of data) is
#: not started: over large data, every start is a training run over all of it (about 1e8
#: of these a second here)
BASIN_WORK_LIMIT = 5e9
#: the curvature is computed on its own, without being asked, up to this many elements
AUTO_CURVATURE_LIMIT = 500
#: how often the curvature follows a running run
FOLLOW_MS = 500
#: lambda_max along a run: at most about this many steps of it
SHARPNESS_POINTS = 400


# --- stability limits of the optimizers -----------------------------------------------------

def stability_factor(optimizer: str, hypers: dict[str, Any]) -> tuple[float, str, str, str] | None:
    """``(c, limit formula, its parameters, edge formula)`` such that steps on a quadratic
    whose largest curvature is lambda are stable for lr < c / (lambda + weight_decay); None
    for the adaptive methods, whose steps are scaled per element (no such limit).

    Plain gradient descent: c = 2. Heavy-ball momentum beta (dampening d): c =
    2 (1 + beta) / (1 - d). Nesterov (as torch.optim.SGD applies it): c =
    2 (1 + beta) / (1 + 2 beta), from the eigenvalues of the 2 x 2 update along one
    eigendirection."""
    if optimizer != "sgd":
        return None
    beta = float(hypers.get("momentum", 0.0))
    damp = float(hypers.get("dampening", 0.0))
    if beta <= 0:
        return 2.0, "2/λmax", "", "2/lr"
    if hypers.get("nesterov"):
        return (2.0 * (1 + beta) / (1 + 2 * beta), "2(1+β)/((1+2β)·λmax)", f"β = {beta:g}",
                "2(1+β)/((1+2β)·lr)")
    if damp >= 1:
        return None  # the gradient never enters the momentum: nothing moves
    if damp > 0:
        return (2.0 * (1 + beta) / (1 - damp), "2(1+β)/((1−d)·λmax)",
                f"β = {beta:g}, d = {damp:g}", "2(1+β)/((1−d)·lr)")
    return 2.0 * (1 + beta), "2(1+β)/λmax", f"β = {beta:g}", "2(1+β)/lr"


@dataclass
class LrLimit:
    """Where the learning rate of a run stops being stable at the point its curvature was
    measured, and the words that say so."""

    limit: float | None     # None: no limit of this kind (an adaptive method); inf: none here
    lambda_max: float
    formula: str            # e.g. "2/λmax"
    note: str               # one line under the lr field
    method: str = "plain gradient descent"
    params: str = ""        # e.g. "β = 0.9"

    def reason(self, lr: float) -> str:
        """Why ``lr`` is past the limit (the lr field's tooltip)."""
        params = f" ({self.params})" if self.params else ""
        return (f"lr {lr:.4g} is past {self.formula} = {self.limit:.4g}{params} for "
                f"{self.method} at the current point (λmax = {self.lambda_max:.4g}): along the "
                "steepest direction each step overshoots further than the last, so steps will "
                "grow and the run oscillates or diverges.")


def lr_limit(optimizer: str, hypers: dict[str, Any], lambda_max: float) -> LrLimit:
    """The stable learning rates of ``optimizer`` where the Hessian's largest eigenvalue is
    ``lambda_max``."""
    found = stability_factor(optimizer, hypers)
    if found is None:
        return LrLimit(None, lambda_max, "", f"λmax = {lambda_max:.4g} here; {optimizer} scales "
                       "its steps per element, so there is no 2/λ limit")
    factor, formula, params, _edge = found
    method = "plain gradient descent" if not params else \
        "Nesterov momentum" if hypers.get("nesterov") else "heavy-ball momentum"
    curve = lambda_max + float(hypers.get("weight_decay", 0.0))
    with_params = f"{formula}, {params}" if params else formula
    if not curve > 0:
        return LrLimit(math.inf, lambda_max, formula,
                       "no direction curves up here (a maximum, or flat): gradient descent "
                       "moves away from this point at any learning rate, none oscillates",
                       method,
                       params)
    limit = factor / curve
    return LrLimit(limit, lambda_max, formula, f"stable below {limit:.4g} here ({with_params}; "
                   f"λmax = {lambda_max:.4g})", method, params)


def edge_of_stability(optimizer: str, hypers: dict[str, Any]) -> tuple[float, str] | None:
    """The lambda_max at which ``hypers``' learning rate is at the edge of stability
    (2/lr for plain gradient descent), and its name; None for the adaptive methods."""
    found = stability_factor(optimizer, hypers)
    lr = float(hypers.get("lr", 0.0))
    if found is None or not lr > 0:
        return None
    factor, _formula, _params, name = found
    return factor / lr - float(hypers.get("weight_decay", 0.0)), name


# --- the basin map's pieces, on the worker -----------------------------------------------------

@dataclass
class _BasinJob:
    """One basin map being computed. Its fields are written on the worker only, except
    ``cancelled``, which the GUI thread sets (a bool: atomic)."""

    token: int
    generation: int
    optimizer: str
    hypers: dict[str, Any]
    steps: int
    tol: float | None
    base: np.ndarray
    indices: tuple[int, int]
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    grid: int
    cancelled: bool = False
    names: tuple[str, str] = ("", "")
    coarse: Any = None                 # BasinMap of the coarse grid
    chunks: list = field(default_factory=list)
    rows: int = 1                      # grid rows in the next piece
    timings: list = field(default_factory=list)  # (starts, seconds) of each batch so far

    def stop(self) -> bool:
        return self.cancelled


def _device(w: "EngineWorker"):
    return w.engine.device if w.engine is not None else "cpu"


def _basin_coarse(job: _BasinJob, w: "EngineWorker"):
    """The coarse map (one request), and how many grid rows the first piece of the full map
    takes."""
    if job.cancelled or w.generation != job.generation or w.problem is None:
        return None
    from ..core.analysis.basin import basin_axes, basin_map

    job.names = basin_axes(w.problem, list(job.indices))[0]
    side = max(2, job.grid // COARSE_DIVISOR)
    job.coarse = basin_map(w.problem, job.optimizer, job.hypers, job.steps, job.tol,
                           job.x_range, job.y_range, side, list(job.indices), job.base,
                           _device(w), should_stop=job.stop)
    if job.cancelled:
        return None
    if side == job.grid:
        job.chunks = [_whole(job.coarse)]
        return job.coarse, 1.0
    job.timings.append((side ** 2, job.coarse.seconds))
    job.rows = -(-job.grid // 4)  # a quarter first: with the coarse map, it times a batch
    return _so_far(job), 0.0


def _basin_piece(job: _BasinJob, w: "EngineWorker"):
    """The next grid rows of the full map (as many as take about PIECE_S), and the map so
    far. The same computation as :func:`~gdviz.core.analysis.basin.basin_chunks`, in pieces
    whose size follows the time they take."""
    if job.cancelled or w.generation != job.generation or w.problem is None:
        return None
    from ..core.analysis.basin import XTOL_SHARE, BasinChunk, grid_starts
    from ..core.analysis.sweep import sweep

    n = job.grid
    start = job.chunks[-1].stop if job.chunks else 0
    stop = min(n * n, start + job.rows * n)
    span = max(job.x_range[1] - job.x_range[0], job.y_range[1] - job.y_range[0])
    starts = grid_starts(job.x_range, job.y_range, n)[2][start:stop]
    result = sweep(w.problem, job.optimizer, job.hypers, job.base, starts, list(job.indices),
                   job.steps, tol=job.tol, xtol=XTOL_SHARE * span, device=_device(w),
                   should_stop=job.stop)
    if job.cancelled:
        return None
    job.chunks.append(BasinChunk(start, stop, result))
    job.timings.append((stop - start, result.seconds))
    job.rows = _rows_per_piece(job.timings, n, n - stop // n)
    return _so_far(job), stop / (n * n)


def _rows_per_piece(timings: list[tuple[int, float]], grid: int, left: int) -> int:
    """Grid rows that take about PIECE_S, from the batches timed so far: a batch costs a
    fixed time per step (the steps' Python and dispatch, which dominates small batches) plus
    a time per start, fitted as a line through the timings."""
    sizes = np.array([t[0] for t in timings], dtype=np.float64)
    seconds = np.array([t[1] for t in timings], dtype=np.float64)
    if len(set(sizes.tolist())) < 2:
        per = max(seconds[-1], 1e-3) / sizes[-1]
        fixed = 0.0
    else:
        per, fixed = np.polyfit(sizes, seconds, 1)
    if per <= 0 or fixed >= PIECE_S / 2:
        return max(1, left)  # the fixed cost dominates: the rest in one piece
    rows = (PIECE_S - max(fixed, 0.0)) / per / grid
    return int(min(max(1, left), max(1, math.floor(rows))))


def _whole(bmap):
    from ..core.analysis.basin import BasinChunk
    from ..core.analysis.sweep import SweepResult

    n = len(bmap.outcome)
    return BasinChunk(0, n, SweepResult(bmap.ends, bmap.loss, np.full(n, np.nan), bmap.steps,
                                        bmap.outcome))


def _so_far(job: _BasinJob):
    """The full grid's map: the rows computed, the rest from the nearest coarse start."""
    from ..core.analysis.basin import BasinChunk, assemble
    from ..core.analysis.sweep import SweepResult

    n = job.grid
    done = job.chunks[-1].stop if job.chunks else 0
    chunks = list(job.chunks)
    if done < n * n:
        c = job.coarse
        side = len(c.xs)
        k = np.arange(done, n * n)
        i, j = np.divmod(k, n)
        scale = (side - 1) / (n - 1)
        near = np.rint(i * scale).astype(np.int64) * side + np.rint(j * scale).astype(np.int64)
        chunks.append(BasinChunk(done, n * n, SweepResult(
            c.ends[near], c.loss[near], np.full(len(k), np.nan), c.steps[near],
            c.outcome[near])))
    return assemble(job.names, job.indices, job.x_range, job.y_range, n, chunks, job.steps)


# --- the controller of the analyses ------------------------------------------------------------

class AnalysisController(QObject):
    """See the module docstring. Views learn of answers through the signals."""

    basinsReady = Signal(object, int, float)       # BasinMap, token, share of the grid computed
    basinsFailed = Signal(str)
    basinsStale = Signal()                         # the settings changed: ask again
    lrRangeStarted = Signal(str)                   # what is being tested
    lrRangeReady = Signal(object, object)          # LrRange, {"run": id, "label": ..., ...}
    lrRangeFailed = Signal(str)
    curvatureReady = Signal(object, object)        # Curvature, {"run": id, "step": ..., "point"}
    curvatureFailed = Signal(str)
    lrLimitChanged = Signal(object)                # LrLimit of the selected run, or None
    sharpnessReady = Signal(object)                # {"run", "steps", "lambda_max", "edge", ...}

    def __init__(self, controller: "TrainingController", parent: QObject | None = None):
        super().__init__(parent)
        self.c = controller
        self._basin_job: _BasinJob | None = None
        self._basin_key: tuple | None = None
        self._lr_tokens = itertools.count(1)
        self._lr_token = 0
        self._lr_running = False
        self.curvature = None            # the latest Curvature at the selected run's point
        self._curvature_info: dict[str, Any] = {}
        self._curvature_at: tuple | None = None  # where it was computed (generation, run, point)
        self._curvature_busy = False
        self._curvature_pending = False  # asked again while busy (forced: _curvature_again)
        self._curvature_again = False
        self.sharpness_wanted = False    # the Curvature tab shows
        self._sharpness: dict[int, dict[int, float]] = {}  # run id -> {step: lambda_max}
        self._sharpness_busy = False
        self._sharpness_again = False
        self._sharpness_generation = -1
        self._follow = QTimer(self, interval=FOLLOW_MS)
        self._follow.timeout.connect(self._on_follow_timeout)
        controller.problemLoaded.connect(self._on_controller_problem_loaded)
        controller.stateChanged.connect(self._on_controller_state_changed)
        controller.selectionChanged.connect(self._on_controller_selection_changed)
        controller.runsChanged.connect(self.settings_changed)

    # --- basin map -------------------------------------------------------------------------

    def basin_settings(self) -> tuple:
        """What a basin map depends on besides its range: the selected run's optimizer and
        settings, the step limit and the tolerance."""
        run, rs = self.c.selected, self.c.runset
        if run is None:
            return ()
        return (run.settings.optimizer, tuple(sorted(run.settings.hypers.items())), rs.steps,
                rs.tol)

    def request_basins(self, base: np.ndarray, indices: list[int], x_range, y_range,
                       grid: int, token: int) -> None:
        """Start a map of ``grid`` x ``grid`` starts over the ranges (the other elements held
        at ``base``) with the selected run's settings; a newer request cancels this one."""
        self.cancel_basins()
        run = self.c.selected
        if run is None or self.c.runset is None:
            return
        self._basin_key = self.basin_settings()
        rows = self.c.info.data.rows if self.c.info and self.c.info.data is not None else 0
        coarse = max(2, int(grid) // COARSE_DIVISOR) ** 2
        if coarse * self.c.runset.steps * max(1, rows) > BASIN_WORK_LIMIT:
            self.basinsFailed.emit(
                f"No basin map: each of its {coarse:,} first starts would train "
                f"{self.c.runset.steps:,} steps over all {rows:,} rows of the data, far too long "
                "to wait for; try it with fewer rows or fewer steps")
            return
        job = _BasinJob(token, self.c.generation, run.settings.optimizer,
                        dict(run.settings.hypers), int(self.c.runset.steps), self.c.runset.tol,
                        np.asarray(base, dtype=np.float64).copy(),
                        (int(indices[0]), int(indices[1])),
                        (float(x_range[0]), float(x_range[1])),
                        (float(y_range[0]), float(y_range[1])), int(grid))
        self._basin_job = job
        self.c.request(lambda w: _basin_coarse(job, w), lambda answer: self._on_piece(job, answer),
                       lambda error: self._on_basin_error(job, error))

    def cancel_basins(self) -> None:
        if self._basin_job is not None:
            self._basin_job.cancelled = True
            self._basin_job = None

    def _on_piece(self, job: _BasinJob, answer) -> None:
        if answer is None or job.cancelled or job is not self._basin_job:
            return
        bmap, done = answer
        self.basinsReady.emit(bmap, job.token, done)
        if done < 1.0:
            self.c.request(lambda w: _basin_piece(job, w), lambda a: self._on_piece(job, a),
                           lambda error: self._on_basin_error(job, error))
        else:
            self._basin_job = None

    def _on_basin_error(self, job: _BasinJob, error: GdvizError) -> None:
        if job is self._basin_job:
            self._basin_job = None
            self.basinsFailed.emit(f"No basin map: {error}")

    def settings_changed(self) -> None:
        """The selected run's settings or the limits may have changed: a basin map made with
        other settings is stale, and the lr limit follows the optimizer's settings."""
        if self.c.runset is None:
            return
        if self._basin_key is not None and self.basin_settings() != self._basin_key:
            self._basin_key = self.basin_settings()
            self.basinsStale.emit()
        self._emit_lr_limit()
        self._emit_curvature()
        if self.sharpness_wanted and self.c.selected is not None:
            self._emit_sharpness(self.c.selected)  # the edge follows the lr

    def forget_basins(self) -> None:
        """The layer is off: nothing to keep up to date."""
        self.cancel_basins()
        self._basin_key = None

    # --- learning-rate range test ---------------------------------------------------------

    def request_lr_range(self, lr_min: float, lr_max: float, count: int, steps: int) -> None:
        """The selected run's optimizer from where it stands, for ``steps`` steps at ``count``
        learning rates from ``lr_min`` to ``lr_max`` (log-spaced), all at once."""
        run = self.c.selected
        if run is None:
            return
        token = self._lr_token = next(self._lr_tokens)
        generation, preempted = self.c.generation, self.c.preempted
        optimizer, hypers = run.settings.optimizer, dict(run.settings.hypers)
        start = run.values.copy()
        info = {"run": run.id, "label": run.label, "step": run.step, "optimizer": optimizer}

        def compute(w: "EngineWorker"):
            if w.generation != generation or w.problem is None:
                return None
            from ..core.analysis.lr_range import log_lrs, lr_range_test

            lrs = log_lrs(float(lr_min), float(lr_max), int(count))
            # stopped (within 16 steps) by a newer test, a reset, a problem loaded or a run
            # started: on large data a test takes minutes, and they wait for the worker
            return lr_range_test(w.problem, optimizer, hypers, start, lrs, int(steps),
                                 _device(w), should_stop=lambda: token != self._lr_token
                                 or generation != self.c.generation
                                 or preempted != self.c.preempted)

        def done(result) -> None:
            if token != self._lr_token:
                return  # a newer test, or stopped (and said so) when a run started
            self._lr_running = False
            if result is not None and generation == self.c.generation:
                self.lrRangeReady.emit(result, info)
            else:
                self.lrRangeFailed.emit("The learning-rate range test was stopped: the runs "
                                        "were reset or the problem changed; test again.")

        def failed(error: GdvizError) -> None:
            if token == self._lr_token:
                self._lr_running = False
                self.lrRangeFailed.emit(str(error))

        where = f"step {run.step}" if run.step else "its start"
        self.lrRangeStarted.emit(f"{run.label}: {count} learning rates from {lr_min:g} to "
                                 f"{lr_max:g}, {steps} steps each, from {where}…")
        self._lr_running = True
        self.c.request(compute, done, failed)

    def stop_lr_range(self, why: str) -> None:
        """Stop a test under way (the worker drops it within 16 steps) and say why."""
        if self._lr_running:
            self._lr_running = False
            self._lr_token = next(self._lr_tokens)
            self.lrRangeFailed.emit(f"The learning-rate range test was stopped: {why}.")

    # --- curvature at the current point ---------------------------------------------------

    def _small(self) -> bool:
        info = self.c.info
        return info is not None and 0 < info.layout.n_grads <= AUTO_CURVATURE_LIMIT

    def request_curvature(self, force: bool = False) -> None:
        """The Hessian at the selected run's point (when it moved since the last one);
        ``force``: also for a large problem, and even when it did not move."""
        run = self.c.selected
        if run is None or self.c.info is None or (not force and not self._small()):
            return
        where = (self.c.generation, run.id, run.step, run.values.tobytes())
        if not force and where == self._curvature_at:
            return
        if self._curvature_busy:
            self._curvature_again = self._curvature_again or force
            self._curvature_pending = True
            return
        self._curvature_busy = True
        self._curvature_at = where
        generation, point = self.c.generation, run.values.copy()
        axes = self.c.info.layout.trainable_axes(limit=4)
        shown = ", ".join(f"{name} = {point[i]:.4g}" for name, i in axes)
        if self.c.info.layout.n_grads > len(axes):
            shown += ", …"
        info = {"run": run.id, "step": run.step, "point": point, "label": run.label,
                "point_text": shown}

        def compute(w: "EngineWorker"):
            if w.generation != generation or w.problem is None:
                return None
            from ..core.analysis.curvature import hessian_at
            return hessian_at(w.problem, point)

        def done(curvature) -> None:
            self._curvature_done()
            if curvature is None or generation != self.c.generation:
                return
            self.curvature, self._curvature_info = curvature, info
            self._emit_curvature()
            self._emit_lr_limit()

        def failed(error: GdvizError) -> None:
            self._curvature_done()
            if generation == self.c.generation:
                self.curvature = None
                self.curvatureFailed.emit(str(error))
                self._emit_lr_limit()

        self.c.request(compute, done, failed)

    def _emit_curvature(self) -> None:
        """The latest curvature, with what it means for the selected run's settings now."""
        if self.curvature is None:
            return
        info = dict(self._curvature_info)
        run = self.c.selected
        if run is not None and run.id == info.get("run"):
            hypers = run.settings.hypers
            momentum = float(hypers.get("momentum", 0.0)) if run.settings.optimizer == "sgd" \
                else 0.0
            from ..core.optimizers import OPTIMIZERS

            info.update(lr=float(hypers["lr"]), limit=self.current_lr_limit(),
                        optimizer_title=OPTIMIZERS[run.settings.optimizer].title,
                        momentum=momentum if momentum > 0 else 0.9)
        self.curvatureReady.emit(self.curvature, info)

    def _curvature_done(self) -> None:
        self._curvature_busy = False
        if self._curvature_pending:
            force, self._curvature_again, self._curvature_pending = \
                self._curvature_again, False, False
            self.request_curvature(force)

    def current_lr_limit(self) -> LrLimit | None:
        run = self.c.selected
        if run is None or self.curvature is None or \
                self._curvature_info.get("run") != run.id:
            return None
        return lr_limit(run.settings.optimizer, run.settings.hypers, self.curvature.lambda_max)

    def _emit_lr_limit(self) -> None:
        self.lrLimitChanged.emit(self.current_lr_limit())

    # --- lambda_max along the selected run ----------------------------------------------------

    def request_sharpness(self, force: bool = False) -> None:
        """lambda_max at the selected run's recorded steps not computed yet (at most about
        SHARPNESS_POINTS of them, evenly spread: a step is kept when it is a multiple of a
        power of two, so the steps of a shorter run are kept as it grows). A problem too
        large to follow on its own is computed when asked (``force``), at fewer steps."""
        run = self.c.selected
        if run is None or self.c.info is None:
            return
        if not force and not self._small():
            self._emit_sharpness(run, f"more than {AUTO_CURVATURE_LIMIT} elements: press "
                                      "Compute now for λmax along the run")
            return
        points = SHARPNESS_POINTS if self._small() else SHARPNESS_POINTS // 8
        if self._sharpness_busy:
            self._sharpness_again = True
            return
        if self._sharpness_generation != self.c.generation:  # reset or reloaded: start over
            self._sharpness.clear()
            self._sharpness_generation = self.c.generation
        history = run.history
        if not history.records_elements or not len(history):
            self._sharpness.pop(run.id, None)
            self._emit_sharpness(run)
            return
        known = self._sharpness.setdefault(run.id, {})
        steps = history.steps
        if known and max(known) > steps[-1]:  # gone back (undo): start over
            known.clear()
        stride = 1 << max(0, math.ceil(math.log2(max(1.0, steps[-1] / points))))
        wanted = np.flatnonzero((steps % stride == 0) | (np.arange(len(steps)) == len(steps) - 1))
        new = [k for k in wanted if int(steps[k]) not in known]
        if not new:
            self._emit_sharpness(run)
            return
        rows = history.params[new].copy()
        new_steps = steps[new].copy()
        generation = self.c.generation
        self._sharpness_busy = True

        def compute(w: "EngineWorker"):
            if w.generation != generation or w.problem is None:
                return None
            from ..core.analysis.curvature import lambda_max_at
            return lambda_max_at(w.problem, rows)

        def done(values) -> None:
            self._sharpness_done()
            if values is None or generation != self._sharpness_generation:
                return
            table = self._sharpness.setdefault(run.id, {})
            table.update(zip(new_steps.tolist(), values.tolist()))
            if run is self.c.selected:
                self._emit_sharpness(run)

        def failed(error: GdvizError) -> None:
            self._sharpness_done()
            self.c.message.emit(f"No curvature along the run: {error}")

        self.c.request(compute, done, failed)

    def _sharpness_done(self) -> None:
        self._sharpness_busy = False
        if self._sharpness_again:
            self._sharpness_again = False
            QTimer.singleShot(0, self, self.request_sharpness)  # after this answer is shown

    def _emit_sharpness(self, run: Run, note: str = "") -> None:
        table = self._sharpness.get(run.id, {})
        steps = np.array(sorted(table), dtype=np.int64)
        values = np.array([table[s] for s in steps.tolist()], dtype=np.float64)
        if not run.history.records_elements:
            note = "too many elements to record step by step: no curvature along the run"
        self.sharpnessReady.emit({"run": run.id, "label": run.label, "steps": steps,
                                  "lambda_max": values, "color": run.settings.color,
                                  "edge": edge_of_stability(run.settings.optimizer,
                                                            run.settings.hypers),
                                  "note": note})

    def show_sharpness(self, on: bool) -> None:
        """The Curvature tab is (not) on screen."""
        self.sharpness_wanted = on
        if on:
            self.request_sharpness()
            self.request_curvature()

    # --- following the run -----------------------------------------------------------------

    def _on_controller_problem_loaded(self) -> None:
        self.cancel_basins()
        self._basin_key = None
        self.curvature, self._curvature_at, self._curvature_info = None, None, {}
        self._sharpness.clear()
        self._lr_token = next(self._lr_tokens)  # a test still on its way is for the old problem
        self._lr_running = False  # (and stops: see request_lr_range)
        self.lrLimitChanged.emit(None)
        self.request_curvature()

    def _on_controller_state_changed(self, state: str) -> None:
        if state == "running":
            self.stop_lr_range("a run started, and runs come first; test again when it rests")
            self._follow.start()
            return
        self._follow.stop()
        self._refresh()

    def _on_controller_selection_changed(self, _run_id: int) -> None:
        self.settings_changed()  # another run: maybe other settings for the basin map
        self._refresh()

    def _on_follow_timeout(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        self.request_curvature()
        if self.sharpness_wanted:
            self.request_sharpness()

    def refresh_after_reset(self) -> None:
        """The runs went back to their starts (or the step count changed without a state
        change): the point moved."""
        self._refresh()


def run_from_start(run: Run, flat: np.ndarray, shown: tuple[float, float]) -> RunSettings:
    """A new run with ``run``'s optimizer and settings from ``flat`` (a click on the basin
    map at ``shown``)."""
    from ..core.optimizers import OPTIMIZERS

    label = f"{OPTIMIZERS[run.settings.optimizer].title} from ({shown[0]:.3g}, {shown[1]:.3g})"
    return RunSettings(run.settings.optimizer, dict(run.settings.hypers), label, "", True,
                       np.asarray(flat, dtype=np.float64).copy())
