"""Basins of attraction: the current optimizer run from every start on a grid, all at once.

Two parameter elements (the map's axes) are trained from every point of an n x n grid; every
other element is held at the base point. The runs are one batched sweep
(:func:`~gdviz.core.analysis.sweep.sweep`), computed in chunks of grid rows so that a caller
can show the map as it grows and stop early (:func:`basin_chunks`); :func:`basin_map` runs
every chunk and groups the ends.

Each start ends in one of four ways (:class:`~gdviz.core.analysis.sweep.Outcome`): its loss
reached the tolerance (``tol``), it *settled* (stopped moving: every one of its last steps
was shorter than ``xtol``), it was still moving at the step limit (*unfinished*), or it
*diverged*. The ends of the starts that converged or settled are grouped into basins: ends
closer than ``eps`` (1% of the map's larger side by default) are one basin, and so are ends
linked by a chain of such neighbours (a valley of minima is one basin, not a hundred).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import GdvizError
from ..limits import MAX_STEPS
from .sweep import OUTCOME_NAMES, Outcome, SweepResult, sweep

if TYPE_CHECKING:
    from ..problem import Problem

DEFAULT_GRID = 200
MAX_GRID = 1000
#: starts computed together: a 400 x 400 map in one piece (with two threads, larger batches
#: pay; measured with benchmarks/basin.py). A window may ask for smaller chunks to show
#: progress.
CHUNK_STARTS = 262_144
#: a start has settled when each of its last steps moved it less than this share of the map
XTOL_SHARE = 1e-5
#: ends closer than this share of the map's larger side belong to one basin
EPS_SHARE = 0.01


@dataclass
class Basin:
    """A minimum (or any place where runs came to rest) and the starts that reach it."""

    point: np.ndarray   # (2,) the end with the lowest loss among its starts
    loss: float
    count: int
    fraction: float     # of every start of the map


@dataclass
class BasinChunk:
    """The starts ``start:stop`` (flat grid indices) and how each ended."""

    start: int
    stop: int
    result: SweepResult


@dataclass
class BasinMap:
    """Where every start of the grid ended, as plain arrays.

    Starts are ordered x-major: the start with x index i and y index j is row
    ``i * len(ys) + j``, so ``values.reshape(len(xs), len(ys))`` (:meth:`image`) is laid out
    as :class:`~gdviz.core.analysis.landscape.LandscapeGrid`'s z.
    """

    axes: tuple[str, str]          # column names of the two trained elements
    indices: tuple[int, int]       # their indices in a flat parameter row
    xs: np.ndarray
    ys: np.ndarray
    starts: np.ndarray             # (N, 2)
    ends: np.ndarray               # (N, 2) where each start ended (its last finite point)
    loss: np.ndarray               # (N,) the loss there (NaN when not finite)
    steps: np.ndarray              # (N,) steps to converge or settle (see Outcome)
    outcome: np.ndarray            # (N,) int8 Outcome codes
    labels: np.ndarray             # (N,) index into ``basins``; -1: diverged or unfinished
    basins: list[Basin] = field(default_factory=list)
    step_limit: int = 0
    seconds: float = 0.0

    def image(self, values: np.ndarray) -> np.ndarray:
        """Per-start values as an (len(xs), len(ys)) grid."""
        return np.asarray(values).reshape(len(self.xs), len(self.ys))

    @property
    def diverged(self) -> float:
        return float(np.mean(self.outcome == Outcome.DIVERGED))

    @property
    def unfinished(self) -> float:
        return float(np.mean(self.outcome == Outcome.UNFINISHED))

    def status_names(self) -> np.ndarray:
        return np.asarray(OUTCOME_NAMES)[self.outcome]

    def summary(self) -> dict[str, Any]:
        """The keys of ``gdviz basin --json``."""
        return {
            "grid": [len(self.xs), len(self.ys)],
            "starts": int(len(self.outcome)),
            "basins": [{"point": {name: float(v) for name, v in zip(self.axes, b.point)},
                        "loss": b.loss, "fraction": b.fraction} for b in self.basins],
            "diverged": self.diverged,
            "unfinished": self.unfinished,
            "seconds": round(self.seconds, 4),
        }


# --- what the map is of ---------------------------------------------------------------------

def basin_axes(problem: "Problem", names: Sequence[str | int] | None = None
               ) -> tuple[tuple[str, str], tuple[int, int]]:
    """The two trainable elements a map is drawn over, as column names and flat indices:
    ``names`` (column names such as ``a`` or ``w[1]``, or flat indices), or the first two.
    A map needs two."""
    axes = problem.layout.trainable_axes()
    if len(axes) < 2:
        have = f"only one ({axes[0][0]})" if axes else "none"
        raise GdvizError("a basin map needs two trainable parameter elements (one per axis); "
                         f"this problem has {have}")
    if names is None or len(names) == 0:
        return (axes[0][0], axes[1][0]), (axes[0][1], axes[1][1])
    if len(names) != 2:
        raise GdvizError(f"a basin map has two axes; got {len(names)}")
    by_index = {i: name for name, i in axes}
    if all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in names):
        for i in names:
            if int(i) not in by_index:
                raise GdvizError(f"element {int(i)} of a parameter row is not a trainable "
                                 "parameter element")
        names = [by_index[int(i)] for i in names]
    names = [str(n).strip() for n in names]
    known = dict(axes)
    for name in names:
        if name not in known:
            listed = ", ".join(a for a, _ in axes[:12]) + (", ..." if len(axes) > 12 else "")
            raise GdvizError(f"'{name[:40]}' is not a trainable parameter element; choose "
                             f"from {listed}")
    if names[0] == names[1]:
        raise GdvizError(f"the two axes must differ; both are '{names[0][:40]}'")
    return (names[0], names[1]), (known[names[0]], known[names[1]])


def default_ranges(base: np.ndarray, indices: Sequence[int],
                   landscape: Mapping[str, Sequence[float]] | None = None
                   ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The session's landscape range, or (as the trajectory view) the base point plus or
    minus max(1, 1.5 |value|) on each axis."""
    ranges = []
    for k, axis in enumerate(("x", "y")):
        if landscape and axis in landscape:
            lo, hi = landscape[axis]
        else:
            v = float(base[indices[k]])
            span = max(1.0, 1.5 * abs(v))
            lo, hi = v - span, v + span
        ranges.append((float(lo), float(hi)))
    return ranges[0], ranges[1]


def check_grid(grid: int) -> int:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or \
            not 2 <= grid <= MAX_GRID:
        raise GdvizError(f"the grid must be 2 to {MAX_GRID} starts a side, got {grid}")
    return int(grid)


def check_range(value: Sequence[float], axis: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise GdvizError(f"the {axis} range must be two numbers LO,HI") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise GdvizError(f"the {axis} range must be finite, got {lo:g},{hi:g}")
    if not lo < hi:
        raise GdvizError(f"the {axis} range must have LO below HI, got {lo:g},{hi:g}")
    return lo, hi


def grid_starts(x_range: Sequence[float], y_range: Sequence[float], grid: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's x and y values and its starts, x-major (see :class:`BasinMap`)."""
    xs = np.linspace(x_range[0], x_range[1], grid)
    ys = np.linspace(y_range[0], y_range[1], grid)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


# --- computing ------------------------------------------------------------------------------

def basin_chunks(problem: "Problem", optimizer: str, hypers: Mapping[str, Any], steps: int,
                 tol: float | None, x_range: Sequence[float], y_range: Sequence[float],
                 grid: int = DEFAULT_GRID, axes: Sequence[int] | None = None,
                 base: np.ndarray | None = None, device: torch.device | str = "cpu",
                 xtol: float | None = None, chunk_starts: int = CHUNK_STARTS,
                 should_stop: Callable[[], bool] | None = None) -> Iterator[BasinChunk]:
    """The map computed a chunk of grid rows (consecutive x values) at a time. Stop iterating
    to stop; each chunk is final. ``axes`` are flat indices (default: the first two
    trainable elements); ``xtol`` defaults to 1e-5 of the map's larger side."""
    grid = check_grid(grid)
    x_range, y_range = check_range(x_range, "x"), check_range(y_range, "y")
    if isinstance(steps, bool) or not 1 <= int(steps) <= MAX_STEPS:
        raise GdvizError(f"the step limit must be 1 to {MAX_STEPS}")
    if axes is None:
        axes = basin_axes(problem)[1]
    base = problem.initial_flat() if base is None else np.asarray(base, dtype=np.float64)
    span = max(x_range[1] - x_range[0], y_range[1] - y_range[0])
    xtol = XTOL_SHARE * span if xtol is None else xtol
    _, _, starts = grid_starts(x_range, y_range, grid)
    per = max(grid, chunk_starts // grid * grid)  # whole grid rows
    for start in range(0, len(starts), per):
        stop = min(start + per, len(starts))
        result = sweep(problem, optimizer, hypers, base, starts[start:stop], list(axes), steps,
                       tol=tol, xtol=xtol, device=device, should_stop=should_stop)
        yield BasinChunk(start, stop, result)
        if should_stop is not None and should_stop():
            return


def basin_map(problem: "Problem", optimizer: str, hypers: Mapping[str, Any], steps: int,
              tol: float | None, x_range: Sequence[float], y_range: Sequence[float],
              grid: int = DEFAULT_GRID, axes: Sequence[str | int] | None = None,
              base: np.ndarray | None = None, device: torch.device | str = "cpu",
              xtol: float | None = None, eps: float | None = None,
              progress: Callable[[int, int], None] | None = None,
              chunk_starts: int = CHUNK_STARTS,
              should_stop: Callable[[], bool] | None = None) -> BasinMap:
    """Run ``optimizer`` with ``hypers`` from every start of a ``grid`` x ``grid`` map over
    ``x_range`` x ``y_range`` for up to ``steps`` steps (``tol``: a loss that stops a run),
    and group the ends into basins. ``axes`` names the two trained elements (column names
    or flat indices; default the first two trainable ones); the others are held at ``base``
    (a full flat row, default the initial values). ``progress(done, total)`` is called after
    each chunk; ``should_stop`` is asked every few steps (the map then holds what was done).
    For a map that grows on screen, iterate :func:`basin_chunks` and finish with
    :func:`assemble`, as this does."""
    began = time.perf_counter()
    names, indices = basin_axes(problem, axes)
    chunks = []
    total = check_grid(grid) ** 2
    for chunk in basin_chunks(problem, optimizer, hypers, steps, tol, x_range, y_range, grid,
                              indices, base, device, xtol, chunk_starts, should_stop):
        chunks.append(chunk)
        if progress is not None:
            progress(chunk.stop, total)
    result = assemble(names, indices, x_range, y_range, grid, chunks, int(steps), eps)
    result.seconds = time.perf_counter() - began
    return result


def assemble(names: tuple[str, str], indices: tuple[int, int], x_range: Sequence[float],
             y_range: Sequence[float], grid: int, chunks: Sequence[BasinChunk],
             step_limit: int, eps: float | None = None) -> BasinMap:
    """The map from every chunk of :func:`basin_chunks`, its ends grouped into basins
    (``eps``: default :data:`EPS_SHARE` of the map's larger side)."""
    xs, ys, starts = grid_starts(x_range, y_range, grid)
    n = len(starts)
    covered = sum(c.stop - c.start for c in chunks)
    if covered != n:
        raise ValueError(f"the chunks hold {covered} of the map's {n} starts")
    ends, loss = np.empty((n, 2)), np.empty(n)
    count, outcome = np.empty(n, np.int64), np.empty(n, np.int8)
    for chunk in chunks:
        r, sl = chunk.result, slice(chunk.start, chunk.stop)
        ends[sl], loss[sl], count[sl], outcome[sl] = r.points, r.loss, r.steps, r.outcome
    span = max(x_range[1] - x_range[0], y_range[1] - y_range[0])
    labels, basins = group_ends(ends, loss, outcome, EPS_SHARE * span if eps is None else eps)
    return BasinMap(tuple(names), tuple(indices), xs, ys, starts, ends, loss, count, outcome,
                    labels, basins, step_limit, sum(c.result.seconds for c in chunks))


# --- grouping ends into basins --------------------------------------------------------------

def group_ends(ends: np.ndarray, loss: np.ndarray, outcome: np.ndarray,
               eps: float) -> tuple[np.ndarray, list[Basin]]:
    """Basin labels per start (-1 for diverged and unfinished starts) and the basins, largest
    first. Ends are binned into cells of side ``eps``; cells that touch (8 neighbours) are
    one basin."""
    total = len(outcome)
    labels = np.full(total, -1, dtype=np.int64)
    rest = np.flatnonzero((outcome == Outcome.CONVERGED) | (outcome == Outcome.SETTLED))
    if not len(rest) or not eps > 0:
        return labels, []
    cells = np.floor(np.clip(ends[rest] / eps, -1e15, 1e15)).astype(np.int64)
    unique, inverse = np.unique(cells, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    component = _touching(unique)
    members = component[inverse]
    sizes = np.bincount(members)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels[rest] = rank[members]
    basins = []
    for c in order:
        mine = rest[members == c]
        finite = mine[np.isfinite(loss[mine])]
        best = finite[np.argmin(loss[finite])] if len(finite) else mine[0]
        basins.append(Basin(ends[best].copy(), float(loss[best]), int(len(mine)),
                            len(mine) / total))
    return labels, basins


def _touching(cells: np.ndarray) -> np.ndarray:
    """Connected components of integer cells under 8-neighbourhood (union-find)."""
    index = {(int(x), int(y)): i for i, (x, y) in enumerate(cells)}
    parent = list(range(len(cells)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (x, y) in enumerate(cells):
        x, y = int(x), int(y)
        for dx, dy in ((1, -1), (1, 0), (1, 1), (0, 1)):
            j = index.get((x + dx, y + dy))
            if j is not None:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(len(cells))])
    _, component = np.unique(roots, return_inverse=True)
    return component.reshape(-1)
