"""Plain data that crosses from the engine to the model (and between threads): no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import Dataset
from .history import ColumnLayout
from .schedules import Schedule
from .status import Status


@dataclass
class RowState:
    """One run's optimizer state: how many updates its rule has applied and, per state key
    (exp_avg, momentum_buffer...), one array per trainable parameter."""

    step: int
    tensors: dict[str, dict[str, np.ndarray]]


@dataclass
class EngineRun:
    """One run as the engine sees it: plain data in, plain data out."""

    id: int
    optimizer: str
    hypers: dict[str, Any]
    values: np.ndarray          # the current point: every parameter element, flat
    step: int = 0
    state: RowState | None = None
    status: Status = Status.IDLE
    message: str = ""
    schedule: Schedule = field(default_factory=Schedule)
    clip_norm: float | None = None


@dataclass
class RunRows:
    """The rows one run recorded in a batch: the point before each update, its loss and its
    gradient (row ``i`` is step ``steps[i]``)."""

    steps: np.ndarray   # (n,) int64
    loss: np.ndarray    # (n,)
    params: np.ndarray  # (n, P): every parameter element, frozen ones too
    grads: np.ndarray   # (n, G): every trainable element's gradient

    def __len__(self) -> int:
        return len(self.steps)


@dataclass
class RunProgress:
    """Where one run stands after a batch."""

    rows: RunRows
    step: int
    current: np.ndarray     # the parameters now (flat)
    loss: float             # the loss there
    grad: np.ndarray        # the gradient there (every trainable element, flat)
    status: Status
    message: str = ""
    #: with mini-batches: (step, the full data's loss) at each epoch start reached
    epochs: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class EngineBatch:
    """What one stretch of the loop did, for every run that took part."""

    runs: dict[int, RunProgress] = field(default_factory=dict)
    steps_done: int = 0           # lock steps taken by this batch
    elapsed_s: float = 0.0        # time spent stepping since the engine was built

    def __len__(self) -> int:
        return self.steps_done

    @property
    def ended(self) -> dict[int, RunProgress]:
        return {i: p for i, p in self.runs.items() if p.status.stopped}


@dataclass(frozen=True)
class ProblemInfo:
    """What the window needs to know of a problem, as plain data (no tensors)."""

    function: str
    loss: str
    names: tuple[str, ...]
    trainable: tuple[str, ...]
    layout: ColumnLayout
    initial: np.ndarray       # every parameter's initial value, flat
    loss_summed: bool
    data: Dataset | None = None       # the data fitted (plain numpy columns), if any
    batch_size: int | None = None     # rows per mini-batch; None: the full data
    notes: tuple[str, ...] = ()       # what to tell the user about the data

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.layout.shapes)
