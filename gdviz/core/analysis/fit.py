"""What the data view draws: the data's points and each run's model over them.

The model's inputs are the data columns the function reads; its targets the columns only
the loss reads. With one input the model is drawn as a curve over a line of inputs; with
two, as a field over a grid of them (the decision boundary of a classifier). Either way
every visible run's model is evaluated in one batched call (the runs stacked, the inputs
shared). A function whose value is not one number per data row (it reduces the data
itself, like ``mse(w*x + b, t)``) has no curve to draw, and the picture says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..problem import Problem

#: Points drawn at most (a fixed random subset of larger data).
MAX_POINTS = 5_000


@dataclass
class FitPicture:
    kind: str                         # "curve", "field" or "none"
    inputs: list[str]
    targets: list[str]
    reason: str = ""                  # why there is nothing to draw (kind "none")
    points: dict[str, np.ndarray] = field(default_factory=dict)   # a subset of the data
    grid: list[np.ndarray] = field(default_factory=list)          # xs, or (gx, gy)
    values: np.ndarray | None = None  # (runs, G) for a curve, (runs, G, G) for a field
    probability: bool = False         # the values went through a sigmoid (logits drawn)
    rows: int = 0                     # rows of the data (points holds at most MAX_POINTS)


def roles(problem: Problem) -> tuple[list[str], list[str]]:
    """The data columns the function reads (inputs) and those only the loss reads."""
    columns = list(problem.data_columns)
    inputs = [n for n in columns if n in problem.function.names]
    targets = [n for n in columns if n not in inputs and n in problem.loss.names]
    return inputs, targets


def sample_points(problem: Problem, names: list[str]) -> dict[str, np.ndarray]:
    data = problem.data
    rows = data.rows
    if rows > MAX_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(rows, MAX_POINTS, replace=False))
    else:
        keep = slice(None)
    return {n: data.columns[n][keep] for n in names}


def fit_picture(problem: Problem, rows: np.ndarray, resolution: int | None = None,
                margin: float = 0.05) -> FitPicture:
    """The data and the model of each of ``rows`` (flat parameter rows, one per run)."""
    if problem.data is None:
        return FitPicture("none", [], [], "there is no data: open a CSV file (File > Open data)")
    inputs, targets = roles(problem)
    picture = FitPicture("none", inputs, targets, rows=problem.data_rows)
    if not inputs:
        picture.reason = "the function reads no data column"
        return picture
    if len(inputs) > 2:
        picture.reason = (f"the function reads {len(inputs)} columns ({', '.join(inputs)}); the "
                          "view draws models of one or two")
        return picture
    if problem._y_shape != (problem.data_rows,):
        picture.reason = ("the function's value is not one number per data row (it reduces "
                          "the data itself), so there is no curve to draw; write the model "
                          "as the function and the error as the loss, e.g. mse(y, t)")
        return picture
    picture.points = sample_points(problem, inputs + targets)
    picture.probability = "bce_logits" in problem.loss.text
    axes = []
    for name in inputs:
        col = problem.data.columns[name]
        lo, hi = float(col.min()), float(col.max())
        pad = (hi - lo) * margin or 1.0
        axes.append((lo - pad, hi + pad))
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    if len(inputs) == 1:
        n = resolution or 400
        xs = np.linspace(*axes[0], n)
        picture.kind, picture.grid = "curve", [xs]
        picture.values = _evaluate(problem, rows, {inputs[0]: xs})
    else:
        n = resolution or 120
        gx, gy = np.linspace(*axes[0], n), np.linspace(*axes[1], n)
        mx, my = np.meshgrid(gx, gy)          # (n, n): rows follow y, columns x
        picture.kind, picture.grid = "field", [gx, gy]
        picture.values = _evaluate(problem, rows, {inputs[0]: mx.ravel(), inputs[1]: my.ravel()}
                                   ).reshape(len(rows), n, n)
    if picture.probability:
        picture.values = 1.0 / (1.0 + np.exp(-picture.values))
    return picture


def _evaluate(problem: Problem, rows: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The function at every row of parameters and every input point: (runs, points)."""
    count = len(next(iter(inputs.values())))
    shapes = {**problem.shapes, **{n: (count,) for n in inputs}}
    plan = problem.function.plan(shapes, problem.names)
    env = {n: torch.as_tensor(rows[:, sl], dtype=torch.float32).reshape(
        (len(rows),) + problem.layout.shapes[n]) for n, sl in problem.layout.param_slices.items()}
    env.update({n: torch.as_tensor(v, dtype=torch.float32) for n, v in inputs.items()})
    with torch.no_grad():
        out = plan(env).double().numpy()
    out = out.reshape(len(rows), count)
    out[~np.isfinite(out)] = np.nan
    return out
