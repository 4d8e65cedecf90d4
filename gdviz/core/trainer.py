"""The training loop as a plain generator of step batches.

``Trainer.iter_steps(n)`` runs up to ``n`` optimizer steps and yields a :class:`StepBatch`
at most every ``max_batch_s`` seconds (16 ms by default, about one screen refresh). The
batch carries numpy copies only, so it can cross threads safely.

Per step the loop keeps detached tensors (the loss, a copy of the parameters, the gradient
that backward just made) and converts them once per batch. There is no host sync per step,
so on CUDA the GPU runs ahead and history is copied in chunks. Divergence and the loss
tolerance are checked per batch on those arrays; when either hits mid-batch the batch is
cut at that exact step and the parameters are put back to the state that step recorded,
which gives the same result as checking every step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .device import resolve_device
from .errors import GdvizError
from .history import ColumnLayout
from .optimizers import make_optimizer, normalize_hypers
from .problem import Problem

RUNNING, PAUSED, FINISHED, CONVERGED, DIVERGED = "running", "paused", "finished", "converged", "diverged"


@dataclass
class StepBatch:
    """Rows recorded by one stretch of the loop, plus where the run stands after it."""

    steps: np.ndarray    # (n,) int64: updates applied before each recorded point
    loss: np.ndarray     # (n,) float64
    params: np.ndarray   # (n, P) float64: every parameter element, frozen ones too
    grads: np.ndarray    # (n, G) float64: every trainable element's gradient
    current: np.ndarray  # (P,) the parameters now, after the batch's last update
    step: int            # updates applied so far
    status: str          # running, paused, finished, converged or diverged
    message: str = ""
    elapsed_s: float = 0.0

    def __len__(self) -> int:
        return len(self.steps)


class Trainer:
    """Owns the live tensors and the optimizer of one run of a :class:`Problem`."""

    def __init__(self, problem: Problem, optimizer: str = "sgd",
                 hypers: Mapping[str, Any] | None = None, device: str = "cpu",
                 max_steps: int = 1000, tol: float | None = None,
                 start: Mapping[str, Any] | None = None, start_step: int = 0,
                 max_batch_s: float = 0.016, optimizer_state: Mapping[str, Any] | None = None):
        if not problem.trainable:
            raise GdvizError("every parameter is frozen, so there is nothing to train")
        self.problem = problem
        self.device = resolve_device(device)
        self.optimizer_name = optimizer
        self.hypers = normalize_hypers(optimizer, hypers)
        self.max_steps = int(max_steps)
        self.tol = tol
        self.max_batch_s = max_batch_s
        self.layout = ColumnLayout(problem.shapes, tuple(problem.trainable))
        self.values: dict[str, torch.Tensor] = {}
        self.reset(start, start_step)
        if optimizer_state:
            self.load_optimizer_state(optimizer_state)

    # --- state --------------------------------------------------------------------------

    def reset(self, start: Mapping[str, Any] | None = None, start_step: int = 0) -> None:
        """Back to the initial values (or ``start``), step 0, a fresh optimizer."""
        self.values = {}
        for name in self.problem.names:
            init = self.problem.initial[name]
            if start is not None and name in start:
                value = torch.as_tensor(np.asarray(start[name], dtype=np.float32))
                if tuple(value.shape) != tuple(init.shape):
                    raise GdvizError(f"the saved value of {name} has shape {tuple(value.shape)}"
                                     f", but the function needs {tuple(init.shape)}")
                init = value
            tensor = init.detach().clone().to(self.device)
            tensor.requires_grad_(name not in self.problem.frozen)
            self.values[name] = tensor
        self.step = int(start_step)
        self.status = PAUSED if start_step else "idle"
        self.message = ""
        self.elapsed_s = 0.0
        self.executed = 0  # steps computed, including any rolled back at a stop
        self._rebuild_optimizer()

    def _rebuild_optimizer(self) -> None:
        self._trainable = [self.values[n] for n in self.problem.trainable]
        self._all = [self.values[n] for n in self.problem.names]
        self.optimizer = make_optimizer(self.optimizer_name, self._trainable, self.hypers)

    def set_hyper(self, name: str, value: Any) -> None:
        """Change a hyperparameter; it takes effect at the next step. The learning rate keeps
        the optimizer's state; other changes start a fresh optimizer from the current point."""
        self.hypers = normalize_hypers(self.optimizer_name, {**self.hypers, name: value})
        if name == "lr":
            self.optimizer.set("lr", self.hypers["lr"])
        else:
            self._rebuild_optimizer()

    def set_optimizer(self, name: str, hypers: Mapping[str, Any] | None = None) -> None:
        """Switch optimizer from the current point."""
        self.hypers = normalize_hypers(name, hypers)
        self.optimizer_name = name
        self._rebuild_optimizer()

    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's running state (momentum, Adam's moments) as JSON-ready data, so a
        saved session continues exactly; None for plain SGD, which has none."""
        opt = getattr(self.optimizer, "optimizer", None)
        if opt is None:
            return None
        return {str(k): {name: _encode(v) for name, v in entry.items()}
                for k, entry in opt.state_dict()["state"].items()}

    def load_optimizer_state(self, data: Mapping[str, Any]) -> None:
        opt = getattr(self.optimizer, "optimizer", None)
        if opt is None:
            return
        state_dict = opt.state_dict()
        try:
            state_dict["state"] = {int(k): {name: _decode(v) for name, v in entry.items()}
                                   for k, entry in data.items()}
            opt.load_state_dict(state_dict)
        except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as exc:
            raise GdvizError(f"the saved optimizer state does not fit {self.optimizer_name} "
                             f"on this problem: {exc}") from None

    def current_params(self) -> dict[str, np.ndarray]:
        return {n: v.detach().cpu().numpy().astype(np.float64) for n, v in self.values.items()}

    def flat_params(self) -> np.ndarray:
        return self._flat(self._all).detach().cpu().numpy().astype(np.float64)

    def set_params(self, flat: np.ndarray) -> None:
        """Move every parameter to the values of a flat row (a click on the landscape)."""
        with torch.no_grad():
            for name, part in self.layout.unflatten(np.asarray(flat, np.float64)).items():
                self.values[name].copy_(torch.as_tensor(part, dtype=torch.float32))

    def evaluate(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor | None]]:
        """One forward and backward pass at the current point without stepping:
        y (still carrying its grad_fn), the loss, and each parameter's gradient (None where
        frozen)."""
        y, loss = self.problem.forward(self.values)
        grads = dict.fromkeys(self.problem.names)
        if loss.requires_grad:
            found = torch.autograd.grad(loss, self._trainable, allow_unused=True)
            for name, g in zip(self.problem.trainable, found):
                grads[name] = torch.zeros_like(self.values[name]) if g is None else g
        return y, loss.detach(), grads

    def current_loss(self) -> float:
        with torch.no_grad():
            return float(self.problem.loss_value(self.values))

    # --- the loop -----------------------------------------------------------------------

    @staticmethod
    def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
        if len(tensors) == 1:
            return tensors[0].detach().reshape(-1).clone()
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def iter_steps(self, n: int | None = None, max_batch_s: float | None = None
                   ) -> Iterator[StepBatch]:
        """Run up to ``n`` steps (default: up to ``max_steps``), yielding batches."""
        remaining = self.max_steps - self.step if n is None else int(n)
        budget = self.max_batch_s if max_batch_s is None else max_batch_s
        loss_value = self.problem.loss_value
        values, trainable, every = self.values, self._trainable, self._all
        flat = self._flat
        single = every[0] if len(every) == 1 else None
        # backward() would allocate ones_like(loss) every step; one shared seed gradient will do.
        seed_grad = torch.ones((), device=self.device)
        if remaining <= 0:
            self.status = FINISHED if self.step >= self.max_steps else PAUSED
            return
        self.status = RUNNING
        self._restore_point = self.flat_params()
        while remaining > 0:
            losses: list[torch.Tensor] = []
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            optimizer_step = self.optimizer.step
            no_copy = self.optimizer.keeps_old_storage
            started = time.perf_counter()
            deadline = started + budget
            count = 0
            if single is not None:
                # One trainable tensor and nothing frozen (the common teaching case): record
                # without reshapes or concatenation; _pack flattens once per batch.
                while count < remaining:
                    loss = loss_value(values)
                    loss.backward(seed_grad)
                    losses.append(loss.detach())
                    params.append(single.detach() if no_copy else single.detach().clone())
                    grads.append(single.grad)
                    optimizer_step()
                    single.grad = None
                    count += 1
                    if time.perf_counter() >= deadline:
                        break
            else:
                while count < remaining:
                    loss = loss_value(values)
                    loss.backward(seed_grad)
                    losses.append(loss.detach())
                    params.append(flat(every))
                    grads.append(torch.cat([p.grad.reshape(-1) for p in trainable]))
                    optimizer_step()
                    for p in trainable:
                        p.grad = None
                    count += 1
                    if time.perf_counter() >= deadline:
                        break
            self.elapsed_s += time.perf_counter() - started
            self.executed += count
            remaining -= count
            batch = self._pack(losses, params, grads)
            if batch.status == RUNNING and remaining <= 0:
                batch.status = FINISHED if self.step >= self.max_steps else PAUSED
            self.status = batch.status
            batch.elapsed_s = self.elapsed_s
            yield batch
            if batch.status != RUNNING:
                return

    def _pack(self, losses, params, grads) -> StepBatch:
        first = self.step
        n = len(losses)
        loss = torch.stack(losses).to(torch.float64).cpu().numpy()
        par = torch.stack(params).reshape(n, -1).to(torch.float64).cpu().numpy()
        grad = torch.stack(grads).reshape(n, -1).to(torch.float64).cpu().numpy()
        steps = np.arange(first, first + len(loss), dtype=np.int64)
        finite = np.isfinite(loss) & np.isfinite(par).all(axis=1) & np.isfinite(grad).all(axis=1)
        status, message, cut = RUNNING, "", len(loss)
        bad = np.flatnonzero(~finite)
        if len(bad):
            cut = int(bad[0])
            status = DIVERGED
            what = "the loss" if not np.isfinite(loss[cut]) else (
                "a parameter" if not np.isfinite(par[cut]).all() else "a gradient")
            message = (f"diverged at step {steps[cut]}: {what} became "
                       f"{_bad_value(loss[cut], par[cut], grad[cut])}")
        if self.tol is not None:
            hit = np.flatnonzero(loss[:cut] <= self.tol)
            if len(hit):
                cut = int(hit[0]) + 1
                status = CONVERGED
                message = (f"converged at step {steps[cut - 1]}: loss {loss[cut - 1]:.6g} "
                           f"<= tolerance {self.tol:g}")
        if status == DIVERGED:
            self._restore(par[cut - 1] if cut > 0 else self._restore_point)
            self.step = int(steps[cut - 1]) if cut > 0 else first
            self._rebuild_optimizer()  # its state (momentum, moments) may hold inf or NaN
            message += (f". The last finite state (step {self.step}) is kept; try a smaller "
                        "learning rate.")
        elif status == CONVERGED:
            self._restore(par[cut - 1])
            self.step = int(steps[cut - 1])
        else:
            self.step = first + len(loss)
        current = self.flat_params()
        self._restore_point = current
        self.message = message
        return StepBatch(steps[:cut], loss[:cut], par[:cut], grad[:cut], current, self.step,
                         status, message)

    def _restore(self, flat: np.ndarray | None) -> None:
        if flat is not None and np.isfinite(flat).all():
            self.set_params(flat)

    # --- results ------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The keys of ``gdviz run --json``: status, steps, loss, params, grads, ..."""
        _, loss, grads = self.evaluate()
        status = self.status if self.status in (FINISHED, CONVERGED, DIVERGED) else (
            FINISHED if self.step >= self.max_steps else self.status)
        return {
            "status": status,
            "message": self.message,
            "steps": self.step,
            "loss": _number(float(loss)),
            "loss_summed": self.problem.loss_summed,
            "params": {n: _nested(v) for n, v in self.values.items()},
            "grads": {n: (None if g is None else _nested(g)) for n, g in grads.items()},
            "device": str(self.device),
            "optimizer": {"name": self.optimizer_name, **self.hypers},
            "elapsed_s": round(self.elapsed_s, 6),
            "steps_per_s": round(self.executed / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
        }


def _encode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return {"tensor": value.detach().cpu().tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "tensor" in value:
        dtype = getattr(torch, str(value.get("dtype", "float32")))
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"unknown dtype {value.get('dtype')!r}")
        return torch.tensor(value["tensor"], dtype=dtype)
    return value


def _bad_value(*arrays: np.ndarray) -> str:
    for arr in arrays:
        arr = np.atleast_1d(arr)
        if np.isnan(arr).any():
            return "NaN"
        if np.isinf(arr).any():
            return "infinite"
    return "not finite"


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _nested(tensor: torch.Tensor) -> Any:
    """A tensor as nested lists of floats in its shape (a plain float for a 0-d tensor);
    JSON has no NaN, so non-finite values become None."""
    data = tensor.detach().cpu().to(torch.float64).tolist()

    def clean(v):
        if isinstance(v, list):
            return [clean(x) for x in v]
        return _number(v)

    return clean(data)
