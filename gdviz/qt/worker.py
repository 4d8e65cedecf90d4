"""The one thread that touches torch: a QObject living on its own QThread.

It owns the problem and the engine (every tensor, every optimizer state). The GUI thread
reaches it in two ways, and gets only plain data back:

- :meth:`EngineWorker.post` queues a function ``fn(worker)``; its result (or error) comes
  back through ``replied``. :meth:`EngineWorker.call` does the same and waits for the
  result (loading a session, a snapshot for saving).
- ``startRun`` (a queued signal) runs the engine. Between batches the loop applies what
  was posted, so a learning rate changed mid-run takes effect at once; when idle, a posted
  function runs as soon as it arrives.

Every run ends with ``runEnded``, whatever happens (``finally``); an unexpected error is
reported through ``failed``, never swallowed.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from ..core.errors import GdvizError

if TYPE_CHECKING:  # torch is imported on this thread, when the first problem is built
    from ..core.engine import Engine
    from ..core.problem import Problem

_TICK_S = 0.016  # slow motion: one chunk of steps per tick


class EngineWorker(QObject):
    """See the module docstring."""

    batchReady = Signal(int, object)   # generation, EngineBatch
    runEnded = Signal(int, int)        # generation, token
    failed = Signal(int, str)          # generation, message
    replied = Signal(int, object, object)  # request id, result, exception (or None)
    _wake = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.problem: "Problem | None" = None
        self.engine: "Engine | None" = None
        self.generation = 0
        self.speed = 0.0  # steps per second; 0 = as fast as possible
        self.batch_s = 0.033
        self._cancel_upto = 0
        self._sleep = threading.Event()
        self._lock = threading.Lock()
        self._inbox: deque[tuple[Callable[["EngineWorker"], Any], Any]] = deque()
        self._wake.connect(self._drain)
        self._threads_set = False

    # --- called from the GUI thread (thread-safe) ---------------------------------------

    def post(self, fn: Callable[["EngineWorker"], Any], reply: int | None = None) -> None:
        """Run ``fn(worker)`` on the worker's thread; with ``reply``, send its result back
        through ``replied(reply, result, error)``."""
        with self._lock:
            self._inbox.append((fn, reply))
        self._sleep.set()
        self._wake.emit()

    def call(self, fn: Callable[["EngineWorker"], Any], timeout_s: float = 60.0) -> Any:
        """Run ``fn(worker)`` on the worker's thread and wait for its result. A GdvizError
        raised there is raised here."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.post(lambda w: future.set_result(fn(w)), reply=future)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            raise GdvizError("the training thread did not answer in time; try again") from None

    def cancel(self, upto_token: int) -> None:
        """Stop every run whose token is <= ``upto_token`` at its next batch."""
        self._cancel_upto = max(self._cancel_upto, upto_token)
        self._sleep.set()

    def set_speed(self, steps_per_s: float) -> None:
        self.speed = float(steps_per_s)
        self._sleep.set()

    # --- on the worker's thread ---------------------------------------------------------

    @Slot()
    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._inbox:
                    return
                fn, reply = self._inbox.popleft()
            try:
                result = fn(self)
            except Exception as exc:  # noqa: BLE001 - reported to the GUI, never lost
                self._report(reply, None, exc)
            else:
                if isinstance(reply, int):
                    self.replied.emit(reply, result, None)

    def _report(self, reply: Any, result: Any, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, GdvizError) else \
            f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, GdvizError):
            traceback.print_exception(exc, file=sys.stderr)
        if isinstance(reply, concurrent.futures.Future):
            reply.set_exception(exc if isinstance(exc, GdvizError) else GdvizError(message))
        elif isinstance(reply, int):
            self.replied.emit(reply, None, exc if isinstance(exc, GdvizError) else GdvizError(message))
        else:
            self.failed.emit(self.generation, message)

    def adopt(self, generation: int, problem: "Problem", engine: "Engine") -> None:
        """A new problem and engine (called through :meth:`call`)."""
        if not self._threads_set:
            import torch

            # Tiny problems: one intra-op thread leaves the other core to the GUI (DESIGN.md).
            torch.set_num_threads(1)
            self._threads_set = True
        self.generation, self.problem, self.engine = generation, problem, engine

    @Slot(int, int, int)
    def run(self, token: int, generation: int, steps: int) -> None:
        """Run ``steps`` lock steps (-1: up to the step limit) unless cancelled."""
        try:
            self._drain()
            if self.engine is None or generation != self.generation or token <= self._cancel_upto:
                return
            self._loop(token, generation, steps)
        except Exception as exc:  # noqa: BLE001 - a torch error mid-run, out of memory...
            if not isinstance(exc, GdvizError):
                traceback.print_exception(exc, file=sys.stderr)
            text = str(exc) if isinstance(exc, GdvizError) else f"{type(exc).__name__}: {exc}"
            self.failed.emit(generation, f"training stopped: {text}")
        finally:
            self.runEnded.emit(generation, token)

    def _loop(self, token: int, generation: int, steps: int) -> None:
        engine = self.engine
        remaining = steps if steps >= 0 else None
        paced_from, paced_steps, speed = time.perf_counter(), 0, self.speed
        while self.engine is engine and engine.runnable():
            if self._cancel_upto >= token or (remaining is not None and remaining <= 0):
                return
            if self.speed != speed:  # the speed slider moved: pace from here
                paced_from, paced_steps, speed = time.perf_counter(), 0, self.speed
            chunk = remaining if speed <= 0 else max(1, int(speed * _TICK_S))
            if remaining is not None:
                chunk = min(chunk, remaining)
            done = 0
            for batch in engine.run(chunk, self.batch_s):
                self.batchReady.emit(generation, batch)
                done += batch.steps_done
                if self._cancel_upto >= token or self._inbox:
                    break
            if remaining is not None:
                remaining -= done
            self._drain()
            if not done and speed <= 0:
                return  # nothing could step (every run at a limit)
            if speed > 0 and done:
                paced_steps += done
                wait = paced_from + paced_steps / speed - time.perf_counter()
                if wait > 0:
                    self._sleep.clear()
                    self._sleep.wait(wait)
