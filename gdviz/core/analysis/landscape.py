"""The loss landscape: the loss over a grid of one or two parameter elements, the others held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np


if TYPE_CHECKING:
    from ..problem import Problem


@dataclass
class LandscapeGrid:
    """The loss at every (x, y) of a grid (``ys`` is None for one axis); NaN where it is not
    finite. ``token`` lets a view drop answers to requests it has moved past."""

    xs: np.ndarray
    ys: np.ndarray | None
    z: np.ndarray          # (len(xs),) or (len(xs), len(ys))
    token: int = 0


def landscape_grid(problem: "Problem", base: np.ndarray, indices: list[int], xs: np.ndarray,
                   ys: np.ndarray | None = None, token: int = 0) -> LandscapeGrid:
    """``base`` (a flat parameter row) with the elements at ``indices`` swept over the grid:
    one vectorized call per chunk."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = None if ys is None else np.asarray(ys, dtype=np.float64)
    z = losses_at_points(problem, base, indices, grid_points(xs, ys))
    return LandscapeGrid(xs, ys, z if ys is None else z.reshape(len(xs), len(ys)), token)


def grid_points(xs: np.ndarray, ys: np.ndarray | None) -> np.ndarray:
    """The grid's points, one per row, x major (z's order reshaped to (len(xs), len(ys)))."""
    if ys is None:
        return np.asarray(xs, dtype=np.float64)[:, None]
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.column_stack([gx.ravel(), gy.ravel()])


def losses_at_points(problem: "Problem", base: np.ndarray, indices: list[int],
                     points: np.ndarray) -> np.ndarray:
    """The loss at ``base`` with the elements at ``indices`` set to each row of ``points``."""
    rows = np.repeat(np.asarray(base, dtype=np.float64)[None, :], len(points), axis=0)
    rows[:, indices] = points
    return problem.losses_at(rows)
