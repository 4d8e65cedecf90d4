"""The loss landscape, computed on the worker in pieces.

Over large data every point of the grid is a pass over all the rows: 120 x 120 points on a
million rows took a minute of the worker, and a run's Play waited behind it. So a grid
whose cost (points x rows) is more than one piece's is made in steps, each request
answered before the next is posted (a run's batches and other requests go in between):

- a coarse grid first (a quarter of the side), drawn at once;
- then the full grid, a few grid rows per request, drawn when complete;
- the full grid's side is lowered on data too large for it (LANDSCAPE_VALUES), so that
  the map comes within seconds; a newer request (pan, zoom, a moved run) cancels the job.

Nothing here imports torch: the core is imported inside the functions the worker runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..core.analysis.landscape import LandscapeGrid
    from .worker import EngineWorker

#: losses (points x rows of data) one piece computes: about a tenth of a second
PIECE_VALUES = 20_000_000
#: losses a whole grid may cost: its side is lowered on larger data (about 10 s)
LANDSCAPE_VALUES = 2_000_000_000
#: the coarse grid's side is the full grid's divided by this
COARSE_DIVISOR = 4


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
    z: np.ndarray | None = None   # the full grid's losses so far (NaN where not computed)
    done: int = 0                 # its grid rows (along xs) computed


def next_piece(job: LandscapeJob, w: "EngineWorker") -> tuple["LandscapeGrid | None", bool]:
    """The job's next piece: ``(grid to draw or None, finished)``; (None, True) when the
    job is cancelled or its problem has gone."""
    if job.cancelled or w.generation != job.generation or w.problem is None:
        return None, True
    from ..core.analysis.landscape import LandscapeGrid, landscape_grid

    problem = w.problem
    per_point = max(1, problem.data_rows)
    if job.z is None:
        job.xs, job.ys = _resampled(job.xs, job.ys, per_point)
        side = (len(job.xs), 1 if job.ys is None else len(job.ys))
        if side[0] * side[1] * per_point <= PIECE_VALUES:
            return landscape_grid(problem, job.base, job.indices, job.xs, job.ys, job.token), True
        job.z = np.full(side if job.ys is not None else side[:1], np.nan)
        coarse_x = _coarse(job.xs)
        coarse_y = None if job.ys is None else _coarse(job.ys)
        return landscape_grid(problem, job.base, job.indices, coarse_x, coarse_y, job.token), False
    width = 1 if job.ys is None else len(job.ys)
    rows = max(1, PIECE_VALUES // (width * per_point))
    part = slice(job.done, min(len(job.xs), job.done + rows))
    job.z[part] = landscape_grid(problem, job.base, job.indices, job.xs[part], job.ys).z
    job.done = part.stop
    if job.done < len(job.xs):
        return None, False
    return LandscapeGrid(job.xs, job.ys, job.z, job.token), True


def _resampled(xs: np.ndarray, ys: np.ndarray | None, per_point: int
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """The requested axes, with fewer points where the grid would cost more than
    LANDSCAPE_VALUES (the same share off each axis)."""
    points = len(xs) * (1 if ys is None else len(ys))
    if points * per_point <= LANDSCAPE_VALUES:
        return xs, ys
    scale = math.sqrt(LANDSCAPE_VALUES / per_point / points) if ys is not None else \
        LANDSCAPE_VALUES / per_point / points

    def fewer(axis: np.ndarray) -> np.ndarray:
        return np.linspace(axis[0], axis[-1], max(8, int(len(axis) * scale)))

    return fewer(xs), None if ys is None else fewer(ys)


def _coarse(axis: np.ndarray) -> np.ndarray:
    return np.linspace(axis[0], axis[-1], max(2, len(axis) // COARSE_DIVISOR))
