"""A lean batched driver: many runs of one problem as one tensor, for analyses that need only
where each run ended (a basin map: one run per start; a learning-rate sweep: one run per lr).

It is the engine's computation without the engine's bookkeeping: the same batched loss
(:meth:`Problem.batched_loss`), one forward and one backward for every row, the same update
(:class:`~gdviz.core.updates.UpdateGroup`), but no history and no host sync per step. The stop
conditions are tracked on the device with masks, a few element-wise operations per step:

- a row whose loss or gradient stops being finite is *diverged*: it keeps its last finite
  point (the rows are independent, so it may go on computing garbage; nothing reads it);
- a row whose loss reaches the tolerance is *converged* at that step and keeps that point;
- every row records the last step that moved it by more than ``xtol`` (largest change of any
  element), so a row whose last ``patience`` steps were all shorter has *settled* (stopped
  moving: a minimum, or where the optimizer stalls), and the others are *unfinished*.

Only every ``_CHECK_EVERY`` steps does the host look (is any row still going?), so a sweep on
CUDA runs ahead of Python as the engine does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import GdvizError
from ..optimizers import normalize_hypers
from ..rowwise import chunked_loss
from ..updates import UpdateGroup, rule_of

if TYPE_CHECKING:
    from ..problem import Problem

#: how often (in steps) the host looks at the rows; the block's points are kept until then
_CHECK_EVERY = 16


class Outcome(IntEnum):
    """How a row of a sweep ended."""

    CONVERGED = 0   # its loss reached the tolerance
    SETTLED = 1     # it stopped moving (every one of its last steps shorter than xtol)
    UNFINISHED = 2  # still moving at the step limit
    DIVERGED = 3    # its loss or gradient stopped being finite; it keeps its last finite point

    @property
    def label(self) -> str:
        return self.name.lower()


#: the outcomes as text, indexed by their code
OUTCOME_NAMES = tuple(o.label for o in Outcome)


@dataclass
class SweepResult:
    """Where each row ended, as plain numpy arrays (one entry per row)."""

    points: np.ndarray        # (R, C) the trained elements where the row ended (last finite)
    loss: np.ndarray          # (R,) the loss there (NaN where a start was not finite)
    initial_loss: np.ndarray  # (R,) the loss at the start (NaN where not finite)
    steps: np.ndarray         # (R,) converged: the step it reached the tolerance; settled: the
    #                           step after which it stopped moving; diverged: the step whose
    #                           loss or gradient was not finite; unfinished: the step limit
    outcome: np.ndarray       # (R,) int8 codes of :class:`Outcome`
    seconds: float = 0.0


def sweep(problem: "Problem", optimizer: str,
          hypers: Mapping[str, Any] | Sequence[Mapping[str, Any]],
          base: np.ndarray, starts: np.ndarray, columns: Sequence[int], steps: int,
          tol: float | None = None, xtol: float | None = None, patience: int | None = None,
          device: torch.device | str = "cpu",
          should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Run every row of ``starts`` for up to ``steps`` steps and report where each ended.

    ``base`` is a full flat parameter row (:meth:`Problem.initial_flat` layout); ``columns``
    are the indices in it that are trained (the others are held at ``base``); ``starts`` has
    one row per run and one column per trained element. ``hypers`` is one mapping for every
    row, or one per row (a learning-rate sweep). ``xtol`` (None: no settling test) and
    ``patience`` (default max(10, steps // 20)) define *settled*. ``should_stop`` is asked
    every ``_CHECK_EVERY`` steps; when it says True the sweep stops there (the rows still
    going are settled or unfinished at the step they reached).
    """
    columns = [int(c) for c in columns]
    starts = np.asarray(starts, dtype=np.float64)
    if not columns:
        raise GdvizError("there is nothing to train: no parameter element is chosen")
    if starts.ndim != 2 or starts.shape[1] != len(columns):
        raise ValueError(f"starts must be (rows, {len(columns)}), got {starts.shape}")
    began = time.perf_counter()
    result = _Sweep(problem, optimizer, hypers, np.asarray(base, dtype=np.float64), starts,
                    columns, int(steps), tol, xtol,
                    max(10, int(steps) // 20) if patience is None else int(patience),
                    torch.device(device), should_stop).run()
    result.seconds = time.perf_counter() - began
    return result


class _Sweep:
    """The loop of :func:`sweep`.

    The trained elements are one (columns, rows) tensor: each element of every run is a
    contiguous row, so the loss's operations on a scalar parameter, the sums and maxima over
    a run's elements and the stop conditions all run over contiguous memory.

    Per step it does only cheap float operations on the device (on a CPU, comparisons that
    make booleans cost several times an addition): a *poison* value per row, NaN from the
    first step whose loss or gradient is not finite on (NaN sticks), the running minimum of
    the loss, and the last step that moved the row by more than xtol. It keeps references to
    the block's points and losses (nothing is updated in place, so no copies). Every
    ``_CHECK_EVERY`` steps, on the host, the rows that diverged or reached the tolerance in
    the block are found, each is given the exact step and point it stopped at, and when few
    rows are left going the tensors are cut down to them.
    """

    def __init__(self, problem, optimizer, hypers, base, starts, columns, steps, tol, xtol,
                 patience, device, should_stop):
        self.rows = len(starts)
        self.steps, self.tol, self.xtol, self.patience = steps, tol, xtol, patience
        self.should_stop = should_stop
        self.device = device
        self.evaluate = _Evaluator(problem, base, columns, self.rows, device)
        self.group, self.one_row = _update_group(optimizer, hypers, self.rows, len(columns),
                                                 device)
        self.flat = torch.as_tensor(starts.T, dtype=torch.float32, device=device).contiguous()
        # results, on the host, filled in as rows stop
        self.points = starts.copy()
        self.loss = np.full(self.rows, np.nan)
        self.initial = np.full(self.rows, np.nan)
        self.count = np.full(self.rows, steps, dtype=np.int64)
        self.outcome = np.full(self.rows, int(Outcome.UNFINISHED), dtype=np.int8)
        self.ids = np.arange(self.rows)        # the original row of each tensor row
        self.going = np.ones(self.rows, bool)  # per tensor row: not stopped yet

    def run(self) -> SweepResult:
        dev, rows = self.device, self.rows
        poison = torch.zeros(rows, dtype=torch.float32, device=dev)
        zero = torch.zeros((), dtype=torch.float32, device=dev)
        lowest = torch.full((rows,), np.inf, dtype=torch.float32, device=dev)
        # 1 + the last step that moved the row by more than xtol (0: none did); float32
        # counts exactly up to 2**24
        moved = torch.zeros(rows, dtype=torch.float64 if self.steps >= 2**24 else torch.float32,
                            device=dev)
        # the point before the block's first, and its loss (none before the first step)
        previous = self.flat
        previous_loss = torch.full((rows,), float("nan"), dtype=torch.float32, device=dev)
        block: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        flat, k, k0 = self.flat, 0, 0
        with torch.enable_grad():
            while True:
                loss, grad = self.evaluate(flat)
                if k == 0:
                    self.initial[:] = _host(loss)
                poison = torch.addcmul(poison, loss + grad.sum(dim=0), zero)  # + (...) * 0
                if self.tol is not None:
                    lowest = torch.minimum(lowest, loss)
                block.append((flat, loss, poison))
                last = k == self.steps
                if last or len(block) == _CHECK_EVERY:
                    keep = self._settle(block, previous, previous_loss, k0, poison, lowest)
                    previous, previous_loss, block, k0 = flat, loss, [], k + 1
                    if last or not self.going.any() or (
                            self.should_stop is not None and self.should_stop()):
                        break
                    if keep is not None:
                        poison, lowest, moved, previous_loss = (
                            t.index_select(0, keep)
                            for t in (poison, lowest, moved, previous_loss))
                        flat, grad, previous = (t.index_select(1, keep)
                                                for t in (flat, grad, previous))
                        self._select(keep)
                new = self._update(flat, grad)
                if self.xtol is not None:
                    # 1 where the row's largest change this step is above xtol, else 0
                    big = torch.sign(torch.relu((new - flat).abs().amax(dim=0) - self.xtol))
                    moved = torch.maximum(moved, big * float(k + 1))
                flat = new
                k += 1
        self._finish(flat, loss, moved, k)
        return SweepResult(self.points, self.loss, self.initial, self.count, self.outcome)

    def _update(self, flat: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.one_row:
            return self.group.step({"flat": flat.unsqueeze(0)}, {"flat": grad.unsqueeze(0)})["flat"][0]
        # one group row per run: the runs lead there
        return self.group.step({"flat": flat.T}, {"flat": grad.T})["flat"].T.contiguous()

    def _settle(self, block, previous, previous_loss, k0, poison,
                lowest) -> torch.Tensor | None:
        """Stop the rows that diverged or reached the tolerance in this block, each at the
        exact step it did. Returns the tensor rows to keep when it is worth cutting down."""
        candidates = self.going & np.isnan(_host(poison))
        if self.tol is not None:
            candidates |= self.going & (_host(lowest) <= self.tol)
        if candidates.any():
            pos = np.flatnonzero(candidates)
            idx = torch.as_tensor(pos, device=self.device)
            poisons = _host(torch.stack([p.index_select(0, idx) for _, _, p in block]))
            losses = _host(torch.stack([l.index_select(0, idx) for _, l, _ in block]))
            n = len(block)
            nan = np.isnan(poisons)
            first_bad = np.where(nan.any(0), nan.argmax(0), n)
            if self.tol is not None:
                hit = losses <= self.tol
                first_hit = np.where(hit.any(0), hit.argmax(0), n)
            else:
                first_hit = np.full(len(pos), n)
            converged = first_hit < first_bad
            # the point each row keeps: where it reached the tolerance, or the one before
            # its first bad step (a start that is bad keeps the start, with no loss)
            at = np.where(converged, first_hit, first_bad - 1) + 1
            points = _host(torch.stack([previous.index_select(1, idx)] +
                                       [f.index_select(1, idx) for f, _, _ in block]))
            prior = np.concatenate([_host(previous_loss.index_select(0, idx))[None], losses])
            cols = np.arange(len(pos))
            orig = self.ids[pos]
            self.points[orig] = points[at, :, cols]
            kept = prior[at, cols]
            self.loss[orig] = np.where(np.isfinite(kept), kept, np.nan)
            self.count[orig] = k0 + np.where(converged, first_hit, first_bad)
            self.outcome[orig] = np.where(converged, int(Outcome.CONVERGED),
                                          int(Outcome.DIVERGED))
            self.going[pos] = False
        going = int(self.going.sum())
        if 0 < going <= len(self.going) // 2:
            return torch.as_tensor(np.flatnonzero(self.going), device=self.device)
        return None

    def _select(self, keep: torch.Tensor) -> None:
        """Cut the optimizer's state (and the bookkeeping) down to the rows in ``keep``."""
        host = keep.cpu().numpy()
        self.ids, self.going = self.ids[host], self.going[host]
        if self.one_row:
            for per in self.group.state.values():
                per["flat"] = per["flat"].index_select(2, keep)
        else:
            self.group = self.group.select(host.tolist())

    def _finish(self, flat, loss, moved, k) -> None:
        """The rows still going at the end: settled (none of the last ``patience`` steps
        moved them by more than xtol) or unfinished, where they stand."""
        pos = np.flatnonzero(self.going)
        if len(pos):
            orig = self.ids[pos]
            self.points[orig] = _host(flat).T[pos]
            self.loss[orig] = _host(loss)[pos]
            self.count[orig] = k
            if self.xtol is not None:
                since = _host(moved)[pos]
                settled = since <= k - self.patience
                self.outcome[orig[settled]] = Outcome.SETTLED
                self.count[orig[settled]] = since[settled].astype(np.int64)
        self.loss[~np.isfinite(self.loss)] = np.nan
        self.initial[~np.isfinite(self.initial)] = np.nan


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def _update_group(optimizer: str, hypers, rows: int, width: int,
                  device: torch.device) -> tuple[UpdateGroup, bool]:
    """One group for every row. When every row has the same settings (a basin map), the
    whole (width, rows) block is one group row: the update is element-wise, so this is the
    same arithmetic without building per-row constants and state for thousands of rows."""
    if isinstance(hypers, Mapping):
        return UpdateGroup(optimizer, [hypers], {"flat": (width, rows)}, device), True
    hypers = [normalize_hypers(optimizer, h) for h in hypers]
    if len(hypers) != rows:
        raise ValueError(f"expected {rows} sets of hyperparameters, got {len(hypers)}")
    if len({rule_of(optimizer, h) for h in hypers}) > 1:
        raise GdvizError("every run of a sweep must use the same update rule")
    return UpdateGroup(optimizer, hypers, {"flat": (width,)}, device), False


class _Evaluator:
    """The loss of every run and its gradient with respect to the trained elements, in one
    forward and one backward pass (one per chunk of rows on large data). The trained
    elements come as one (columns, runs) tensor; held elements are the base row's values,
    broadcast to every run without copies."""

    def __init__(self, problem: "Problem", base: np.ndarray, columns: list[int], rows: int,
                 device: torch.device):
        self.fn = problem.batched_loss()
        # on large data, in chunks of rows (sized for every run: fewer later, as runs stop)
        self.chunks = problem.chunked_losses(rows, device)
        self.data = problem.data_on(torch.device(device))
        layout = problem.layout
        self.seed = torch.ones(rows, dtype=torch.float32, device=device)
        base_t = torch.as_tensor(base, dtype=torch.float32, device=device)
        position = {c: i for i, c in enumerate(columns)}
        # How each parameter is made from the trained block: "all" (its elements are
        # consecutive trained columns), "none" (held) or "some" (held, some elements trained)
        self.plan: list[tuple[str, str, Any]] = []
        for name, sl in layout.param_slices.items():
            shape = layout.shapes[name]
            where = [position.get(c) for c in range(sl.start, sl.stop)]
            if all(w is None for w in where):
                self.plan.append((name, "none", base_t[sl].reshape(shape)))
            elif None not in where and where == list(range(where[0], where[0] + len(where))):
                self.plan.append((name, "all", (where[0], where[0] + len(where), shape)))
            else:
                local = torch.as_tensor([i for i, w in enumerate(where) if w is not None],
                                        device=device)
                source = torch.as_tensor([w for w in where if w is not None], device=device)
                self.plan.append((name, "some", (base_t[sl], local, source, shape)))

    def env(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = flat.shape[1]
        env = {}
        for name, kind, data in self.plan:
            if kind == "none":
                env[name] = data.expand((rows,) + data.shape)
            elif kind == "all":
                a, b, shape = data
                env[name] = flat[a] if b == a + 1 and shape == () else \
                    flat[a:b].T.reshape((rows,) + shape)
            else:
                held, local, source, shape = data
                full = held.unsqueeze(1).expand(-1, rows).index_copy(
                    0, local, flat.index_select(0, source))
                env[name] = full.T.reshape((rows,) + shape)
        return env

    def __call__(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = flat.detach().requires_grad_()
        seed = self.seed[:flat.shape[1]]
        if self.chunks is None:
            loss = self.fn(self.env(flat))
            grad = None
            if loss.requires_grad:
                grad, = torch.autograd.grad(loss, flat, seed, allow_unused=True)
            return loss.detach(), torch.zeros_like(flat) if grad is None else grad
        grad = torch.zeros_like(flat)

        def backward(loss: torch.Tensor, share: float) -> None:
            part, = torch.autograd.grad(loss, flat, seed * share, allow_unused=True)
            if part is not None:
                grad.add_(part)

        return chunked_loss(self.chunks, lambda: self.env(flat), self.data, backward), grad
