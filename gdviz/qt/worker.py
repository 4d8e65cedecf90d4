"""The training loop's home: a QObject living on its own QThread.

Only the worker's thread touches the trainer's tensors. Everything else reaches it in two
ways: queued slot calls (``configure``, ``run``, ``reset``...), which Qt runs in order on
the worker's thread, and :meth:`TrainingWorker.submit`, a locked list of changes applied
between batches, so a learning rate changed mid-run takes effect without stopping.
Only plain data leaves: :class:`StepBatch` numpy copies and dicts of floats.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import torch
from PySide6.QtCore import QObject, Signal, Slot

from ..core.errors import GdvizError
from ..core.trainer import CONVERGED, DIVERGED, FINISHED, Trainer

ENDED = (FINISHED, CONVERGED, DIVERGED)
_TICK_S = 0.016


class TrainingWorker(QObject):
    """Runs :meth:`Trainer.iter_steps` and reports batches; see the module docstring."""

    batchReady = Signal(int, object)   # generation, StepBatch
    runEnded = Signal(int, object)     # generation, summary dict (the keys of gdviz run --json)
    stateReady = Signal(int, object)   # generation, {"step", "current", "loss", "status"}
    failed = Signal(int, str)          # generation, message

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None
        self.generation = 0
        self.speed = 0.0  # steps per second; 0 = as fast as possible
        self._cancel_upto = 0  # runs with a token <= this stop at the next batch
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[Callable[[Trainer], Any]] = []
        self._threads_set = False

    # --- called from the GUI thread (thread-safe) ---------------------------------------

    def cancel(self, upto_token: int) -> None:
        """Stop every run whose token is <= ``upto_token`` at its next batch."""
        self._cancel_upto = max(self._cancel_upto, upto_token)
        self._wake.set()

    def submit(self, change: Callable[[Trainer], Any]) -> None:
        """Queue a change to the trainer, applied before the next batch."""
        with self._lock:
            self._pending.append(change)

    def set_speed(self, steps_per_s: float) -> None:
        self.speed = float(steps_per_s)
        self._wake.set()

    # --- slots, run on the worker's thread ----------------------------------------------

    def _apply_pending(self) -> None:
        with self._lock:
            changes, self._pending = self._pending, []
        for change in changes:
            if self.trainer is not None:
                change(self.trainer)

    def _state(self) -> dict[str, Any]:
        trainer = self.trainer
        try:
            loss = trainer.current_loss()
        except RuntimeError:
            loss = float("nan")
        return {"step": trainer.step, "current": trainer.flat_params(), "loss": loss,
                "status": trainer.status}

    @Slot(int, object)
    def configure(self, generation: int, trainer: Trainer) -> None:
        """Adopt a new trainer (a new problem, device or seed)."""
        if not self._threads_set:
            # Tiny problems: one intra-op thread leaves the other core to the GUI (DESIGN.md).
            torch.set_num_threads(1)
            self._threads_set = True
        # Pending changes are kept: they were made for this trainer (the controller submits
        # them right after building it, before this queued call runs), and each one only
        # repeats a setting the session already holds, so applying them again is harmless.
        self.generation = generation
        self.trainer = trainer
        self.stateReady.emit(generation, self._state())

    @Slot(int, object)
    def reset(self, generation: int, start: Any = None) -> None:
        """Back to the initial values, or to ``start`` (a flat row of parameters)."""
        if self.trainer is None:
            return
        self._apply_pending()
        self.generation = generation
        self.trainer.reset()
        if start is not None:
            self.trainer.set_params(start)
        self.stateReady.emit(generation, self._state())

    @Slot(int, int, int)
    def run(self, token: int, generation: int, steps: int) -> None:
        """Run ``steps`` steps (-1: up to the step limit) unless cancelled."""
        trainer = self.trainer
        if trainer is None or generation != self.generation:
            return  # the controller moved on (reset, new problem) and expects nothing
        if token <= self._cancel_upto:
            # Paused before it began: still report, or the window would wait forever.
            summary = trainer.summary()
            summary["status"] = "paused"
            self.runEnded.emit(generation, summary)
            return
        self._wake.clear()
        try:
            self._apply_pending()
            remaining = trainer.max_steps - trainer.step if steps < 0 else steps
            if remaining <= 0:
                trainer.status = FINISHED if trainer.step >= trainer.max_steps else trainer.status
            status = self._loop(token, generation, remaining)
            if status not in ENDED:
                trainer.status = "paused"
        except GdvizError as exc:
            self.failed.emit(generation, str(exc))
            status = trainer.status
        except (RuntimeError, ValueError) as exc:  # torch errors mid-run (out of memory, ...)
            self.failed.emit(generation, f"training stopped: {exc}")
            status = trainer.status
        summary = trainer.summary()
        if status not in ENDED:
            summary["status"] = "paused"
        self.runEnded.emit(generation, summary)

    def _loop(self, token: int, generation: int, remaining: int) -> str:
        trainer = self.trainer
        status = trainer.status
        paced_from, paced_steps, speed = time.perf_counter(), 0, self.speed
        while remaining > 0:
            if self._cancel_upto >= token:
                return "paused"
            if self.speed != speed:  # the speed slider moved: pace from here
                paced_from, paced_steps, speed = time.perf_counter(), 0, self.speed
            chunk = remaining if speed <= 0 else min(remaining, max(1, int(speed * _TICK_S)))
            for batch in trainer.iter_steps(chunk):
                self.batchReady.emit(generation, batch)
                status = batch.status
                remaining -= len(batch) if status not in ENDED else remaining
                if self._cancel_upto >= token or self._pending:
                    break
            self._apply_pending()
            if status in ENDED:
                return status
            if speed > 0:
                paced_steps += chunk
                wait = paced_from + paced_steps / speed - time.perf_counter()
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
        return status
