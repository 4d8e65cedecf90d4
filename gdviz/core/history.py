"""The record of a run: per step the loss, every parameter element and every gradient element.

Row ``i`` holds the point the optimizer stood on before its update number ``step``: the
parameters, the loss there and its gradient. Arrays grow by doubling.

Memory rule: a history holds at most ``max_values`` numbers (default 20 million, 160 MB).
When it is full it keeps every other row and from then on records only steps that are a
multiple of ``stride``, which doubles each time the history fills again. So a long run
keeps an evenly thinned record from its first step to its latest.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .atomic import atomic_write


def element_names(name: str, shape: Sequence[int]) -> list[str]:
    """Column names for a parameter's elements: ``X`` for a scalar or one element,
    ``w[0]`` for a vector, ``x[0,1]`` for a matrix."""
    count = int(np.prod(shape)) if len(shape) else 1
    if len(shape) == 0 or (count == 1 and len(shape) == 1):
        return [name]
    return [f"{name}[{','.join(str(i) for i in idx)}]" for idx in np.ndindex(*shape)]


#: A problem with more elements than this is recorded without them: the history keeps the
#: loss of every step, and the parameters and gradients only as they stand now. (Recording
#: ten million elements per step costs gigabytes; nobody reads a CSV that wide.)
RECORD_LIMIT = 100_000


@dataclass(frozen=True)
class ColumnLayout:
    """Where each parameter's elements sit in a flat row, and the columns' names."""

    shapes: Mapping[str, tuple[int, ...]]
    trainable: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return list(self.shapes)

    @property
    def n_params(self) -> int:
        """Elements in a full row: every parameter, frozen ones too."""
        return sum(math.prod(s) for s in self.shapes.values())

    @property
    def n_grads(self) -> int:
        return sum(math.prod(self.shapes[n]) for n in self.trainable)

    @property
    def records_elements(self) -> bool:
        """Whether the history keeps every element at every recorded step."""
        return self.n_params + self.n_grads <= RECORD_LIMIT

    @property
    def param_columns(self) -> list[str]:
        return [c for n, s in self.shapes.items() for c in element_names(n, s)]

    @property
    def grad_columns(self) -> list[str]:
        return [f"grad {c}" for n in self.trainable for c in element_names(n, self.shapes[n])]

    def slices(self, names: Sequence[str]) -> dict[str, slice]:
        """Slices of a flat row holding each of ``names`` in order."""
        out, start = {}, 0
        for n in names:
            size = math.prod(self.shapes[n])
            out[n] = slice(start, start + size)
            start += size
        return out

    @property
    def param_slices(self) -> dict[str, slice]:
        return self.slices(self.names)

    @property
    def grad_slices(self) -> dict[str, slice]:
        return self.slices(self.trainable)

    @property
    def trainable_columns(self) -> np.ndarray:
        """Where each trainable element sits in a full row, in the gradient's order."""
        slices = self.param_slices
        return np.concatenate([np.arange(slices[n].start, slices[n].stop, dtype=np.int64)
                               for n in self.trainable] or [np.zeros(0, np.int64)])

    def trainable_axes(self, limit: int | None = None) -> list[tuple[str, int]]:
        """The trainable elements as (column name, index in a flat parameter row): the
        axes of a landscape or of the parameters plot (the first ``limit`` of them)."""
        axes: list[tuple[str, int]] = []
        for name, sl in self.param_slices.items():
            if name not in self.trainable:
                continue
            count = sl.stop - sl.start
            take = count if limit is None else min(count, limit - len(axes))
            shape = self.shapes[name]
            for k in range(take):  # names made only for the elements asked for
                idx = np.unravel_index(k, shape) if shape else ()
                label = name if len(shape) == 0 or (count == 1 and len(shape) == 1) else \
                    f"{name}[{','.join(str(i) for i in idx)}]"
                axes.append((label, sl.start + k))
            if limit is not None and len(axes) >= limit:
                break
        return axes

    def unflatten(self, row: np.ndarray, grads: bool = False) -> dict[str, np.ndarray]:
        """A flat row back into ``{name: array of its shape}``."""
        slices = self.grad_slices if grads else self.param_slices
        return {n: row[s].reshape(self.shapes[n]) for n, s in slices.items()}


class History:
    """Growable, memory-bounded arrays of steps, losses, parameters and gradients."""

    def __init__(self, layout: ColumnLayout, max_values: int = 20_000_000):
        self.layout = layout
        self.max_values = max_values
        self.records_elements = layout.records_elements
        self.n_params = layout.n_params if self.records_elements else 0
        self.n_grads = layout.n_grads if self.records_elements else 0
        self.stride = 1
        self._max_rows = max(16, max_values // (2 + self.n_params + self.n_grads))
        #: counts the changes that are not rows added at the end (clear, truncate, thinning),
        #: so that a view drawing the history as it grows knows to start over
        self.revision = 0
        self.clear()

    def set_limit(self, max_values: int) -> None:
        """A new memory bound (the runs of a set share one budget); thins at once if needed."""
        self.max_values = max_values
        self._max_rows = max(16, max_values // (2 + self.n_params + self.n_grads))
        while self._size > self._max_rows:
            self._thin()

    def clear(self) -> None:
        self.revision += 1
        self.stride = 1
        self._size = 0
        self._steps = np.zeros(64, dtype=np.int64)
        self._loss = np.zeros(64)
        self._params = np.zeros((64, self.n_params))
        self._grads = np.zeros((64, self.n_grads))

    def __len__(self) -> int:
        return self._size

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self._size]

    @property
    def loss(self) -> np.ndarray:
        return self._loss[: self._size]

    @property
    def params(self) -> np.ndarray:
        return self._params[: self._size]

    @property
    def grads(self) -> np.ndarray:
        return self._grads[: self._size]

    def extend(self, steps: np.ndarray, loss: np.ndarray, params: np.ndarray,
               grads: np.ndarray) -> None:
        """Append rows (usually one batch from the trainer)."""
        if self.stride > 1:
            keep = steps % self.stride == 0
            steps, loss, params, grads = steps[keep], loss[keep], params[keep], grads[keep]
        n = len(steps)
        if n == 0:
            return
        if not self.records_elements:  # see RECORD_LIMIT: the loss only
            params, grads = np.zeros((n, 0)), np.zeros((n, 0))
        self._reserve(self._size + n)
        end = self._size + n
        self._steps[self._size:end] = steps
        self._loss[self._size:end] = loss
        self._params[self._size:end] = params
        self._grads[self._size:end] = grads
        self._size = end
        while self._size > self._max_rows:
            self._thin()

    def truncate(self, step: int) -> None:
        """Forget the rows of ``step`` and after (a run restarted from an earlier step
        records them anew); the stride stays as it is."""
        self.revision += 1
        self._size = int(np.searchsorted(self.steps, step, side="left"))

    def _reserve(self, rows: int) -> None:
        cap = len(self._steps)
        if rows <= cap:
            return
        while cap < rows:
            cap *= 2
        for attr in ("_steps", "_loss", "_params", "_grads"):
            old = getattr(self, attr)
            new = np.zeros((cap,) + old.shape[1:], dtype=old.dtype)
            new[: self._size] = old[: self._size]
            setattr(self, attr, new)

    def _thin(self) -> None:
        self.revision += 1
        self.stride *= 2
        keep = np.flatnonzero(self.steps % self.stride == 0)
        for attr in ("_steps", "_loss", "_params", "_grads"):
            arr = getattr(self, attr)
            arr[: len(keep)] = arr[keep]
        self._size = len(keep)

    # --- export -----------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        if not self.records_elements:
            return ["step", "loss"]
        return ["step", "loss", *self.layout.param_columns, *self.layout.grad_columns]

    def table(self) -> np.ndarray:
        """Every row as one 2-D float array in the order of :attr:`columns`."""
        return np.column_stack([self.steps, self.loss, self.params, self.grads]) if self._size \
            else np.zeros((0, len(self.columns)))

    def to_records(self) -> list[dict[str, float]]:
        cols = self.columns
        return [{c: (int(v) if c == "step" else _json_number(v)) for c, v in zip(cols, row)}
                for row in self.table()]

    def save(self, path: str | Path) -> None:
        """Write the history as CSV or JSON, chosen by the file's suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            with atomic_write(path, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(self.columns)
                for row in self.table():
                    writer.writerow([int(row[0]), *(repr(float(v)) for v in row[1:])])
        elif suffix == ".json":
            with atomic_write(path, "w") as fh:
                json.dump({"columns": self.columns, "stride": self.stride,
                           "rows": self.to_records()}, fh)
        else:
            from .errors import GdvizError
            raise GdvizError(f"cannot tell the history format from '{path.name}'; use a .csv "
                             "or .json file name")


def _json_number(value: float) -> float | None:
    """JSON has no NaN or infinity; write them as null."""
    value = float(value)
    return value if math.isfinite(value) else None
