"""What a run reports: the keys of ``gdviz run --json`` (also the window's runFinished)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import jsonsafe
from .history import ColumnLayout
from .data import Dataset
from .model import Run
from .records import RowState
from .schedules import rates


def state_lists(state: RowState | None) -> dict[str, object]:
    """An optimizer's state as JSON: {"step": n, "exp_avg": {"w": [...]}, ...} ({} before
    the first update)."""
    if state is None:
        return {}
    return {"step": state.step, **{key: {n: np.asarray(a, dtype=np.float64).tolist()
                                         for n, a in per.items()}
                                   for key, per in state.tensors.items()}}


def run_summary(run: Run, layout: ColumnLayout, loss_summed: bool, device: str, step_limit: int,
                elapsed_s: float, executed: int, grad: np.ndarray | None = None,
                arrays: bool = True) -> dict[str, Any]:
    """status, message, steps, loss, loss_summed, params, grads, device, optimizer, lr
    (the rate the next step uses), schedule, clip_norm, optimizer_state (per state key and
    parameter, torch's state tensors as nested lists; empty without ``arrays``), elapsed_s,
    steps_per_s. NaN and infinity are written as null."""
    grad = run.grad if grad is None else grad
    grads = layout.unflatten(grad, grads=True) if grad is not None else {}
    status = run.status.value if run.status.stopped else (
        "finished" if run.step >= step_limit else "paused")
    return jsonsafe.plain({
        "status": status,
        "message": run.message,
        "steps": run.step,
        "loss": run.loss,
        "loss_summed": loss_summed,
        "params": {n: np.asarray(v, dtype=np.float64).tolist()
                   for n, v in layout.unflatten(run.values).items()},
        "grads": {n: (np.asarray(grads[n], dtype=np.float64).tolist() if n in grads else None)
                  for n in layout.names},
        "device": device,
        "optimizer": {"name": run.settings.optimizer, **run.settings.hypers},
        "lr": float(rates(run.settings.schedule, run.settings.hypers["lr"],
                          min(run.step, max(step_limit - 1, 0)), step_limit)),
        "schedule": run.settings.schedule.to_dict(),
        "clip_norm": run.settings.clip_norm,
        "optimizer_state": state_lists(run.optimizer_state) if arrays else {},
        "elapsed_s": round(elapsed_s, 6),
        "steps_per_s": round(executed / elapsed_s, 1) if elapsed_s > 0 else None,
    })


def data_summary(data: Dataset | None, batch_size: int | None, step: int) -> dict[str, Any]:
    """What ``gdviz run --json`` adds for a fit to data: ``data`` (rows, columns,
    batch_size, source) and ``epochs`` (passes over the data so far)."""
    if data is None:
        return {}
    per_epoch = data.rows // batch_size if batch_size else 1
    return {"data": {"rows": data.rows, "columns": data.names,
                     "batch_size": batch_size or data.rows, "source": data.source},
            "epochs": step / per_epoch}
