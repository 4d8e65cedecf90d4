"""A problem: a compiled function and loss, and the initial values of their parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from .errors import GdvizError
from .expressions import Expression, compile_expression
from .history import ColumnLayout
from .initializers import make_initial_value
from .params import DEFAULT_LOSS, ParamSpec
from .rowwise import mean_over_rows, row_chunks
from .data import Dataset
from .records import ProblemInfo

#: data rows above which a new problem's gradients are checked on the first rows only
CHECK_ROWS = 4096


@dataclass
class Problem:
    """The function and loss compiled once, with seeded initial values (CPU tensors).

    ``names`` lists every parameter in the order it first appears in the function;
    ``trainable`` those that are not frozen. With ``data``, the data's columns are
    variables too (shared by every run, never trained nor recorded); ``batch_size`` rows of
    it make a mini-batch (None: the full data every step).
    """

    function_text: str
    loss_text: str = DEFAULT_LOSS
    specs: Mapping[str, ParamSpec] = field(default_factory=dict)
    seed: int = 0
    data: Dataset | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        self.loss_text = (self.loss_text or "").strip() or DEFAULT_LOSS
        columns = self.data.names if self.data is not None else []
        self.function: Expression = compile_expression(self.function_text, "function",
                                                       reserved=("y", "loss"))
        self.names: list[str] = [n for n in self.function.names if n not in columns]
        if not self.names:
            raise GdvizError("the function has no parameters, only data columns ("
                             f"{', '.join(self.function.names)}); add one, as in w*x + b")
        clash = [n for n in self.specs if n in columns]
        if clash:
            raise GdvizError(f"'{clash[0]}' is a column of the data, so it cannot also be a "
                             "parameter; rename the parameter")
        unknown = [n for n in self.specs if n not in self.names]
        if unknown:
            raise GdvizError(f"parameter '{unknown[0]}' is not in the function; its parameters "
                             f"are {', '.join(self.names)}")
        self.loss: Expression = compile_expression(self.loss_text, "loss",
                                                   variables=self.names + ["y"] + columns)
        used = set(self.function.names) | set(self.loss.names)
        #: the data columns the expressions use, as float32 CPU tensors
        self.data_columns = {n: torch.as_tensor(self.data.columns[n], dtype=torch.float32)
                             for n in columns if n in used}
        #: what the user should know about the data (renamed or unused columns)
        self.notes: list[str] = list(self.data.notes) if self.data is not None else []
        unused = [n for n in columns if n not in used]
        self.notes += [f"the data column {n} is not used by the function or the loss"
                       for n in unused]
        if unused:  # a column the function meant to use but spelt otherwise is trained
            names = self.names
            self.notes.append(
                f"{names[0]} is trained as a parameter, not read from the data: if it should "
                "be a column, use the column's name" if len(names) == 1 else
                f"{', '.join(names[:-1])} and {names[-1]} are trained as parameters, not read "
                "from the data: if one should be a column, use the column's name")
        rows = self.data.rows if self.data is not None else 0
        if self.batch_size is not None:
            if self.data is None:
                raise GdvizError("a batch size needs data to draw the batches from")
            if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) \
                    or self.batch_size < 1:
                raise GdvizError("the batch size must be a whole number of rows, at least 1")
            if self.batch_size >= rows:
                self.batch_size = None  # the whole data: a full batch
        self.specs = {n: self.specs.get(n) or ParamSpec() for n in self.names}
        self.frozen = {n for n, s in self.specs.items() if s.frozen}
        self.trainable = [n for n in self.names if n not in self.frozen]
        generator = torch.Generator().manual_seed(int(self.seed))
        self.initial = {n: make_initial_value(self.specs[n].init, generator,
                                              field=f"the initial value of {n}")
                        for n in self.names}
        # What is accepted must train: one forward and backward of each expression, which
        # points at the column of an operation that has no gradient there. Large data is
        # checked forward on every row (without a graph), backward on its first CHECK_ROWS:
        # element-wise over rows, those differentiate as all of them do, and the check's
        # memory stays that of a few rows.
        if rows > CHECK_ROWS:
            env = {**self.initial, **self.data_columns}
            with torch.no_grad():
                y = self.function.check(env)
                raw = self.loss.check({**env, "y": y})
            try:
                self._check_gradients(self._first_rows(CHECK_ROWS))
            except GdvizError:  # a shape tied to the number of rows: check them all
                self._check_gradients(self.data_columns)
        else:
            y, raw = self._check_gradients(self.data_columns)
        #: True when the loss expression is not a single number and is summed (as
        #: ``backward(torch.ones_like(y))`` does in the seed notebook)
        self.loss_summed = raw.dim() > 0
        if raw.numel() == 0:
            raise GdvizError("the loss has no elements (a parameter has a zero size)")
        self._y_shape = tuple(y.shape)
        self._raw_dims = tuple(range(1, raw.dim() + 1))
        self.layout = ColumnLayout(self.shapes, tuple(self.trainable))
        self._plans: dict[tuple[int, bool], Callable] = {}
        self._data_on: dict[tuple, dict[str, torch.Tensor]] = {}
        #: whether the loss is a mean over the data's rows of terms each row makes alone,
        #: so that a pass over the data may go chunk by chunk (see rowwise.py)
        self.mean_over_rows = mean_over_rows(self.function, self.loss, self.data_columns,
                                             self.shapes)
        self._check_backward()

    @property
    def data_rows(self) -> int:
        return self.data.rows if self.data is not None else 0

    def data_on(self, device: torch.device, dtype: torch.dtype = torch.float32
                ) -> dict[str, torch.Tensor]:
        """The data columns on a device (moved there once)."""
        key = (str(device), dtype)
        if key not in self._data_on:
            self._data_on[key] = {n: t.to(device=device, dtype=dtype)
                                  for n, t in self.data_columns.items()}
        return self._data_on[key]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(v.shape) for n, v in self.initial.items()}

    def info(self) -> ProblemInfo:
        return ProblemInfo(self.function_text, self.loss_text, tuple(self.names),
                           tuple(self.trainable), self.layout, self.initial_flat(),
                           self.loss_summed, self.data, self.batch_size, tuple(self.notes))

    def initial_flat(self) -> np.ndarray:
        """The initial values of every parameter, flattened in order (a history row)."""
        return np.concatenate([self.initial[n].reshape(-1).double().numpy() for n in self.names])

    def forward(self, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The function's value y and the scalar loss at one point (tensors of the
        parameters' own shapes), on the full data: what the computation graph and
        ``gdviz grad`` show."""
        some = next(iter(values.values()))
        env = {**self.data_on(some.device, some.dtype), **values}
        y = self.function.evaluate(env)
        raw = self.loss.evaluate({**env, "y": y})
        return y, (raw.sum() if self.loss_summed else raw)

    def batched_loss(self, data_rows: int | None = None, data_batched: bool = False
                     ) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """The loss of R runs at once: ``env[name]`` has shape (R, *shape); returns (R,).
        One compiled plan, no per-call dispatch: this is the training loop's forward pass.

        With data, ``env`` may hold the data columns: ``data_rows`` rows each (a
        mini-batch), shared by every run, or (R, data_rows) with ``data_batched`` (a batch
        per run). Without them the full data is used, on the parameters' device."""
        rows = self.data_rows if data_rows is None else int(data_rows)
        key = (rows, data_batched)
        if key not in self._plans:
            data_shapes = {n: (rows,) for n in self.data_columns}
            y_shape = self._y_shape if rows == self.data_rows else self._y_shape_for(rows)
            batched = self.names + (list(self.data_columns) if data_batched else [])
            function = self.function.plan({**self.shapes, **data_shapes}, batched)
            loss = self.loss.plan({**self.shapes, **data_shapes, "y": y_shape},
                                  [*batched, "y"])
            dims = tuple(range(1, len(self._raw_dims) + 1)) if self.loss_summed else ()
            summed, full = self.loss_summed, rows == self.data_rows and not data_batched
            columns = list(self.data_columns)

            def losses(env: Mapping[str, torch.Tensor]) -> torch.Tensor:
                if columns and columns[0] not in env and full:
                    some = next(iter(env.values()))
                    env = {**self.data_on(some.device, some.dtype), **env}
                raw = loss({**env, "y": function(env)})
                return raw.sum(dim=dims) if summed else raw

            self._plans[key] = losses
        return self._plans[key]

    def chunked_losses(self, runs: int, device: torch.device | str
                       ) -> list[tuple[int, int, float, Callable]] | None:
        """The full-data loss of ``runs`` runs in chunks of rows, as (start, stop, share of
        the rows, loss plan) each: the loss and its gradient are the chunks' weighted by
        their shares, each chunk's temporaries that size rather than the data's. None for
        one pass over every row: on CUDA (its caching allocator keeps large blocks, and large
        kernels suit it), small data, or a loss that is not a mean over the rows."""
        if not self.mean_over_rows or torch.device(device).type != "cpu":
            return None
        bounds = row_chunks(self.data_rows, runs)
        if bounds is None:
            return None
        return [(a, b, (b - a) / self.data_rows, self.batched_loss(b - a)) for a, b in bounds]

    def _y_shape_for(self, rows: int) -> tuple[int, ...]:
        """y's shape when the data has ``rows`` rows (a mini-batch)."""
        env = {**self.initial, **{n: t[:rows] for n, t in self.data_columns.items()}}
        with torch.no_grad():
            return tuple(self.function.evaluate(env).shape)

    def losses_at(self, points: np.ndarray, chunk_values: int = 4_000_000) -> np.ndarray:
        """The loss at each row of ``points`` (flat parameter rows), in vectorized chunks that
        bound memory; non-finite values come back as NaN. For the landscape and analyses."""
        points = np.asarray(points, dtype=np.float64)
        out = np.empty(len(points))
        fn = self.batched_loss()
        # with data, each point's forward pass is as big as the data
        chunk = max(1, chunk_values // max(1, points.shape[1], self.data_rows))
        slices = self.layout.param_slices
        with torch.no_grad():
            for start in range(0, len(points), chunk):
                part = torch.as_tensor(points[start:start + chunk], dtype=torch.float32)
                env = {n: part[:, sl].reshape((len(part),) + self.layout.shapes[n])
                       for n, sl in slices.items()}
                try:
                    out[start:start + len(part)] = fn(env).double().numpy()
                except (RuntimeError, ValueError):
                    out[start:start + len(part)] = np.nan
        out[~np.isfinite(out)] = np.nan
        return out

    def _first_rows(self, rows: int) -> dict[str, torch.Tensor]:
        return {n: t[:rows] for n, t in self.data_columns.items()}

    def _check_gradients(self, columns: Mapping[str, torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward and backward of the function and of the loss on these columns."""
        env = {**self.initial, **columns}
        y = self.function.check(env, backward=self.trainable or False)
        return y, self.loss.check({**env, "y": y}, backward=[*self.trainable, "y"])

    def _check_backward(self) -> None:
        """What is accepted must train: one forward and backward at the initial values (of
        the training loop's own plan; on the first CHECK_ROWS rows of large data)."""
        def run(rows: int | None) -> None:
            env = {n: t.unsqueeze(0).clone().requires_grad_(n not in self.frozen)
                   for n, t in self.initial.items()}
            fn = self.batched_loss(rows)
            if rows is not None:
                env.update(self._first_rows(rows))
            loss = fn(env)
            if loss.requires_grad:
                loss.sum().backward()

        try:
            self.batched_loss()  # built for every row, whatever is run below
            if self.data_rows > CHECK_ROWS:
                try:
                    run(CHECK_ROWS)
                    return
                except (RuntimeError, ValueError, TypeError, IndexError, GdvizError):
                    pass  # a shape tied to the number of rows: every row, below
            run(None)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GdvizError(f"cannot compute the gradient of the loss: "
                             f"{str(exc).splitlines()[0][:200]}") from None
