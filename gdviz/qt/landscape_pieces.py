"""The loss landscape, computed on the worker in pieces.

Over large data every point of the grid is a pass over all the rows: 120 x 120 points on a
million rows took a minute of the worker, and a run's Play waited behind it. So a grid
whose cost (points x rows) is more than one piece's is made in steps, each request
answered before the next is posted (a run's batches and other requests go in between):

- a coarse grid first (a quarter of the side), then the full grid, each a few points per
  request and drawn when complete;
- the full grid's side is lowered on data too large for it (affordable_axes), so that
  the map comes within seconds; a newer request (pan, zoom, a moved run) cancels the job;
- while a run plays, the next piece is asked for only after as long as the last one took
  (``JOB.seconds``), so that the run keeps at least half of the worker.

Nothing here imports torch: the core is imported inside the functions the worker runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..core.analysis.landscape import LandscapeGrid
    from .worker import EngineWorker

#: losses (points x rows of data) one piece computes: about as long as a run's batch
PIECE_VALUES = 2_500_000
#: the coarse grid's side is the full grid's divided by this
COARSE_DIVISOR = 4

Axes = tuple[np.ndarray, "np.ndarray | None"]


@dataclass
class LandscapeJob:
    """One landscape being computed. Written on the worker only, except ``cancelled``,
    which the GUI thread sets (a bool: atomic)."""

    token: int
    generation: int
    base: np.ndarray
    indices: list[int]
    xs: np.ndarray
    ys: np.ndarray | None
    cancelled: bool = False
    problem: Any = None               # the worker's problem at the first piece
    stages: list[Axes] | None = None  # the grids still to compute, coarse first
    points: np.ndarray | None = None  # the current one's points (x major)
    z: np.ndarray | None = None       # and their losses so far
    done: int = 0                     # its points computed (x major)
    seconds: float = 0.0              # how long the last piece took


def next_piece(job: LandscapeJob, w: "EngineWorker") -> tuple["LandscapeGrid | None", bool]:
    """The job's next piece: ``(a grid to draw, or None until one is complete; finished)``;
    (None, True) when the job is cancelled or its problem has gone. (A reset, which starts a
    new generation on the same problem, leaves a job under way to finish.)"""
    if job.problem is None and w.generation == job.generation:
        job.problem = w.problem
    if job.cancelled or job.problem is None or w.problem is not job.problem or \
            job.stages == []:
        return None, True
    from ..core.analysis.landscape import (LandscapeGrid, affordable_axes, grid_points,
                                           landscape_grid, losses_at_points)

    per_point = max(1, w.problem.data_rows)
    if job.stages is None:
        xs, ys = affordable_axes(job.xs, job.ys, per_point)
        if len(xs) * (1 if ys is None else len(ys)) * per_point <= PIECE_VALUES:
            return landscape_grid(w.problem, job.base, job.indices, xs, ys, job.token), True
        job.stages = [(_coarse(xs), None if ys is None else _coarse(ys)), (xs, ys)]
    xs, ys = job.stages[0]
    if job.points is None:
        job.points = grid_points(xs, ys)
        job.z = np.full(len(job.points), np.nan)
    part = slice(job.done, min(len(job.points), job.done + max(1, PIECE_VALUES // per_point)))
    started = time.perf_counter()
    job.z[part] = losses_at_points(w.problem, job.base, job.indices, job.points[part])
    job.seconds = time.perf_counter() - started
    job.done = part.stop
    if job.done < len(job.points):
        return None, False
    grid = LandscapeGrid(xs, ys, job.z if ys is None else job.z.reshape(len(xs), len(ys)),
                         job.token)
    job.stages.pop(0)
    job.points, job.z, job.done = None, None, 0
    return grid, not job.stages


def _coarse(axis: np.ndarray) -> np.ndarray:
    return np.linspace(axis[0], axis[-1], max(2, len(axis) // COARSE_DIVISOR))
