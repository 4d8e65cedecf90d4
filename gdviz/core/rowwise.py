"""Whether a loss over data is the mean over its rows of terms each row makes alone.

Such a loss, and its gradient, is the weighted sum of the same loss on chunks of rows
(gradient accumulation), which is how the engine computes a full-batch step over large
data on the CPU: each chunk's temporaries are about 1 MB instead of as big as the data.
Passes over all the data make temporaries of 4 MB per million rows at every operation,
and glibc's heap, reused step after step with small long-lived blocks landing in between,
grows to several times their size (+117 MB over the data in a 10,000-step fit on 1e6
rows, against +42 MB in chunks, which are also faster: they stay in cache).

The analysis is structural and conservative: it follows each value's *row axis* (which
of its dims runs over the data's rows, counted from the right) through the program, on
zeros of the parameters' shapes and a few rows of data. Elementwise operations,
``stack`` and ``@`` with the rows on the left keep each row's values apart; a mean over the
rows (``mean``, ``mse``, ``mae``, ``huber``, ``bce``, ``bce_logits``) makes the loss, which
may then be scaled, shifted and added to other such means or to terms without data (a
weight penalty). Anything else that touches the rows (an index, a sum, a min or max, a mean
inside the function, a parameter as long as the data) answers False, and the loss is then
computed over all the rows at once.
"""

from __future__ import annotations

from typing import Callable, Collection, Mapping, Sequence

import torch

from .expressions import Expression, reduction_spec

#: A pass over the full data goes in chunks of about this many values per temporary
#: (rows x runs; 1 MB of float32), and no fewer than CHUNK_MIN_ROWS rows a chunk, so that
#: a large race does not drown in per-chunk overhead.
CHUNK_VALUES = 1 << 18
CHUNK_MIN_ROWS = 1 << 14

#: the state of a value that is a mean over the rows (a scalar per run), which chunks
#: combine by their share of the rows
MEAN = "mean"

#: rows of the probe: any number above 1 will do, as a shape tied to the data's length
#: fails the problem's own check on all the rows first
PROBE_ROWS = 3


def mean_over_rows(function: Expression, loss: Expression, columns: Collection[str],
                   shapes: Mapping[str, tuple[int, ...]]) -> bool:
    """True when ``loss`` (of ``y = function``) is a mean over the data's rows of per-row
    terms (see the module docstring). ``columns`` are the data columns the expressions
    use; ``shapes`` gives the parameters' shapes."""
    if not columns:
        return False
    env = {n: torch.zeros(s) for n, s in shapes.items()}
    env.update({n: torch.zeros(PROBE_ROWS) for n in columns})
    axes: dict[str, int | str | None] = {n: None for n in shapes}
    axes.update({n: -1 for n in columns})
    try:
        y, y_axis = _follow(function, env, axes)
        if y_axis == MEAN:  # a mean over the rows inside the function: not per row
            return False
        _, loss_axis = _follow(loss, {**env, "y": y}, {**axes, "y": y_axis})
    except (_Mixed, RuntimeError, ValueError, TypeError, IndexError):
        return False
    return loss_axis == MEAN


def row_chunks(rows: int, runs: int) -> list[tuple[int, int]] | None:
    """Equal chunks (start, stop) of ``rows`` rows for ``runs`` runs at once, or None when
    one pass over every row is small enough."""
    size = max(CHUNK_MIN_ROWS, CHUNK_VALUES // max(1, runs))
    if rows <= size:
        return None
    count = -(-rows // size)  # sizes differ by one row at most: one or two loss plans
    bounds = [rows * k // count for k in range(count + 1)]
    return list(zip(bounds, bounds[1:]))


def chunked_loss(chunks: Sequence[tuple[int, int, float, Callable]],
                 parameters: Callable[[], dict[str, torch.Tensor]],
                 data: Mapping[str, torch.Tensor],
                 backward: Callable[[torch.Tensor, float], None] | None = None) -> torch.Tensor:
    """Every run's loss on the full data from its chunks (see Problem.chunked_losses): each
    chunk's plan on ``parameters()`` (made anew: each chunk's graph is its own) and its rows
    of ``data``, weighted by its share; ``backward(loss, share)`` for each chunk's loss that
    has a gradient. Returns the weighted sum, detached."""
    total = None
    for start, stop, share, fn in chunks:
        env = parameters()
        env.update({n: col[start:stop] for n, col in data.items()})
        loss = fn(env)
        if backward is not None and loss.requires_grad:
            backward(loss, share)
        part = loss.detach() * share
        total = part if total is None else total + part
    return total


class _Mixed(Exception):
    """A value that mixes the data's rows in a way chunks cannot reproduce."""


def _follow(expr: Expression, env: Mapping[str, torch.Tensor],
            axes: Mapping[str, int | str | None]) -> tuple[torch.Tensor, int | str | None]:
    """Evaluate ``expr`` on the probe, following each value's row axis: None (no rows),
    a negative dim (per-row values along it) or MEAN."""
    values: list = [None] * len(expr.program)
    state: list[int | str | None] = [None] * len(expr.program)
    for i, ins in enumerate(expr.program):
        if ins.kind == "const":
            values[i] = ins.value
        elif ins.kind == "name":
            values[i], state[i] = env[ins.value], axes[ins.value]
        elif ins.kind == "index":
            if axes[ins.value] is not None:
                raise _Mixed  # picks rows, or elements across them
            values[i] = env[ins.value][ins.index]
        else:
            args = [values[a] for a in ins.args]
            values[i] = ins.fn(*args)
            state[i] = _axis_after(ins, args, [state[a] for a in ins.args])
    return values[-1], state[-1]


def _axis_after(ins, args: list, states: list) -> int | str | None:
    """The row axis of one operation's result, from its arguments'."""
    if all(s is None for s in states):
        return None
    if MEAN in states:
        return _affine_of_means(ins, states)
    spec = reduction_spec(ins)
    if spec is not None:
        if ins.value != "mean" and spec.pointwise is None:
            raise _Mixed  # a sum, min or max over the rows
        _common_axis(args, states)
        return MEAN
    if ins.kind == "op" and ins.value == "@":
        return _matmul_axis(args, states)
    axis = _common_axis(args, states)
    if ins.kind == "call" and ins.value == "stack":
        return axis - 1  # a new last dim
    return axis  # every other operator and function is elementwise


def _affine_of_means(ins, states: list) -> str:
    """Chunks' shares sum to one, so means combine through +, -, scaling by a term without
    rows and sums of means; nothing else (a product of two means, a log of one) does."""
    if ins.kind != "op":
        raise _Mixed
    if len(states) == 1:  # -m, +m
        return MEAN
    a, b = states
    if ins.value in "+-" and all(s in (MEAN, None) for s in states):
        return MEAN
    if ins.value == "*" and None in states:
        return MEAN
    if ins.value == "/" and a == MEAN and b is None:
        return MEAN
    raise _Mixed


def _common_axis(args: list, states: list) -> int:
    """Elementwise over broadcast arguments: every argument with rows has them on one axis,
    and every other argument is of size 1 there (or has no such dim): a parameter as long
    as the data would pair each row with an element of its own."""
    axes = {s for s in states if s is not None}
    if len(axes) != 1:
        raise _Mixed
    axis = axes.pop()
    for value, s in zip(args, states):
        if s is None and isinstance(value, torch.Tensor) and value.dim() >= -axis \
                and value.shape[axis] != 1:
            raise _Mixed
    return axis


def _matmul_axis(args: list, states: list) -> int:
    """``a @ b`` keeps rows apart when they are a's rows as a matrix, (..., rows, k) @ (k,)
    or (k, m), and b has none."""
    b, (sa, sb) = args[1], states
    if sb is not None or sa != -2 or not isinstance(b, torch.Tensor) or b.dim() > 2:
        raise _Mixed
    return -2 if b.dim() == 2 else -1
