"""The learning-rate range test: one short run per learning rate, all from the same start, as
one batched sweep (:func:`~gdviz.core.analysis.sweep.sweep`).

The final loss against the learning rate shows three regions: too small (the loss barely
moves), useful (it falls), too large (it grows or diverges). Two numbers summarize it:

- ``max_stable_lr``: the largest learning rate whose final loss is below the initial loss
  (the divergence edge; for plain gradient descent on a quadratic, 2 / lambda_max);
- ``suggested_lr``: the learning rate where the final loss falls fastest as the learning
  rate grows (the steepest descent of the curve on a log axis), Leslie Smith's rule as
  fastai's ``lr_find`` and pytorch-lr-finder apply it, taken below the edge.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch

from ..errors import GdvizError
from ..limits import MAX_STEPS
from ..optimizers import OPTIMIZERS
from .sweep import Outcome, sweep

if TYPE_CHECKING:
    from ..problem import Problem

DEFAULT_LR_MIN = 1e-6
DEFAULT_LR_MAX = 10.0
#: log-spaced learning rates: 200 over the default 7 decades are 8.4% apart, so the edge
#: found is within 10% of the true one
DEFAULT_COUNT = 200
DEFAULT_STEPS = 100
MAX_COUNT = 10_000


@dataclass
class LrRange:
    """The final loss at each learning rate (NaN where the run diverged)."""

    lrs: np.ndarray
    final_loss: np.ndarray
    diverged: np.ndarray       # bool per lr
    initial_loss: float
    suggested_lr: float | None
    max_stable_lr: float | None
    steps: int
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The keys of ``gdviz lr-find --json``."""
        return {"lrs": self.lrs.tolist(), "final_loss": self.final_loss.tolist(),
                "suggested_lr": self.suggested_lr, "max_stable_lr": self.max_stable_lr}


def log_lrs(lr_min: float = DEFAULT_LR_MIN, lr_max: float = DEFAULT_LR_MAX,
            count: int = DEFAULT_COUNT) -> np.ndarray:
    """``count`` learning rates spaced logarithmically from ``lr_min`` to ``lr_max``, checked
    against the range every optimizer accepts."""
    lr = OPTIMIZERS["sgd"].hyper("lr")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or \
            not 2 <= count <= MAX_COUNT:
        raise GdvizError(f"the number of learning rates must be 2 to {MAX_COUNT}, got {count}")
    for name, value in (("lowest", lr_min), ("highest", lr_max)):
        if not (isinstance(value, (int, float)) and math.isfinite(value)
                and lr.minimum <= value <= lr.maximum):
            raise GdvizError(f"the {name} learning rate must be between {lr.minimum:g} and "
                             f"{lr.maximum:g}, got {value}")
    if not lr_min < lr_max:
        raise GdvizError(f"the lowest learning rate ({lr_min:g}) must be below the highest "
                         f"({lr_max:g})")
    return np.geomspace(lr_min, lr_max, int(count))


def lr_range_test(problem: "Problem", optimizer: str, hypers: Mapping[str, Any],
                  start: np.ndarray | None = None, lrs: np.ndarray | None = None,
                  steps: int = DEFAULT_STEPS, device: torch.device | str = "cpu",
                  should_stop: Callable[[], bool] | None = None) -> LrRange | None:
    """Run ``optimizer`` (with ``hypers``, the learning rate replaced) from ``start`` (a
    full flat parameter row, default the initial values) for ``steps`` steps at every
    learning rate in ``lrs`` (default :func:`log_lrs`), all at once. ``should_stop`` is
    asked every few steps; None comes back when it said yes."""
    began = time.perf_counter()
    lrs = log_lrs() if lrs is None else np.asarray(lrs, dtype=np.float64)
    if lrs.ndim != 1 or len(lrs) < 2 or np.any(np.diff(lrs) <= 0):
        raise GdvizError("the learning rates must be at least two, in increasing order")
    if isinstance(steps, bool) or not 1 <= int(steps) <= MAX_STEPS:
        raise GdvizError(f"the number of steps must be 1 to {MAX_STEPS}, got {steps}")
    if not problem.trainable:
        raise GdvizError("every parameter is frozen, so there is nothing to train")
    start = problem.initial_flat() if start is None else np.asarray(start, dtype=np.float64)
    columns = [i for _, i in problem.layout.trainable_axes()]
    rows = [{**hypers, "lr": float(lr)} for lr in lrs]
    starts = np.repeat(start[None, columns], len(lrs), axis=0)
    result = sweep(problem, optimizer, rows, start, starts, columns, int(steps), device=device,
                   should_stop=should_stop)
    if should_stop is not None and should_stop():
        return None
    initial = float(result.initial_loss[0])
    if not math.isfinite(initial):
        raise GdvizError("the loss is not finite at the start, so no learning rate can "
                         "lower it; choose another start")
    diverged = result.outcome == Outcome.DIVERGED
    final = np.where(diverged, np.nan, result.loss)
    stable = max_stable_lr(lrs, final, initial)
    return LrRange(lrs, final, diverged, initial, suggest_lr(lrs, final, stable), stable,
                   int(steps), time.perf_counter() - began)


def max_stable_lr(lrs: np.ndarray, final_loss: np.ndarray, initial_loss: float) -> float | None:
    """The largest learning rate whose final loss is below the initial loss (None: none)."""
    below = np.flatnonzero(np.isfinite(final_loss) & (final_loss < initial_loss))
    return float(lrs[below[-1]]) if len(below) else None


def suggest_lr(lrs: np.ndarray, final_loss: np.ndarray, limit: float | None) -> float | None:
    """The learning rate (at most ``limit``) where the final loss falls fastest against
    log(lr); None when it never falls."""
    if limit is None:
        return None
    keep = np.isfinite(final_loss) & (lrs <= limit)
    x, y = np.log10(lrs[keep]), final_loss[keep]
    if len(x) < 3:
        return None
    # Only the way down counts: up to the first learning rate that comes near the lowest
    # loss. Past it the curve may fall again after a spike (an unstable band whose runs
    # happen to end low), and a suggestion there would teach a rate that breaks.
    low, high = float(np.min(y)), float(np.max(y))
    bottom = int(np.flatnonzero(y <= low + 0.05 * (high - low))[0])
    if bottom < 1:
        return None
    slope = np.gradient(y, x)[:bottom + 1]
    best = int(np.argmin(slope))
    return float(10 ** x[best]) if slope[best] < 0 else None
