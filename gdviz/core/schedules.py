"""Learning-rate schedules, stepped once per optimizer step, as torch.optim.lr_scheduler
defines them (tests compare every schedule with torch's own, step by step).

A schedule turns a run's learning rate (its base) and the step number into the rate that
step uses; it spans the run's step limit. Closed forms, so a step's rate never depends on
how the run was batched, paused or saved:

- ``constant``: the base rate.
- ``step``: StepLR, the rate times ``gamma`` every ``step_size`` steps.
- ``exponential``: ExponentialLR, the rate times ``gamma`` every step.
- ``cosine``: CosineAnnealingLR from the base down to ``min_lr`` at the step limit.
- ``warmup-cosine``: LinearLR from 1% of the base up to the base over ``warmup`` steps, then
  CosineAnnealingLR down to ``min_lr`` at the step limit (SequentialLR).
- ``one-cycle``: OneCycleLR up to ``max_lr`` (default ten times the base) over the first 30%
  of the steps and down to a ten-thousandth below its start (cosine annealing; momentum is
  not cycled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from .errors import GdvizError

NAMES = ("constant", "step", "exponential", "cosine", "warmup-cosine", "one-cycle")
#: the settings each schedule uses
SETTINGS = {"constant": (), "step": ("step_size", "gamma"), "exponential": ("gamma",),
            "cosine": ("min_lr",), "warmup-cosine": ("warmup", "min_lr"),
            "one-cycle": ("max_lr",)}
WARMUP_START = 0.01     # LinearLR's start_factor in warmup-cosine
ONE_CYCLE = {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4}


@dataclass(frozen=True)
class Schedule:
    """A schedule's name and its settings (those it does not use are ignored)."""

    name: str = "constant"
    warmup: int = 0
    step_size: int = 100
    gamma: float = 0.5
    min_lr: float = 0.0
    max_lr: float | None = None

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise GdvizError(f"unknown schedule '{str(self.name)[:40]}'; choose from "
                             f"{', '.join(NAMES)}")
        checks = [(isinstance(self.warmup, int) and not isinstance(self.warmup, bool)
                   and 0 <= self.warmup <= 10**9, "warmup must be a whole number of steps >= 0"),
                  (isinstance(self.step_size, int) and not isinstance(self.step_size, bool)
                   and 1 <= self.step_size <= 10**9, "step size must be a whole number >= 1"),
                  (_number(self.gamma) and 0 < self.gamma <= 10, "gamma must be between 0 and 10"),
                  (_number(self.min_lr) and 0 <= self.min_lr <= 100, "min lr must be 0 to 100"),
                  (self.max_lr is None or (_number(self.max_lr) and 0 < self.max_lr <= 100),
                   "max lr must be more than 0 and at most 100")]
        for ok, message in checks:
            if not ok:
                raise GdvizError(f"schedule {self.name}: {message}")

    def check_settings(self, given: set[str], flags: bool = False) -> None:
        """Settings given that this schedule does not use are a mistake worth naming."""
        unused = sorted(set(given) - set(SETTINGS[self.name]))
        if unused:
            def shown(k: str) -> str:
                return "--" + k.replace("_", "-") if flags else k
            users = [n for n in NAMES if unused[0] in SETTINGS[n]]
            raise GdvizError(f"{shown(unused[0])} does not apply to the {self.name} schedule; "
                             f"it is for {' and '.join(users)}"
                             + (f" (give --schedule {users[0]})" if flags else ""))

    @property
    def is_constant(self) -> bool:
        return self.name == "constant"

    def to_dict(self) -> dict[str, Any]:
        """Only what differs from the defaults, for sessions."""
        default = Schedule()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name == "name" or getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Schedule":
        if data is None:
            return cls()
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, Mapping):
            raise GdvizError("a schedule is written as {\"name\": \"cosine\", ...}")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise GdvizError(f"a schedule has no setting '{str(extra[0])[:40]}'; its settings are "
                             f"{', '.join(sorted(known))}")
        values = dict(data)
        for key in ("warmup", "step_size"):
            if isinstance(values.get(key), float) and float(values[key]).is_integer():
                values[key] = int(values[key])
        return cls(**values)

    def describe(self) -> str:
        return {"constant": "constant",
                "step": f"x{self.gamma:g} every {self.step_size} steps",
                "exponential": f"x{self.gamma:g} every step",
                "cosine": f"cosine down to {self.min_lr:g}",
                "warmup-cosine": f"{self.warmup} warm-up steps, then cosine to {self.min_lr:g}",
                "one-cycle": "one cycle" + (f" up to {self.max_lr:g}" if self.max_lr else "")}[self.name]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rates(schedule: Schedule, base_lr: np.ndarray | float, steps: np.ndarray | int,
          total: int) -> np.ndarray:
    """The rate at each of ``steps`` (vectorized over rows and steps alike) for a run of
    ``total`` steps whose base rate is ``base_lr``."""
    base = np.asarray(base_lr, dtype=np.float64)
    t = np.asarray(steps, dtype=np.float64)
    total = max(int(total), 1)
    name = schedule.name
    if name == "constant":
        return np.broadcast_to(base, np.broadcast(base, t).shape).astype(np.float64)
    if name == "step":
        return base * schedule.gamma ** np.floor(t / schedule.step_size)
    if name == "exponential":
        return base * schedule.gamma ** t
    if name == "cosine":
        return _cosine(base, schedule.min_lr, t, total)
    if name == "warmup-cosine":
        w = schedule.warmup
        if w <= 0:
            return _cosine(base, schedule.min_lr, t, total)
        # LinearLR: factor from WARMUP_START to 1 over w steps
        factor = WARMUP_START + (1.0 - WARMUP_START) * np.minimum(t, w) / w
        warm = base * factor
        after = _cosine(base, schedule.min_lr, t - w, max(total - w, 1))
        return np.where(t < w, warm, after)
    return _one_cycle(base, schedule.max_lr, t, total)


def _cosine(base: np.ndarray, eta_min: float, t: np.ndarray, t_max: int) -> np.ndarray:
    return eta_min + (base - eta_min) * (1.0 + np.cos(np.pi * t / t_max)) / 2.0


def _one_cycle(base: np.ndarray, max_lr: float | None, t: np.ndarray, total: int) -> np.ndarray:
    peak = base * 10.0 if max_lr is None else np.full_like(base, max_lr, dtype=np.float64)
    initial = peak / ONE_CYCLE["div_factor"]
    final = initial / ONE_CYCLE["final_div_factor"]
    up_end = float(ONE_CYCLE["pct_start"] * total) - 1.0
    down_end = float(total - 1)
    # torch's phases: annealing from initial to peak until up_end, then from peak to final
    pct_up = np.clip(t / max(up_end, 1e-12), 0.0, 1.0)
    pct_down = np.clip((t - up_end) / max(down_end - up_end, 1e-12), 0.0, 1.0)
    up = peak + (initial - peak) / 2.0 * (np.cos(np.pi * pct_up) + 1.0)
    down = final + (peak - final) / 2.0 * (np.cos(np.pi * pct_down) + 1.0)
    return np.where(t <= up_end, up, down)


def check_clip_norm(value: Any) -> float | None:
    """None, or a finite number above 0 (clip_grad_norm_'s max_norm)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise GdvizError(f"the gradient clip must be a number above 0, not {str(value)[:30]}")
    return float(value)

