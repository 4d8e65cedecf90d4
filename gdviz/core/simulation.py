"""A session made live, synchronously: its problem, the model of its runs and the engine.

This is what the command line and the tests drive; the window does the same with the
engine on its own thread (:mod:`gdviz.qt.worker`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np
import torch

from . import interrupt
from .device import resolve_device
from .engine import Engine
from .history import ColumnLayout
from .model import Run, RunSet, RunSettings
from .records import EngineBatch
from .report import data_summary, run_summary
from .session import Session, build_runset, session_from_runset


class Simulation:
    """The problem, model and engine of one session."""

    def __init__(self, session: Session, max_batch_s: float = 0.1):
        self.session = session
        self.problem = session.build_problem()
        self.device = resolve_device(session.device)
        self.runset: RunSet = build_runset(session, self.problem.layout, self.problem.initial_flat())
        self.engine = Engine(self.problem, self.device, session.steps, session.tol, max_batch_s)
        for run in self.runset.engine_runs():
            self.engine.add_run(run)
        self.interrupted = False

    def add_run(self, settings: RunSettings) -> Run:
        run = self.runset.add(settings)
        self.engine.add_run(run.engine_run())
        return run

    def batches(self, steps: int | None = None) -> Iterator[EngineBatch]:
        """Run (to the step limit, or ``steps`` more), recording every batch in the model."""
        for batch in self.engine.run(steps):
            self.runset.apply(batch)
            yield batch

    def run(self, steps: int | None = None,
            on_batch: Callable[[EngineBatch], None] | None = None) -> None:
        """Run to the end. Ctrl-C stops between batches (never inside a step, which would
        leave a run's point, step count and history out of step), keeping everything done
        so far (``interrupted`` tells)."""
        batches = self.batches(steps)
        try:
            with interrupt.deferred_interrupt():
                for batch in batches:
                    if on_batch is not None:
                        on_batch(batch)
                    interrupt.check()
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            batches.close()
        self.runset.end_run()
        self.sync()

    def sync(self) -> None:
        """Bring the model's optimizer states up to date with the engine."""
        self.runset.apply_export(self.engine.export())

    def snapshot(self, include_history: bool = True) -> Session:
        self.sync()
        return session_from_runset(self.session, self.runset, include_history)

    # --- reports ------------------------------------------------------------------------

    def gradient_at(self, run: Run) -> np.ndarray:
        """The gradient at the run's current point (recomputed when not known yet)."""
        if run.grad is not None:
            return run.grad
        values = {n: torch.as_tensor(v, dtype=torch.float32).requires_grad_(n not in self.problem.frozen)
                  for n, v in self.problem.layout.unflatten(run.values).items()}
        _, loss = self.problem.forward(values)
        if math.isfinite(float(loss.detach())):
            run.loss = float(loss.detach())
        parts = []
        if loss.requires_grad:
            found = torch.autograd.grad(loss, [values[n] for n in self.problem.trainable],
                                        allow_unused=True, materialize_grads=True)
            parts = [g.detach().reshape(-1).double().numpy() for g in found]
        layout = self.problem.layout  # counted from the shapes: not a name per element
        run.grad = np.concatenate(parts) if parts else \
            np.zeros(sum(math.prod(layout.shapes[n]) for n in layout.trainable))
        return run.grad

    def summary(self, run: Run, arrays: bool = True) -> dict[str, Any]:
        """The keys of ``gdviz run --json`` for one run. Without ``arrays``, "params" and
        "grads" are left empty: a text report does not need ten million numbers as Python
        floats (hundreds of MB)."""
        problem = self.problem
        extra = data_summary(problem.data, problem.batch_size, run.step)
        if problem.batch_size:  # "loss" is the last mini-batch's; this is all the data's
            full = self.engine.loss_at(run.values)
            extra["data_loss"] = full if np.isfinite(full) else None
        if not arrays:
            return {**run_summary(run, ColumnLayout({}, ()), problem.loss_summed,
                                  str(self.device), self.runset.steps, self.engine.elapsed_s,
                                  self.engine.executed, np.zeros(0), arrays=False), **extra}
        return {**run_summary(run, problem.layout, problem.loss_summed, str(self.device),
                              self.runset.steps, self.engine.elapsed_s, self.engine.executed,
                              self.gradient_at(run)), **extra}
