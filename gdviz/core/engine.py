"""The engine: every run of a set stepped together as one batched torch computation.

The parameters of all active runs are stacked along a leading run dimension (one tensor per
parameter), so one forward and one backward pass serve every run, and the updates of runs
that share an update rule are a few tensor operations (:mod:`.updates`). A single run is a
set of one; there is no other code path.

:meth:`Engine.run` is a plain generator of :class:`EngineBatch` (numpy only), one at most
every ``max_batch_s`` seconds. There is no host sync per step (on CUDA the GPU runs ahead):
each step keeps references to the tensors it made (nothing is updated in place, so no
copies are needed) and they are converted once per batch. Per batch, for every run, the
engine then finds the first step whose loss, parameters or gradient are not finite, and the
first whose loss reaches the tolerance. A run stopped by either is put back exactly to the
step it stopped at, optimizer state included, by replaying its updates from the batch's
start with the recorded gradients: the same result as checking every step.

Each step evaluates the point it moves to, so at the end of a batch the current point's
loss and gradient are known and checked: a run never rests on a point whose loss is not
finite, and the next batch starts by updating with the gradient already computed.

On large data on the CPU, a full-data pass whose loss is a mean over the rows goes chunk by
chunk (see Problem.chunked_losses and rowwise.py): the same loss and gradient, with
temporaries of a chunk's size rather than the data's.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .batches import BatchSampler
from .errors import GdvizError
from .optimizers import normalize_hypers
from .problem import Problem
from .status import Status
from .records import EngineBatch, EngineRun, RowState, RunProgress, RunRows
from .rowwise import chunked_loss
from .schedules import Schedule
from .updates import UpdateGroup, group_key, rule_of

#: At most this many numbers are recorded per batch (rows x runs x columns), so a huge set
#: of runs or parameters yields smaller batches instead of a huge one.
_MAX_BATCH_VALUES = 8_000_000


class Engine:
    """Owns the tensors and optimizer states of a set of runs of one :class:`Problem`."""

    def __init__(self, problem: Problem, device: torch.device | str = "cpu",
                 max_steps: int = 1000, tol: float | None = None, max_batch_s: float = 0.016):
        if not problem.trainable:
            raise GdvizError("every parameter is frozen, so there is nothing to train")
        self.problem = problem
        self.device = torch.device(device)
        self.max_steps = int(max_steps)
        self.tol = tol
        self.max_batch_s = max_batch_s
        self.layout = problem.layout
        self.runs: dict[int, EngineRun] = {}
        self.elapsed_s = 0.0
        self.executed = 0  # steps computed, including any rolled back at a stop
        self._loss_fn = problem.batched_loss()
        # data: the full columns on the device once; mini-batches are index_select'ed from
        # them by indices that depend only on the seed and the step (see batches.py)
        self._data = problem.data_on(self.device)
        # rows a step computes over (a mini-batch's, or the data's)
        self._step_rows = (problem.batch_size or problem.data_rows) if self._data else 0
        self._sampler: BatchSampler | None = None
        if problem.batch_size is not None:
            self._sampler = BatchSampler(problem.data_rows, problem.batch_size, problem.seed,
                                         self.device)
            self._batch_fns = {shared: problem.batched_loss(problem.batch_size, not shared)
                               for shared in (True, False)}
        # where each parameter sits in a full row, in the trainable flat row (the gradient's
        # layout) and in the frozen flat row
        slices = self.layout.param_slices
        self._grad_slices = self.layout.grad_slices
        self._grad_sizes = [sl.stop - sl.start for sl in self._grad_slices.values()]
        self._trainable_cols = self.layout.trainable_columns
        frozen = [n for n in problem.names if n in problem.frozen]
        self._frozen_cols = np.concatenate(
            [np.arange(slices[n].start, slices[n].stop) for n in frozen] or [np.zeros(0, int)])
        self._frozen_slices = self.layout.slices(frozen)
        self._packed: _Packed | None = None
        self._chunk_plans: dict[int, list[tuple[int, int, float, Callable]] | None] = {}

    # --- the set of runs ----------------------------------------------------------------

    def add_run(self, run: EngineRun) -> None:
        run.hypers = normalize_hypers(run.optimizer, run.hypers)
        run.values = np.asarray(run.values, dtype=np.float64).reshape(-1)
        if run.values.shape != (self.layout.n_params,):
            raise GdvizError(f"run {run.id}: expected {self.layout.n_params} values, "
                             f"got {run.values.size}")
        self._unpack()
        self.runs[run.id] = run
        self._reopen(run)

    def _reopen(self, run: EngineRun) -> None:
        """A run stopped by a limit that no longer holds can go on."""
        if run.status == Status.RUNNING:
            run.status = Status.PAUSED
        if run.status == Status.FINISHED and run.step < self.max_steps:
            run.status = Status.PAUSED
        if run.status == Status.CONVERGED and (self.tol is None or
                                               not self.loss_at(run.values) <= self.tol):
            run.status = Status.PAUSED

    def remove_run(self, run_id: int) -> None:
        self._unpack()
        self.runs.pop(run_id, None)

    def set_hyper(self, run_id: int, name: str, value: Any) -> None:
        """Takes effect at the next step. The optimizer state is kept unless the change
        needs another update rule (momentum switched on, say), which starts it fresh."""
        run = self.runs[run_id]
        new = normalize_hypers(run.optimizer, {**run.hypers, name: value})
        packed = self._packed
        if packed is not None and run_id in packed.ids and \
                rule_of(run.optimizer, new) == rule_of(run.optimizer, run.hypers):
            group, row = packed.group_of(run_id)
            group.set_hyper(row, name, value)
            run.hypers = new
            return
        self._unpack()
        if rule_of(run.optimizer, new) != rule_of(run.optimizer, run.hypers):
            run.state = None
        run.hypers = new

    def set_optimizer(self, run_id: int, name: str, hypers: Mapping[str, Any] | None = None) -> None:
        """Switch optimizer from the current point, with a fresh optimizer state."""
        self._unpack()
        run = self.runs[run_id]
        run.optimizer, run.hypers, run.state = name, normalize_hypers(name, hypers), None

    def set_schedule(self, run_id: int, schedule: Schedule, clip_norm: float | None) -> None:
        """A run's learning-rate schedule and gradient clip, from its next step on."""
        self._unpack()
        run = self.runs[run_id]
        run.schedule, run.clip_norm = schedule, clip_norm

    def set_limits(self, max_steps: int | None = None, tol: float | None | str = "keep") -> None:
        """A new step limit or tolerance; a finished or converged run that the new limits
        let go on becomes paused again."""
        self._unpack()
        if max_steps is not None:
            self.max_steps = int(max_steps)
        if tol != "keep":
            self.tol = tol  # type: ignore[assignment]
        for run in self.runs.values():
            self._reopen(run)

    def reset(self, run_id: int, values: np.ndarray, step: int = 0,
              state: RowState | None = None) -> None:
        """Put a run at ``values`` and ``step`` with a fresh (or the given) optimizer state."""
        self._unpack()
        run = self.runs[run_id]
        run.values = np.asarray(values, dtype=np.float64).reshape(-1).copy()
        run.step, run.state, run.message = int(step), state, ""
        run.status = Status.PAUSED if step else Status.IDLE

    def export(self) -> dict[int, EngineRun]:
        """Every run with its current values and optimizer state (copies, plain data)."""
        self._unpack()
        return {i: copy.deepcopy(r) for i, r in self.runs.items()}

    # --- evaluation without stepping ----------------------------------------------------

    def loss_at(self, values: np.ndarray) -> float:
        """The loss at one point (a full parameter row)."""
        row = np.asarray(values, dtype=np.float64)[None, :]
        flat = torch.as_tensor(row[:, self._trainable_cols], dtype=torch.float32, device=self.device)
        frozen = torch.as_tensor(row[:, self._frozen_cols], dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return float(self._full_loss(flat, frozen)[0])

    # --- stepping -----------------------------------------------------------------------

    def runnable(self) -> list[int]:
        return [i for i, r in self.runs.items() if not r.status.stopped
                and r.step < self.max_steps]

    def run(self, steps: int | None = None, max_batch_s: float | None = None
            ) -> Iterator[EngineBatch]:
        """Step every runnable run ``steps`` more times (None: up to the step limit), in lock
        step, yielding a batch at most every ``max_batch_s`` seconds."""
        budget = self.max_batch_s if max_batch_s is None else max_batch_s
        try:
            self._pack()
            first = self._check_current(self._packed)
            if first.runs:
                yield first
            done = 0
            while self._packed is not None and self._packed.ids:
                packed = self._packed
                left = int((self.max_steps - packed.base).min())
                if steps is not None:
                    left = min(left, steps - done)
                if left <= 0:
                    break
                per_row = len(packed.ids) * (self.layout.n_params + self.layout.n_grads + 1)
                left = min(left, max(1, _MAX_BATCH_VALUES // per_row - 1))
                batch = self._batch(packed, left, time.perf_counter() + budget)
                done += batch.steps_done
                yield batch
        finally:  # also when the caller stops iterating early (a pause)
            self._finish_paused()

    def _finish_paused(self) -> None:
        # The caller's loop is over; the runs still in the pack are paused (or finished).
        packed = self._packed
        if packed is None:
            return
        for i in packed.ids:
            run = self.runs[i]
            run.status = Status.FINISHED if run.step >= self.max_steps else Status.PAUSED

    # --- packing: runs <-> stacked tensors ----------------------------------------------
    #
    # The trainable elements of every active run are one (runs, T) tensor, rows ordered by
    # update group so that each group is a contiguous slice (a view, not a copy), and the
    # parameters the forward pass sees are views of it. Frozen parameters are (runs, F).

    def _pack(self) -> None:
        if self._packed is not None:
            return
        ids = self.runnable()
        if not ids:
            return
        # one group per update rule (Adam and AdamW rows share one, and plain SGD rows join
        # momentum rows: see updates.rule_of and group_rule)
        key = {i: group_key(rule_of(self.runs[i].optimizer, self.runs[i].hypers)) for i in ids}
        kinds = list(dict.fromkeys(key.values()))
        order = sorted(ids, key=lambda i: kinds.index(key[i]))
        runs = [self.runs[i] for i in order]
        rows = np.stack([r.values for r in runs])
        flat = torch.as_tensor(rows[:, self._trainable_cols], dtype=torch.float32,
                               device=self.device).contiguous()
        frozen = torch.as_tensor(rows[:, self._frozen_cols], dtype=torch.float32,
                                 device=self.device).contiguous()
        packed = _Packed(order, flat, frozen, np.array([r.step for r in runs], np.int64),
                         seed=torch.ones(len(order), device=self.device))
        start = 0
        width = {"flat": (len(self._trainable_cols),)}
        while start < len(runs):
            stop = start
            while stop < len(runs) and key[order[stop]] == key[order[start]]:
                stop += 1
            part = runs[start:stop]
            group = UpdateGroup([r.optimizer for r in part], [r.hypers for r in part], width,
                                self.device,
                                [self._flat_state(r.state) for r in part],
                                [r.schedule for r in part], [r.clip_norm for r in part],
                                [r.step for r in part], self.max_steps)
            packed.groups.append((group, start, stop))
            start = stop
        for r in runs:
            r.status = Status.RUNNING
        self._packed = packed

    def _unpack(self) -> None:
        """Write the stacked state back into the plain runs and drop the tensors."""
        packed = self._packed
        if packed is None:
            return
        self._packed = None
        values = self._full_rows(packed.flat, packed.frozen)
        for pos, i in enumerate(packed.ids):
            run = self.runs[i]
            run.values = values[pos]
            run.step = int(packed.base[pos])
            if run.status == Status.RUNNING:
                run.status = Status.FINISHED if run.step >= self.max_steps else Status.PAUSED
        for group, start, _stop in packed.groups:
            for k, state in enumerate(group.export()):
                self.runs[packed.ids[start + k]].state = self._named_state(state)

    def _full_rows(self, flat: torch.Tensor, frozen: torch.Tensor) -> np.ndarray:
        """Flat trainable and frozen rows back into full parameter rows (numpy)."""
        out = np.empty((flat.shape[0], self.layout.n_params))
        out[:, self._trainable_cols] = flat.detach().to(torch.float64).cpu().numpy()
        out[:, self._frozen_cols] = frozen.to(torch.float64).cpu().numpy()
        return out

    def _flat_state(self, state: RowState | None) -> RowState | None:
        """A run's state, one array per parameter, as the one flat array a group holds."""
        if state is None:
            return None
        return RowState(state.step, {key: {"flat": np.concatenate(
            [np.asarray(per[n], dtype=np.float64).reshape(-1) for n in self.problem.trainable])}
            for key, per in state.tensors.items()})

    def _named_state(self, state: RowState) -> RowState:
        return RowState(state.step, {key: {n: per["flat"][sl].reshape(self.layout.shapes[n])
                                           for n, sl in self._grad_slices.items()}
                                     for key, per in state.tensors.items()})

    # --- one forward and backward for every run -----------------------------------------

    def _views(self, flat: torch.Tensor, frozen: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameters as the loss sees them: views of the flat tensors, no copies."""
        rows = flat.shape[0]
        shapes = self.layout.shapes
        if len(self._grad_slices) == 1:
            # the flat tensor itself when it already has the parameter's shape: a view would
            # add a node to every backward pass
            env = {n: flat if flat.shape[1:] == shapes[n] else flat.view((rows,) + shapes[n])
                   for n in self._grad_slices}
        else:
            # one split (one backward node that concatenates) rather than a slice per name
            parts = flat.split(self._grad_sizes, dim=1)
            env = {n: part.view((rows,) + shapes[n]) for n, part in zip(self._grad_slices, parts)}
        for n, sl in self._frozen_slices.items():
            env[n] = frozen[:, sl].view((rows,) + shapes[n])
        return env

    def _batch_env(self, flat: torch.Tensor, frozen: torch.Tensor, steps: np.ndarray,
                   shared: bool) -> tuple[dict[str, torch.Tensor], Callable]:
        """A mini-batch step's inputs and loss function: the parameters, and each row's
        mini-batch of step ``steps[row]`` (one batch for all rows when they are at the same
        step, ``shared``)."""
        env = self._views(flat, frozen)
        sampler = self._sampler
        if shared:
            idx = sampler.indices(int(steps[0]))
            env.update({n: col.index_select(0, idx) for n, col in self._data.items()})
        else:
            idx = torch.stack([sampler.indices(int(s)) for s in steps])
            env.update({n: col[idx] for n, col in self._data.items()})
        return env, self._batch_fns[shared]

    def _evaluate(self, flat: torch.Tensor, frozen: torch.Tensor, seed: torch.Tensor,
                  steps: np.ndarray | None = None, shared: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss of every run and its gradient (flat): on the full data (one forward and
        one backward, or one per chunk of rows), or on each row's mini-batch of step
        ``steps[row]``."""
        flat.requires_grad_()
        if self._sampler is None or steps is None:
            loss = self._full_loss(flat, frozen, seed)
        else:
            env, fn = self._batch_env(flat, frozen, steps, shared)
            loss = fn(env)
            if loss.requires_grad:
                _backward(loss, seed)
        grad = flat.grad if flat.grad is not None else torch.zeros_like(flat)
        flat.grad = None
        flat.requires_grad_(False)
        return loss.detach(), grad

    def _epoch_loss(self, packed: "_Packed", flat: torch.Tensor, steps: np.ndarray,
                    out: list) -> None:
        """With mini-batches, the full data's loss at each row that starts an epoch."""
        sampler = self._sampler
        if sampler is None:
            return
        hit = steps % sampler.per_epoch == 0
        if hit.any():
            with torch.no_grad():
                out.append((steps.copy(), hit, self._full_loss(flat.detach(), packed.frozen)))

    def _full_loss(self, flat: torch.Tensor, frozen: torch.Tensor,
                   seed: torch.Tensor | None = None) -> torch.Tensor:
        """Every row's loss on the full data; with ``seed``, its gradient too (accumulated
        into ``flat.grad``). In chunks of rows where the problem says so."""
        chunks = self._chunks(len(flat))
        if chunks is None:
            env = self._views(flat, frozen)
            env.update(self._data)
            loss = self._loss_fn(env)
            if seed is not None and loss.requires_grad:
                _backward(loss, seed)
            return loss
        backward = None if seed is None else lambda loss, share: _backward(loss, seed * share)
        return chunked_loss(chunks, lambda: self._views(flat, frozen), self._data, backward)

    def _chunks(self, runs: int) -> list[tuple[int, int, float, Callable]] | None:
        """The full data's chunks for ``runs`` runs (see Problem.chunked_losses)."""
        try:
            return self._chunk_plans[runs]
        except KeyError:
            plans = self._chunk_plans[runs] = self.problem.chunked_losses(runs, self.device)
            return plans

    def _update(self, packed: "_Packed", flat: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if len(packed.groups) == 1:
            return packed.groups[0][0].step({"flat": flat}, {"flat": grad})["flat"]
        return torch.cat([group.step({"flat": flat[a:b]}, {"flat": grad[a:b]})["flat"]
                          for group, a, b in packed.groups])

    # --- the loop -----------------------------------------------------------------------

    def _check_current(self, packed: "_Packed | None") -> EngineBatch:
        """Evaluate the runs that are about to start, and stop those whose current point is
        already bad (outside the function's domain) or already within the tolerance."""
        batch = EngineBatch(elapsed_s=self.elapsed_s)
        if packed is None or packed.loss is not None:
            return batch
        packed.loss, packed.grad = self._evaluate(packed.flat, packed.frozen, packed.seed,
                                                  packed.base, packed.shared)
        self._epoch_loss(packed, packed.flat, packed.base, packed.epochs)
        rec = self._rows(packed, packed.loss[None], [packed.flat], [packed.grad])
        self._settle(packed, batch, rec, n=0, snapshot=None)
        batch.runs = batch.ended  # the others have nothing to report yet
        return batch

    def _batch(self, packed: "_Packed", limit: int, deadline: float) -> EngineBatch:
        started = time.perf_counter()
        snapshot = (packed.flat, [g.snapshot() for g, _, _ in packed.groups])
        flat, grad, frozen, seed = packed.flat, packed.grad, packed.frozen, packed.seed
        # (a parameter too large to record element by element has large records itself:
        # they are kept as they come, not copied into 257 preallocated rows)
        big = self._step_rows * len(packed.ids) >= BIG_STEP and self.layout.records_elements
        log = _StepLog(packed.loss, flat, grad, copy=big, capacity=min(limit, 256) + 1)
        epochs, packed.epochs = packed.epochs, []
        base, shared, sampler = packed.base, packed.shared, self._sampler
        count = 0
        while count < limit:
            flat = self._update(packed, flat, grad)
            steps = base + (count + 1) if sampler is not None else None
            loss, grad = self._evaluate(flat, frozen, seed, steps, shared)
            if sampler is not None:
                self._epoch_loss(packed, flat, steps, epochs)
            log.add(loss, flat, grad)
            count += 1
            if time.perf_counter() >= deadline:
                break
        packed.flat, packed.loss, packed.grad = flat, loss if count else packed.loss, grad
        self.executed += count
        batch = EngineBatch(steps_done=count)
        losses, flats, grads = log.stacked()
        rec = self._rows(packed, losses, flats, grads)
        rec.epochs = epochs
        self._settle(packed, batch, rec, n=count, snapshot=snapshot, rec_grads=grads)
        self.elapsed_s += time.perf_counter() - started
        batch.elapsed_s = self.elapsed_s
        return batch

    def _rows(self, packed, losses: torch.Tensor, flats: Sequence[torch.Tensor],
              grads: Sequence[torch.Tensor]) -> "_Records":
        """The batch's records (losses (steps, runs); parameters and gradients step by step,
        (runs, elements) each) as numpy: the loss of every step and run, whether each point
        was finite, and (when the problem is small enough to record them, see
        history.RECORD_LIMIT) every parameter and gradient element."""
        loss = losses.to(torch.float64).cpu().numpy()
        if not self.layout.records_elements:
            finite = torch.stack([torch.isfinite(f).all(dim=1) & torch.isfinite(g).all(dim=1)
                                  for f, g in zip(flats, grads)]).cpu().numpy()
            return _Records(loss, finite & np.isfinite(loss), None, None, self, packed, flats, grads)
        k, a = len(losses), len(packed.ids)
        params = np.empty((k, a, self.layout.n_params))
        params[:, :, self._trainable_cols] = _stacked(flats).to(torch.float64).cpu().numpy()
        if len(self._frozen_cols):
            params[:, :, self._frozen_cols] = packed.frozen.to(torch.float64).cpu().numpy()[None]
        grad = _stacked(grads).to(torch.float64).cpu().numpy()
        finite = np.isfinite(loss) & np.isfinite(params).all(axis=2) & np.isfinite(grad).all(axis=2)
        return _Records(loss, finite, params, grad, self, packed, flats, grads)

    def _settle(self, packed, batch: EngineBatch, rec: "_Records", n: int, snapshot,
                rec_grads=None) -> None:
        """Decide, per run, how far it got in this batch, and put stopped runs back exactly
        at the step they stopped at."""
        loss, finite = rec.loss, rec.finite
        rows = n + 1
        first_bad = np.where((~finite).any(axis=0), (~finite).argmax(axis=0), rows)
        if self.tol is not None:
            reached = (loss <= self.tol) & finite
            first_tol = np.where(reached.any(axis=0), reached.argmax(axis=0), rows)
        else:
            first_tol = np.full(len(packed.ids), rows)
        keep: list[int] = []
        replay: dict[int, int] = {}  # position -> updates to replay from the batch's start
        outcome: dict[int, tuple[Status, int, str]] = {}
        for pos in range(len(packed.ids)):
            base = int(packed.base[pos])
            bad, tol_at = int(first_bad[pos]), int(first_tol[pos])
            if tol_at < rows and tol_at <= bad:
                at = tol_at
                outcome[pos] = (Status.CONVERGED, at, f"converged at step {base + at}: loss "
                                f"{loss[at, pos]:.6g} <= tolerance {self.tol:g}")
            elif bad < rows:
                at = max(bad - 1, 0)
                outcome[pos] = (Status.DIVERGED, at, _diverged_message(
                    base + bad, base + at, loss[:, pos], rec.params_at(bad, pos),
                    rec.grad_at(bad, pos), rec.params_at(at, pos), bad))
            elif base + n >= self.max_steps:
                outcome[pos] = (Status.FINISHED, n, "")
            else:
                keep.append(pos)
                continue
            if outcome[pos][1] < n:
                replay[pos] = outcome[pos][1]
        states = self._replay(packed, snapshot, replay, rec_grads) if replay else {}
        epochs = [(steps, hit, values.to(torch.float64).cpu().numpy())
                  for steps, hit, values in rec.epochs]
        for pos, run_id in enumerate(packed.ids):
            base = int(packed.base[pos])
            last = base + (outcome[pos][1] if pos in outcome else n)
            marks = [(int(steps[pos]), float(values[pos])) for steps, hit, values in epochs
                     if hit[pos] and steps[pos] <= last]
            if pos not in outcome:
                shown = n  # rows 0..n-1; the current point's row opens the next batch
                batch.runs[run_id] = RunProgress(
                    rec.rows(base, shown, pos), base + n, rec.params_at(n, pos),
                    float(loss[n, pos]), rec.grad_at(n, pos), Status.RUNNING, epochs=marks)
                continue
            status, at, message = outcome[pos]
            # A stopped run's last row is the point it rests on, except at the step limit,
            # where the run could still go on from there.
            shown = at if status == Status.FINISHED else at + 1
            values = rec.params_at(at, pos)
            batch.runs[run_id] = RunProgress(
                rec.rows(base, shown, pos), base + at, values, float(loss[at, pos]),
                rec.grad_at(at, pos), status, message, epochs=marks)
            run = self.runs[run_id]
            run.values, run.step, run.status, run.message = values.copy(), base + at, status, message
            state = states[pos] if pos in replay else self._state_now(packed, pos)
            run.state = self._named_state(state)
        packed.base += n
        if len(keep) < len(packed.ids):
            self._keep(packed, keep)

    def _state_now(self, packed, pos: int) -> RowState:
        group, row = packed.group_at(pos)
        return group.select([row]).export()[0]

    def _replay(self, packed, snapshot, replay: dict[int, int], rec_grads) -> dict[int, RowState]:
        """The optimizer state of each run in ``replay`` after that many updates from the
        batch's start, by re-applying the updates with the recorded gradients."""
        start_flat, start_groups = snapshot
        out: dict[int, RowState] = {}
        for (group, a, b), group_snapshot in zip(packed.groups, start_groups):
            mine = [p for p in range(a, b) if p in replay]
            if not mine:
                continue
            past = copy.copy(group)
            past.restore(group_snapshot)
            sub = past.select([p - a for p in mine])
            flat = start_flat.index_select(0, torch.as_tensor(mine, device=self.device))
            remaining = list(mine)
            t = 0
            for target in sorted(set(replay[p] for p in mine)):
                while t < target:
                    idx = torch.as_tensor(remaining, dtype=torch.long, device=self.device)
                    flat = sub.step({"flat": flat}, {"flat": rec_grads[t].index_select(0, idx)})["flat"]
                    t += 1
                states = sub.export()
                for k, p in enumerate(remaining):
                    if replay[p] == target:
                        out[p] = states[k]
                left = [k for k, p in enumerate(remaining) if replay[p] != target]
                if not left:
                    break
                sub = sub.select(left)
                flat = flat.index_select(0, torch.as_tensor(left, device=self.device))
                remaining = [remaining[k] for k in left]
        return out

    def _keep(self, packed, keep: list[int]) -> None:
        """Drop the stopped runs from the stacked tensors; the others go on as they were."""
        if not keep:
            self._packed = None
            return
        index = torch.as_tensor(keep, dtype=torch.long, device=self.device)
        packed.ids = [packed.ids[p] for p in keep]
        packed.base = packed.base[keep]
        packed.flat = packed.flat.index_select(0, index)
        packed.frozen = packed.frozen.index_select(0, index)
        packed.loss = packed.loss.index_select(0, index)
        packed.grad = packed.grad.index_select(0, index)
        packed.seed = packed.seed[:len(keep)]
        groups, start = [], 0
        for group, a, b in packed.groups:
            rows = [p - a for p in keep if a <= p < b]
            if not rows:
                continue
            sub = group if len(rows) == b - a else group.select(rows)
            groups.append((sub, start, start + len(rows)))
            start += len(rows)
        packed.groups = groups


def _backward(loss: torch.Tensor, seed: torch.Tensor) -> None:
    """``loss.backward(seed)`` without its per-call argument checks: on a tiny problem those
    (shape checks through torch.fx) cost as much as the backward pass itself. The seed is
    made by the engine with the loss's shape, so the checks cannot fail."""
    _ENGINE.run_backward((loss,), (seed,), False, False, (), allow_unreachable=True,
                         accumulate_grad=True)


try:  # torch's autograd engine, as Tensor.backward calls it (stable across torch 2.x)
    from torch.autograd.variable import Variable as _Variable
    _ENGINE = _Variable._execution_engine
    _ENGINE.run_backward  # noqa: B018 - fail here, not mid-run, if it ever moves
except (ImportError, AttributeError):  # pragma: no cover - fall back to the public call
    _ENGINE = None

    def _backward(loss: torch.Tensor, seed: torch.Tensor) -> None:  # noqa: F811
        loss.backward(seed)


@dataclass
class _Packed:
    """The active runs as stacked tensors, with their update groups (contiguous rows)."""

    ids: list[int]
    flat: torch.Tensor                    # (runs, trainable elements)
    frozen: torch.Tensor                  # (runs, frozen elements)
    base: np.ndarray                      # each row's step count
    groups: list[tuple[UpdateGroup, int, int]] = field(default_factory=list)
    loss: torch.Tensor | None = None      # the current point's loss and gradient, once known
    grad: torch.Tensor | None = None
    seed: torch.Tensor | None = None      # ones, one per row: backward's seed gradient
    #: full-data losses at epoch starts not reported yet: (steps, which rows, losses)
    epochs: list = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """Every row is at the same step (so they share one mini-batch)."""
        return bool((self.base == self.base[0]).all())

    def group_at(self, pos: int) -> tuple[UpdateGroup, int]:
        for group, a, b in self.groups:
            if a <= pos < b:
                return group, pos - a
        raise KeyError(pos)

    def group_of(self, run_id: int) -> tuple[UpdateGroup, int]:
        return self.group_at(self.ids.index(run_id))


class _StepLog:
    """A batch's loss, parameters and gradient at every step, kept as the steps go.

    Kept in tensors allocated once (``copy``) when a step's temporaries are large: a list
    of each step's small tensors, kept until the batch ends, is carved by malloc out of
    the big blocks the step has just freed (the forward and backward passes over a large
    data set), so the next step's big blocks no longer fit there and the heap grows by a
    block or two a step (+4 GB over a 5-second batch on 1e6 rows; +0.1 GB this way). On
    small problems there are no big blocks to spoil, and a list costs nothing per step
    where a copy costs a few microseconds (5% of a scalar problem's step).
    """

    def __init__(self, loss: torch.Tensor, flat: torch.Tensor, grad: torch.Tensor,
                 copy: bool, capacity: int):
        self._copy = copy
        self._n = 0
        if copy:
            capacity = max(int(capacity), 1)
            self._buffers = [torch.empty((capacity,) + t.shape, dtype=t.dtype, device=t.device)
                             for t in (loss, flat, grad)]
        else:
            self._steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.add(loss, flat, grad)

    def add(self, loss: torch.Tensor, flat: torch.Tensor, grad: torch.Tensor) -> None:
        if not self._copy:
            self._steps.append((loss, flat, grad))
            return
        if self._n == len(self._buffers[0]):  # rare: the capacity doubles
            self._buffers = [torch.cat([b, torch.empty_like(b)]) for b in self._buffers]
        for buffer, value in zip(self._buffers, (loss, flat, grad)):
            buffer[self._n] = value
        self._n += 1

    def stacked(self) -> tuple[torch.Tensor, Sequence[torch.Tensor], Sequence[torch.Tensor]]:
        """Losses (steps, runs); parameters and gradients, step by step (runs, elements):
        a tensor, or the list of each step's (not stacked: a large parameter's would be
        copied whole for nothing)."""
        if self._copy:
            return tuple(b[:self._n] for b in self._buffers)
        losses, flats, grads = (list(part) for part in zip(*self._steps))
        return torch.stack(losses), flats, grads


def _stacked(steps: Sequence[torch.Tensor]) -> torch.Tensor:
    return steps if isinstance(steps, torch.Tensor) else torch.stack(list(steps))


#: elements of a step's temporaries over the data (rows times runs) from which a batch's
#: records are copied into tensors allocated once (see _StepLog): 128 KB of float32,
#: glibc's first threshold for a block of its own
BIG_STEP = 32_768


class _Records:
    """One batch's records (see Engine._rows); full rows of a large problem are fetched
    from the recorded tensors only for the few steps and runs that are asked for."""

    def __init__(self, loss, finite, params, grads, engine, packed, flats, grad_tensors):
        self.loss, self.finite, self.params, self.grads = loss, finite, params, grads
        self.epochs: list = []
        self._engine, self._packed, self._flats, self._grads = engine, packed, flats, grad_tensors

    def params_at(self, t: int, pos: int) -> np.ndarray:
        if self.params is not None:
            return self.params[t, pos]
        e = self._engine
        return e._full_rows(self._flats[t][pos:pos + 1], self._packed.frozen[pos:pos + 1])[0]

    def grad_at(self, t: int, pos: int) -> np.ndarray:
        if self.grads is not None:
            return self.grads[t, pos]
        return self._grads[t][pos].to(torch.float64).cpu().numpy()

    def rows(self, base: int, count: int, pos: int) -> RunRows:
        steps = np.arange(base, base + count)
        if self.params is not None:
            return RunRows(steps, self.loss[:count, pos], self.params[:count, pos],
                           self.grads[:count, pos])
        return RunRows(steps, self.loss[:count, pos], np.zeros((count, 0)), np.zeros((count, 0)))


def _diverged_message(bad_step: int, kept_step: int, loss: np.ndarray, params_bad: np.ndarray,
                      grads_bad: np.ndarray, params_kept: np.ndarray, bad: int) -> str:
    what = "the loss" if not np.isfinite(loss[bad]) else (
        "a parameter" if not np.isfinite(params_bad).all() else "a gradient")
    value = "NaN" if np.isnan(np.concatenate([np.atleast_1d(loss[bad]), params_bad, grads_bad])).any() \
        else "infinite"
    if bad == 0:
        return (f"the {what.removeprefix('the ').removeprefix('a ')} is {value} at the start "
                f"(step {bad_step}): the start point is outside the function's domain (a log or "
                "square root of a negative number, a division by zero...); choose another start")
    text = f"diverged at step {bad_step}: {what} became {value}. The last finite state " \
           f"(step {kept_step}) is kept; "
    last = abs(float(loss[bad - 1]))
    if value == "NaN" and last < 1e10 and np.all(np.abs(params_kept) < 1e10):
        return text + ("the step left the function's domain (a log or square root of a "
                       "negative number, 0/0...); a smaller learning rate or another start "
                       "may help.")
    return text + "try a smaller learning rate."
