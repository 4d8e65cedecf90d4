"""Optimizer updates for many runs at once.

Every parameter is one tensor whose first dimension is the run (a *row*). An
:class:`UpdateGroup` holds the rows of the runs that share an update rule, their
hyperparameters and the optimizer's state as torch keeps it (``momentum_buffer``,
``exp_avg``, ``exp_avg_sq``, ``square_avg``, ``sum``...), stacked the same way. One call of
:meth:`UpdateGroup.step` updates every row with a handful of tensor operations, whatever the
number of runs.

The arithmetic follows torch.optim's own single-tensor code (the tests compare every
optimizer with it step by step). Two choices keep it exact and cheap:

- Hyperparameters are float32 tensors: 0-dimensional when every row has the same value,
  one value per row otherwise. Both go through the same operations, so a run gives the
  same numbers alone as it does in a race.
- Nothing is updated in place: each step makes new parameter and state tensors. The engine
  keeps references to the old ones instead of copies, which is what lets it record the
  history and roll a run back to an earlier step for free.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import math

import numpy as np
import torch

from .optimizers import normalize_hypers
from .records import RowState
from .schedules import Schedule, rates

Tensors = dict[str, torch.Tensor]

#: The state tensors each update rule keeps per parameter.
STATE_KEYS = {
    "sgd": (),
    "momentum": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "adam-amsgrad": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "rmsprop": ("square_avg",),
    "rmsprop-momentum": ("square_avg", "momentum_buffer"),
    "rmsprop-centered": ("square_avg", "grad_avg"),
    "rmsprop-centered-momentum": ("square_avg", "grad_avg", "momentum_buffer"),
    "adagrad": ("sum",),
}


def rule_of(optimizer: str, hypers: Mapping[str, Any]) -> str:
    """The update rule (and so the state) an optimizer with these settings uses. Runs are
    grouped by rule; a change of rule (momentum switched on, say) starts a fresh state, as
    torch does when a momentum buffer does not exist yet."""
    if optimizer == "sgd":
        return "momentum" if hypers["momentum"] else "sgd"
    if optimizer in ("adam", "adamw"):
        # one rule for both: AdamW is Adam with its weight decay applied to the parameter
        # instead of the gradient, a per-row choice (so Adam and AdamW race as one group)
        return "adam-amsgrad" if hypers["amsgrad"] else "adam"
    if optimizer == "rmsprop":
        return "rmsprop" + ("-centered" if hypers["centered"] else "") + \
            ("-momentum" if hypers["momentum"] else "")
    return optimizer


def state_keys(rule: str) -> tuple[str, ...]:
    return STATE_KEYS[rule]


def group_rule(rules: Sequence[str]) -> str:
    """The rule one group of rows with these rules runs. Plain SGD rows join momentum rows
    as rows of momentum 0 (torch's momentum buffer is then the gradient itself, so their
    steps are exactly plain SGD's), so that a race of both costs one update."""
    kinds = set(rules)
    if kinds == {"sgd", "momentum"}:
        return "momentum"
    if len(kinds) != 1:
        raise ValueError("every row of a group must use the same update rule")
    return rules[0]


def group_key(rule: str) -> str:
    """Rows whose keys are equal can share a group (see :func:`group_rule`)."""
    return "momentum" if rule == "sgd" else rule


class UpdateGroup:
    """The runs (rows) that share one update rule; see the module docstring.

    ``optimizer`` names every row's optimizer, or each row's (Adam and AdamW rows share
    the rule "adam").

    ``shapes`` are the trainable parameters' shapes without the run dimension.
    ``states`` gives each row's saved state (None: fresh).

    A row may have a learning-rate schedule, evaluated at the row's run step (``run_steps``,
    counted over ``total`` steps) before each update, and a gradient clip: the row's
    gradient scaled to at most ``clip_norms[row]`` in norm first, as
    torch.nn.utils.clip_grad_norm_ does.
    """

    def __init__(self, optimizer: str | Sequence[str], hypers: Sequence[Mapping[str, Any]],
                 shapes: Mapping[str, tuple[int, ...]], device: torch.device,
                 states: Sequence[RowState | None] | None = None,
                 schedules: Sequence[Schedule] | None = None,
                 clip_norms: Sequence[float | None] | None = None,
                 run_steps: Sequence[int] | None = None, total: int = 1):
        self.optimizers = [optimizer] * len(hypers) if isinstance(optimizer, str) \
            else list(optimizer)
        self.optimizer = self.optimizers[0]
        self.hypers = [normalize_hypers(o, h) for o, h in zip(self.optimizers, hypers)]
        #: each row's own rule: what its state holds (a plain SGD row keeps no buffer)
        self.row_rules = [rule_of(o, h) for o, h in zip(self.optimizers, self.hypers)]
        self.rule = group_rule(self.row_rules)
        self.shapes = dict(shapes)
        self.device = device
        self.rows = len(self.hypers)
        self.steps = np.zeros(self.rows, dtype=np.int64)
        self.state: dict[str, Tensors] = {}
        states = list(states or [None] * self.rows)
        for key in state_keys(self.rule):
            self.state[key] = {name: torch.stack([self._initial(key, name, r, states[r])
                                                  for r in range(self.rows)])
                               for name in self.shapes}
        for r, saved in enumerate(states):
            if saved is not None:
                self.steps[r] = saved.step
        self.schedules = list(schedules or [Schedule()] * self.rows)
        self.clip_norms = list(clip_norms or [None] * self.rows)
        self.run_steps = np.asarray(run_steps if run_steps is not None else self.steps,
                                    dtype=np.int64).copy()
        self.total = int(total)
        self._constants: dict[tuple[str, int], torch.Tensor] = {}
        self._build_constants()

    def _initial(self, key: str, name: str, row: int, saved: RowState | None) -> torch.Tensor:
        shape = self.shapes[name]
        if saved is not None and name in saved.tensors.get(key, {}):
            return torch.as_tensor(np.asarray(saved.tensors[key][name], dtype=np.float32)
                                   ).reshape(shape).to(self.device)
        fill = self.hypers[row].get("initial_accumulator_value", 0.0) if key == "sum" else 0.0
        return torch.full(shape, float(fill), dtype=torch.float32, device=self.device)

    # --- hyperparameters ----------------------------------------------------------------

    def _build_constants(self) -> None:
        """Hyperparameters (and what torch derives from them in double precision, such as
        1 - beta1) as float32 tensors, one per row or one for all."""
        h = {k: np.array([float(row[k]) for row in self.hypers]) for k in self.hypers[0]}
        if self.rule == "momentum":
            # a plain row among momentum rows: torch ignores its dampening
            plain = np.array([r == "sgd" for r in self.row_rules])
            h["dampening"] = np.where(plain, 0.0, h["dampening"])
        derived = dict(h)
        for key in ("beta1", "beta2", "alpha", "dampening"):
            if key in h:
                derived[f"1-{key}"] = 1.0 - h[key]
        derived["-lr"] = -h["lr"]
        # weight decay: AdamW's rows decay the parameter (1 - lr*wd), every other row adds
        # wd * param to the gradient (L2); a row does one or the other, never both
        self._decoupled = np.array([o == "adamw" for o in self.optimizers])
        derived["l2"] = np.where(self._decoupled, 0.0, h["weight_decay"])
        self._no_l2 = bool(np.all(derived["l2"] == 0))
        self._no_decoupled = bool(np.all(h["weight_decay"][self._decoupled] == 0))
        if not self._no_decoupled:
            derived["1-lr*wd"] = 1.0 - h["lr"] * np.where(self._decoupled, h["weight_decay"], 0.0)
        self._values = derived
        self._constants = {}
        #: the hyperparameters (and derived values) every row shares, as Python floats
        self._uniform = {k: float(np.float32(v[0])) for k, v in derived.items()
                         if len(v) == 1 or (v == v[0]).all()}
        self._steps_uniform: bool | None = None
        self._nesterov = [bool(row.get("nesterov", False)) and rule == "momentum"
                          for row, rule in zip(self.hypers, self.row_rules)]
        # rows by schedule, so that a set of runs sharing one costs one vectorized call
        plans: dict[Schedule, list[int]] = {}
        for r, schedule in enumerate(self.schedules):
            plans.setdefault(schedule, []).append(r)
        self._plans = [] if all(s.is_constant for s in plans) else \
            [(schedule, np.array(rows)) for schedule, rows in plans.items()]
        self._base_lr = h["lr"].copy()
        clips = [math.inf if c is None else float(c) for c in self.clip_norms]
        self._clip: float | torch.Tensor | None = None
        if any(math.isfinite(c) for c in clips):
            self._clip = clips[0] if len(set(clips)) == 1 else torch.as_tensor(
                clips, dtype=torch.float32, device=self.device)

    def const(self, key: str, rank: int) -> torch.Tensor:
        """Hyperparameter ``key`` shaped to broadcast over a parameter of ``rank`` dims."""
        cached = self._constants.get((key, rank))
        if cached is None:
            cached = self._tensor(self._values[key], rank)
            self._constants[(key, rank)] = cached
        return cached

    def _tensor(self, values: np.ndarray, rank: int) -> torch.Tensor:
        if len(values) == 1 or (values == values[0]).all():
            return torch.tensor(float(values[0]), dtype=torch.float32, device=self.device)
        return torch.as_tensor(values, dtype=torch.float32, device=self.device).reshape(
            (-1,) + (1,) * rank)

    def _per_step(self, values: np.ndarray, rank: int) -> torch.Tensor | float:
        """A value that changes every step (a bias correction): a plain float when every row
        has the same (a float32 tensor times a float rounds exactly as times a 0-d float32
        tensor), a tensor of one value per row otherwise."""
        if len(values) == 1 or (values == values[0]).all():
            return float(np.float32(values[0]))
        return torch.as_tensor(values, dtype=torch.float32, device=self.device).reshape(
            (-1,) + (1,) * rank)


    def set_hyper(self, row: int, name: str, value: Any) -> None:
        """Change one row's hyperparameter; the state is kept (as torch keeps it when a
        param_group's value changes)."""
        optimizer = self.optimizers[row]
        new = normalize_hypers(optimizer, {**self.hypers[row], name: value})
        if rule_of(optimizer, new) != self.row_rules[row]:
            raise ValueError("this change needs another update rule")
        self.hypers[row] = new
        self._build_constants()

    # --- rows ---------------------------------------------------------------------------

    def select(self, rows: Sequence[int]) -> "UpdateGroup":
        """A group of only these rows (their state shared, not copied: nothing is updated
        in place)."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        group = object.__new__(UpdateGroup)
        group.optimizers = [self.optimizers[r] for r in rows]
        group.row_rules = [self.row_rules[r] for r in rows]
        group.optimizer, group.rule, group.shapes, group.device = \
            group.optimizers[0], self.rule, self.shapes, self.device
        group.hypers = [self.hypers[r] for r in rows]
        group.rows = len(group.hypers)
        group.steps = self.steps[list(rows)].copy()
        group.run_steps = self.run_steps[list(rows)].copy()
        group.schedules = [self.schedules[r] for r in rows]
        group.clip_norms = [self.clip_norms[r] for r in rows]
        group.total = self.total
        group.state = {k: {n: t.index_select(0, index) for n, t in per.items()}
                       for k, per in self.state.items()}
        group._build_constants()
        return group

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, dict[str, Tensors]]:
        """What :meth:`restore` needs to put the group back (references, not copies)."""
        return self.steps.copy(), self.run_steps.copy(), {k: dict(v) for k, v in self.state.items()}

    def restore(self, snapshot: tuple[np.ndarray, np.ndarray, dict[str, Tensors]]) -> None:
        steps, run_steps, state = snapshot
        self.steps, self.run_steps = steps.copy(), run_steps.copy()
        self._steps_uniform = None
        self.state = {k: dict(v) for k, v in state.items()}

    def export(self) -> list[RowState]:
        """Each row's state as plain numpy data (what its own rule keeps)."""
        host = {k: {n: t.detach().cpu().numpy() for n, t in per.items()}
                for k, per in self.state.items()}
        return [RowState(int(self.steps[r]),
                         {k: {n: arr[r].copy() for n, arr in per.items()}
                          for k, per in host.items() if k in state_keys(self.row_rules[r])})
                for r in range(self.rows)]

    # --- the update ---------------------------------------------------------------------

    @property
    def steps_uniform(self) -> bool:
        """Every row has applied as many updates (they all advance together, so this holds
        from the moment a group is made)."""
        if self._steps_uniform is None:
            self._steps_uniform = bool(len(self.steps) == 1 or (self.steps == self.steps[0]).all())
        return self._steps_uniform

    def lr_now(self) -> np.ndarray:
        """Each row's learning rate for its next update (its schedule at its run step)."""
        if not self._plans:
            return self._base_lr.copy()
        out = np.empty(self.rows)
        for schedule, rows in self._plans:
            out[rows] = rates(schedule, self._base_lr[rows], self.run_steps[rows], self.total)
        return out

    def _set_lr(self, lrs: np.ndarray) -> None:
        """This step's rates in place of the base rates (torch's schedulers set
        param_group['lr'] the same way, between steps)."""
        values = {"lr": lrs, "-lr": -lrs}
        if not self._no_decoupled:
            values["1-lr*wd"] = 1.0 - lrs * np.where(self._decoupled,
                                                     self._values["weight_decay"], 0.0)
        for key, v in values.items():
            self._values[key] = v
            if (v == v[0]).all():
                self._uniform[key] = float(np.float32(v[0]))
            else:
                self._uniform.pop(key, None)
        self._constants = {k: t for k, t in self._constants.items() if k[0] not in values}

    def clipped(self, grads: Tensors) -> Tensors:
        """The gradients scaled as clip_grad_norm_ scales them: by max_norm / (norm + 1e-6)
        where that is below 1, the norm taken over all of a row's parameters."""
        if self._clip is None:
            return grads
        squares = [torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)
                   for g in grads.values()]
        norm = squares[0] if len(squares) == 1 else torch.linalg.vector_norm(
            torch.stack(squares, dim=1), dim=1)
        coef = torch.clamp(self._clip / (norm + 1e-6), max=1.0)
        return {n: g * coef.reshape((-1,) + (1,) * (g.dim() - 1)) for n, g in grads.items()}

    def step(self, params: Tensors, grads: Tensors) -> Tensors:
        """One update of every row: new parameter tensors (the old ones are left as they
        were) and new state."""
        if self._plans:
            self._set_lr(self.lr_now())
        grads = self.clipped(grads)
        self.steps += 1
        self.run_steps += 1
        rule = self.rule
        if rule in ("sgd", "momentum"):
            return self._sgd(params, grads)
        if rule.startswith("adam"):
            return self._adam(params, grads)
        if rule.startswith("rmsprop"):
            return self._rmsprop(params, grads)
        return self._adagrad(params, grads)

    def _decayed(self, p: torch.Tensor, g: torch.Tensor, rank: int) -> torch.Tensor:
        """L2 weight decay folded into the gradient, as torch does (grad + wd * param)."""
        if self._no_l2:
            return g
        return self._addcmul(g, "l2", p, None, rank)

    # Fewer operations where every row has the same value: a scalar ``value=`` folds the
    # multiplication into the kernel. Both forms round alike (value * t1 * t2 is computed as
    # (value * t1) * t2 either way), so a run gives the same numbers alone and in a race.

    def _addcmul(self, x: torch.Tensor, key: str, t1: torch.Tensor, t2: torch.Tensor | None,
                 rank: int) -> torch.Tensor:
        """x + h[key] * t1 * t2 (t2 None: x + h[key] * t1)."""
        h = self._uniform.get(key)
        if t2 is None:
            return torch.addcmul(x, self.const(key, rank), t1)
        if h is not None:
            return torch.addcmul(x, t1, t2, value=h)
        return torch.addcmul(x, t1 * self.const(key, rank), t2)

    @staticmethod
    def _addcdiv(x: torch.Tensor, value: float | torch.Tensor, t1: torch.Tensor,
                 t2: torch.Tensor) -> torch.Tensor:
        """x + value * t1 / t2."""
        if isinstance(value, float):
            return torch.addcdiv(x, t1, t2, value=value)
        return torch.addcdiv(x, t1 * value, t2)

    def _sgd(self, params: Tensors, grads: Tensors) -> Tensors:
        out = {}
        if self.rule == "momentum":
            if self.steps_uniform:  # all rows on their first update, or none
                first_all, first_any, first = self.steps[0] == 1, self.steps[0] == 1, None
            else:
                first = self.steps == 1
                first_all, first_any = bool(first.all()), bool(first.any())
        for name, p in params.items():
            rank = p.dim() - 1
            g = self._decayed(p, grads[name], rank)
            if self.rule == "momentum":
                m = self.const("momentum", rank)
                buf = self.state["momentum_buffer"][name]
                # torch starts the buffer as a copy of the first gradient, undamped
                if first_all:
                    buf = g
                else:
                    moved = self._addcmul(buf * m, "1-dampening", g, None, rank)
                    buf = torch.where(self._row_mask(first, rank), g, moved) if first_any else moved
                self.state["momentum_buffer"][name] = buf
                nesterov = self._nesterov
                if all(nesterov):
                    g = torch.addcmul(g, m, buf)
                elif any(nesterov):
                    mask = self._constants.get(("nesterov", rank))
                    if mask is None:
                        mask = self._constants[("nesterov", rank)] = self._row_mask(np.array(nesterov), rank)
                    g = torch.where(mask, torch.addcmul(g, m, buf), buf)
                else:
                    g = buf
            out[name] = torch.addcmul(p, self.const("-lr", rank), g)
        return out

    def _adam(self, params: Tensors, grads: Tensors) -> Tensors:
        out = {}
        u = self._uniform
        if self.steps_uniform and "beta1" in u and "beta2" in u and "-lr" in u:
            # Every row alike: torch's own arithmetic, in Python floats (double precision).
            step = float(self.steps[0])
            h = self.hypers[0]
            neg_step_size = float(np.float32(-(self._values["lr"][0] / (1.0 - h["beta1"] ** step))))
            bc2_sqrt = float(np.float32((1.0 - h["beta2"] ** step) ** 0.5))
        else:
            steps = self.steps.astype(np.float64)
            bc1 = 1.0 - self._values["beta1"] ** steps
            bc2 = 1.0 - self._values["beta2"] ** steps
            neg_step_size = self._per_step(-(self._values["lr"] / bc1), 0)
            bc2_sqrt = self._per_step(np.sqrt(bc2), 0)
        for name, p in params.items():
            rank = p.dim() - 1
            g = self._decayed(p, grads[name], rank)   # Adam's rows (L2)
            if not self._no_decoupled:                # AdamW's rows (1.0 for Adam's)
                p = p * self.const("1-lr*wd", rank)
            exp_avg = torch.lerp(self.state["exp_avg"][name], g, self.const("1-beta1", rank))
            sq = self._addcmul(self.state["exp_avg_sq"][name] * self.const("beta2", rank),
                               "1-beta2", g, g, rank)
            self.state["exp_avg"][name], self.state["exp_avg_sq"][name] = exp_avg, sq
            if "max_exp_avg_sq" in self.state:
                sq = torch.maximum(self.state["max_exp_avg_sq"][name], sq)
                self.state["max_exp_avg_sq"][name] = sq
            denom = sq.sqrt().div_(self._shaped(bc2_sqrt, rank)).add_(self.const("eps", rank))
            out[name] = self._addcdiv(p, self._shaped(neg_step_size, rank), exp_avg, denom)
        return out

    def _rmsprop(self, params: Tensors, grads: Tensors) -> Tensors:
        out = {}
        for name, p in params.items():
            rank = p.dim() - 1
            g = self._decayed(p, grads[name], rank)
            square_avg = self._addcmul(self.state["square_avg"][name] * self.const("alpha", rank),
                                       "1-alpha", g, g, rank)
            self.state["square_avg"][name] = square_avg
            if "grad_avg" in self.state:
                grad_avg = torch.lerp(self.state["grad_avg"][name], g, self.const("1-alpha", rank))
                self.state["grad_avg"][name] = grad_avg
                avg = torch.addcmul(square_avg, grad_avg, grad_avg, value=-1).sqrt_()
            else:
                avg = square_avg.sqrt()
            avg = avg.add_(self.const("eps", rank))
            if "momentum_buffer" in self.state:
                buf = torch.addcdiv(self.state["momentum_buffer"][name] * self.const("momentum", rank),
                                    g, avg)
                self.state["momentum_buffer"][name] = buf
                out[name] = torch.addcmul(p, self.const("-lr", rank), buf)
            else:
                lr = self._uniform.get("-lr")
                out[name] = self._addcdiv(p, lr if lr is not None else self.const("-lr", rank),
                                          g, avg)
        return out

    def _adagrad(self, params: Tensors, grads: Tensors) -> Tensors:
        out = {}
        steps = self.steps.astype(np.float64)
        neg_clr = self._per_step(-(self._values["lr"] / (1.0 + (steps - 1.0) * self._values["lr_decay"])), 0)
        for name, p in params.items():
            rank = p.dim() - 1
            g = self._decayed(p, grads[name], rank)
            total = torch.addcmul(self.state["sum"][name], g, g)
            self.state["sum"][name] = total
            std = total.sqrt().add_(self.const("eps", rank))
            out[name] = self._addcdiv(p, self._shaped(neg_clr, rank), g, std)
        return out

    @staticmethod
    def _shaped(value: float | torch.Tensor, rank: int) -> float | torch.Tensor:
        """A per-step value (float, or one per row) shaped for a parameter of ``rank`` dims."""
        return value if isinstance(value, float) else value.reshape((-1,) + (1,) * rank)

    def _row_mask(self, flags: np.ndarray, rank: int) -> torch.Tensor:
        return torch.as_tensor(flags, device=self.device).reshape((-1,) + (1,) * rank)


def fresh_state_fits(optimizer: str, hypers: Mapping[str, Any], state: RowState | None,
                     shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why a saved state cannot continue this optimizer (None when it can): every key the
    rule needs, one finite array of the right shape per parameter."""
    if state is None:
        return None
    needed = state_keys(rule_of(optimizer, normalize_hypers(optimizer, hypers)))
    for key in needed:
        per = state.tensors.get(key)
        if per is None:
            return f"it has no '{key}' (it was saved for another optimizer)"
        for name, shape in shapes.items():
            arr = per.get(name)
            if arr is None:
                return f"'{key}' has nothing for {name}"
            if tuple(np.shape(arr)) != tuple(shape):
                return f"'{key}' of {name} has shape {tuple(np.shape(arr))}, not {tuple(shape)}"
    extra = set(state.tensors) - set(needed)
    if extra:
        return f"it holds '{sorted(extra)[0]}', which {optimizer} with these settings does not use"
    if state.step < 0:
        return "its step count is negative"
    return None
