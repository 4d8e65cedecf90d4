"""Gradient check: autograd's gradient against finite differences, element by element.

Both sides are computed in double precision at the point asked about, so a disagreement is
a property of the function, not of float32 rounding. The numeric derivative is the central
difference with a step scaled to the element's size. Where the function has a kink (abs,
relu, clamp, max at the point), the derivatives from the left and from the right disagree
however small the step, and autograd returns one of them (or 0): such elements are flagged
as kinks rather than counted as failures or hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..problem import Problem

#: Elements checked at most (each costs four evaluations, all in one batched call).
MAX_CHECKED = 2_000
#: Numbers evaluated at most in all (rows x parameter elements) and per batched call.
WORK_BUDGET, CHUNK_VALUES = 200_000_000, 4_000_000
#: Relative error above which a smooth element fails.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class CheckedElement:
    name: str                 # the parameter
    index: tuple[int, ...]    # the element's index in it
    value: float
    autograd: float
    numeric: float            # central difference
    left: float               # one-sided differences (they differ at a kink)
    right: float
    rel_error: float
    kink: bool
    allowed: float            # the tolerance plus what rounding in the loss allows

    @property
    def label(self) -> str:
        return self.name + ("" if not self.index else "[" + ", ".join(map(str, self.index)) + "]")

    @property
    def ok(self) -> bool:
        return self.kink or self.rel_error <= self.allowed


@dataclass(frozen=True)
class GradCheck:
    elements: list[CheckedElement]
    total: int          # trainable elements in the problem
    step: float         # the relative finite-difference step

    @property
    def passed(self) -> bool:
        return all(e.ok for e in self.elements)

    @property
    def kinks(self) -> list[CheckedElement]:
        return [e for e in self.elements if e.kink]

    @property
    def failures(self) -> list[CheckedElement]:
        return [e for e in self.elements if not e.ok]

    def summary(self) -> str:
        checked = len(self.elements)
        text = (f"{checked} of {self.total} elements checked" if checked < self.total
                else f"{checked} element{'s' * (checked != 1)} checked")
        worst = max((e.rel_error for e in self.elements if not e.kink), default=0.0)
        text += f"; largest relative error {worst:.2g} (smooth elements)"
        if self.kinks:
            text += f"; {len(self.kinks)} at a kink, where the gradient is one of two one-sided values"
        failed = self.failures
        text += f"; {len(failed)} FAILED" if failed else "; all agree"
        return text

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checked": len(self.elements), "total": self.total,
                "step": self.step, "tolerance": TOLERANCE,
                "elements": [{"param": e.name, "index": list(e.index), "value": e.value,
                              "autograd": e.autograd, "numeric": e.numeric, "left": e.left,
                              "right": e.right, "rel_error": e.rel_error,
                              "allowed": e.allowed, "kink": e.kink, "ok": e.ok} for e in self.elements]}


def check_gradients(problem: Problem, point: np.ndarray | None = None, step: float = 1e-5,
                    limit: int = MAX_CHECKED) -> GradCheck:
    """Check the gradient at ``point`` (a flat row of every parameter; default the initial
    values) for up to ``limit`` trainable elements, the first of each parameter in turn."""
    layout = problem.layout
    row = problem.initial_flat() if point is None else np.asarray(point, dtype=np.float64)
    # a huge parameter: fewer elements, each evaluation being as big as the problem
    limit = max(1, min(limit, WORK_BUDGET // (4 * max(1, len(row)))))
    columns = _chosen_columns(problem, limit)
    auto = _autograd(problem, row)
    h = step * np.maximum(1.0, np.abs(row[columns]))
    # rows: the point, then per element x+h, x-h, x+h/10, x-h/10 (one batched evaluation)
    deltas = np.stack([h, -h, h / 10, -h / 10], axis=1)                # (E, 4)
    points = np.repeat(row[None, :], 1 + 4 * len(columns), axis=0)
    rows = 1 + np.arange(4 * len(columns))
    points[rows, np.repeat(columns, 4)] += deltas.reshape(-1)
    losses = _losses(problem, points)
    f0, f = losses[0], losses[1:].reshape(-1, 4)
    right, left = (f[:, 0] - f0) / h, (f0 - f[:, 1]) / h
    right10, left10 = (f[:, 2] - f0) / (h / 10), (f0 - f[:, 3]) / (h / 10)
    numeric = (f[:, 0] - f[:, 1]) / (2 * h)
    scale = np.maximum(1.0, np.maximum(np.abs(right), np.abs(left)))
    # rounding in the loss itself: a difference of two losses of size |f| is only good to
    # about eps * |f|, divided by the step (large for a big sum of small terms)
    size = np.maximum(np.abs(f0), np.abs(f).max(axis=1))
    noise = 8 * np.finfo(np.float64).eps * size / h
    gap, gap10 = np.abs(right - left), np.abs(right10 - left10)
    # smooth: the one-sided gap shrinks with the step (about h * |f''|); a kink keeps it
    kink = (gap10 > 1e-4 * scale + 10 * noise) & (gap10 > 0.5 * gap)
    grad_cols = {c: k for k, c in enumerate(problem.layout.trainable_columns)}
    names = _owner(problem, limit)
    elements = []
    for k, col in enumerate(columns):
        name, index = names[col]
        a = float(auto[grad_cols[col]])
        n = float(numeric[k])
        denom = max(abs(a), abs(n), 1e-8)
        error = abs(a - n) / denom if np.isfinite(a) and np.isfinite(n) else float("inf")
        elements.append(CheckedElement(
            name, index, float(row[col]), a, n, float(left[k]), float(right[k]), error,
            bool(kink[k]), TOLERANCE + float(noise[k]) / denom))
    total = sum(int(np.prod(layout.shapes[n])) for n in problem.trainable)
    return GradCheck(elements, total, step)


def _chosen_columns(problem: Problem, limit: int) -> np.ndarray:
    """Up to ``limit`` columns, shared out among the trainable parameters."""
    slices = problem.layout.param_slices
    per = max(1, limit // max(1, len(problem.trainable)))
    parts = [np.arange(slices[n].start, min(slices[n].stop, slices[n].start + per))
             for n in problem.trainable]
    return np.concatenate(parts)[:limit]


def _owner(problem: Problem, limit: int) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Parameter name and index of the first ``limit`` columns of each parameter."""
    out = {}
    for name, sl in problem.layout.param_slices.items():
        shape = problem.layout.shapes[name]
        for k, col in enumerate(range(sl.start, min(sl.stop, sl.start + limit))):
            out[col] = (name, tuple(int(i) for i in np.unravel_index(k, shape)) if shape else ())
    return out


def _autograd(problem: Problem, row: np.ndarray) -> np.ndarray:
    values = {n: torch.as_tensor(v, dtype=torch.float64).requires_grad_(n not in problem.frozen)
              for n, v in problem.layout.unflatten(row).items()}
    _, loss = problem.forward(values)
    if not loss.requires_grad:
        return np.zeros(len(problem.layout.trainable_columns))
    grads = torch.autograd.grad(loss, [values[n] for n in problem.trainable], allow_unused=True,
                                materialize_grads=True)
    return np.concatenate([g.detach().reshape(-1).numpy() for g in grads])


def _losses(problem: Problem, points: np.ndarray) -> np.ndarray:
    layout, fn = problem.layout, problem.batched_loss()
    chunk = max(1, CHUNK_VALUES // max(1, points.shape[1]))
    out = []
    with torch.no_grad():
        for start in range(0, len(points), chunk):
            part = points[start:start + chunk]
            env = {n: torch.as_tensor(part[:, sl], dtype=torch.float64).reshape(
                (len(part),) + layout.shapes[n]) for n, sl in layout.param_slices.items()}
            out.append(fn(env).numpy())
    return np.concatenate(out)
