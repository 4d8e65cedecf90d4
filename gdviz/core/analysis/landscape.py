"""The loss landscape: the loss over a grid of one or two parameter elements, the others held."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import math

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


#: losses (points x rows of data) a landscape may cost on screen: its grid has fewer points
#: on data too large for the one asked for (about 5 s on one thread)
LANDSCAPE_VALUES = 1_000_000_000


def affordable_axes(xs: np.ndarray, ys: np.ndarray | None, data_rows: int,
                    budget: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The axes of a grid over the same ranges, with fewer points (the same share off each
    axis, at least 8) where every point costing a pass over ``data_rows`` rows would make the
    whole cost more than ``budget`` losses (default LANDSCAPE_VALUES)."""
    budget = LANDSCAPE_VALUES if budget is None else budget
    per_point = max(1, int(data_rows))
    points = len(xs) * (1 if ys is None else len(ys))
    if points * per_point <= budget:
        return xs, ys
    share = budget / per_point / points
    scale = math.sqrt(share) if ys is not None else share

    def fewer(axis: np.ndarray) -> np.ndarray:
        return np.linspace(axis[0], axis[-1], max(8, int(len(axis) * scale)))

    return fewer(xs), None if ys is None else fewer(ys)


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
