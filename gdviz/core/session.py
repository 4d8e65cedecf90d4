"""Sessions: everything needed to rebuild a run, as versioned JSON.

One schema serves the bundled presets, ``gdviz run --session`` and the desktop app's
``.gdviz.json`` files::

    {"format": "gdviz-session", "version": 1,
     "name": "...", "description": "...",
     "function": "X + 1", "loss": "(3 - y)**2 / 2",
     "params": {"X": {"init": "rand(1)", "frozen": false}},
     "optimizer": {"name": "sgd", "lr": 0.001},
     "steps": 10000, "tol": null, "seed": 0, "device": "auto",
     "landscape": {"x": [-1, 3], "y": [-1, 3]},          (optional)
     "state": {"step": 250, "values": {"X": [1.2]},       (optional: where the run stands,
               "optimizer": {...}},                       with the optimizer's running state)
     "history": {"columns": [...], "rows": [[...], ...]}  (optional)}

Reading checks every field and names the one that is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import GdvizError, SessionError
from .history import History
from .optimizers import OPTIMIZERS, normalize_hypers
from .problem import DEFAULT_LOSS, ParamSpec, Problem

FORMAT = "gdviz-session"
VERSION = 1
SUFFIX = ".gdviz.json"
MAX_FILE_BYTES = 200 * 1024 * 1024


@dataclass
class Session:
    """The settings of a run, and optionally where it stands and its history."""

    function: str = "X + 1"
    loss: str = DEFAULT_LOSS
    params: dict[str, ParamSpec] = field(default_factory=dict)
    optimizer: str = "sgd"
    hypers: dict[str, Any] = field(default_factory=dict)
    steps: int = 1000
    tol: float | None = None
    seed: int = 0
    device: str = "auto"
    landscape: dict[str, list[float]] | None = None
    name: str = ""
    description: str = ""
    state: dict[str, Any] | None = None
    history: dict[str, Any] | None = None

    def with_changes(self, **changes: Any) -> "Session":
        return replace(self, **changes)

    def build_problem(self) -> Problem:
        return Problem(self.function, self.loss, self.params, seed=self.seed)

    def restore_history(self, history: History) -> None:
        """Fill ``history`` with the saved rows, if their columns still match."""
        if not self.history:
            return
        if self.history.get("columns") != history.columns:
            raise SessionError("the saved columns do not match the function's parameters",
                               "history.columns")
        rows = np.array([[np.nan if v is None else v for v in row]
                         for row in self.history.get("rows", [])], dtype=np.float64)
        if rows.size:
            p, g = history.n_params, history.n_grads
            history.extend(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2:2 + p],
                           rows[:, 2 + p:2 + p + g])

    # --- JSON ---------------------------------------------------------------------------

    def to_dict(self, include_history: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        data.update({
            "function": self.function,
            "loss": self.loss,
            "params": {n: {"init": s.init, "frozen": s.frozen} for n, s in self.params.items()},
            "optimizer": {"name": self.optimizer, **self.hypers},
            "steps": self.steps,
            "tol": self.tol,
            "seed": self.seed,
            "device": self.device,
        })
        if self.landscape:
            data["landscape"] = self.landscape
        if self.state:
            data["state"] = self.state
        if include_history and self.history:
            data["history"] = self.history
        return data

    def save(self, path: str | Path, include_history: bool = True) -> None:
        """Write atomically as JSON (NaN and infinity become null)."""
        text = json.dumps(_finite(self.to_dict(include_history)), indent=1)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Session":
        path = Path(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise SessionError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SessionError(f"{path.name} is not valid JSON (line {exc.lineno}, column "
                               f"{exc.colno}: {exc.msg})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any, preset: bool = False) -> "Session":
        """Validate a decoded JSON object; ``preset`` files may omit format and version."""
        if not isinstance(data, dict):
            raise SessionError("a session must be a JSON object")
        fmt = data.get("format", FORMAT if preset else None)
        if fmt != FORMAT:
            raise SessionError(f"expected \"{FORMAT}\", got {fmt!r}: this is not a gdviz session",
                               "format")
        version = data.get("version", VERSION if preset else None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise SessionError("missing or not a whole number", "version")
        if version > VERSION:
            raise SessionError(f"this file was written by a newer gdviz (version {version}); "
                               f"this gdviz reads version {VERSION}", "version")
        if version < 1:
            raise SessionError(f"unknown version {version}", "version")
        known = {"format", "version", "name", "description", "function", "loss", "params",
                 "optimizer", "steps", "tol", "seed", "device", "landscape", "state", "history"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SessionError("unknown field in a session", unknown[0])
        s = cls()
        s.name = _text(data, "name", "")
        s.description = _text(data, "description", "")
        s.function = _text(data, "function", None)
        s.loss = _text(data, "loss", DEFAULT_LOSS) or DEFAULT_LOSS
        s.params = _params(data.get("params", {}))
        s.optimizer, s.hypers = _optimizer(data.get("optimizer", {"name": "sgd"}))
        s.steps = _integer(data, "steps", 1000, minimum=0)
        s.seed = _integer(data, "seed", 0, minimum=0)
        tol = data.get("tol")
        if tol is not None and (not _is_number(tol) or tol < 0):
            raise SessionError("must be a number >= 0 or null", "tol")
        s.tol = None if tol is None else float(tol)
        s.device = _text(data, "device", "auto")
        if s.device not in ("auto", "cpu", "cuda") and not s.device.startswith("cuda:"):
            raise SessionError(f"unknown device {s.device!r}; use auto, cpu or cuda", "device")
        s.landscape = _landscape(data.get("landscape"))
        s.state = _state(data.get("state"))
        hist = data.get("history")
        if hist is not None and (not isinstance(hist, dict) or not isinstance(hist.get("columns"), list)
                                 or not isinstance(hist.get("rows"), list)):
            raise SessionError("must hold 'columns' and 'rows' lists", "history")
        s.history = hist
        return s


def _text(data: dict, key: str, default: str | None) -> str:
    if key not in data or data[key] is None:
        if default is None:
            raise SessionError("missing", key)
        return default
    value = data[key]
    if not isinstance(value, str):
        raise SessionError(f"must be text, got {type(value).__name__}", key)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(data: dict, key: str, default: int, minimum: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SessionError(f"must be a whole number >= {minimum}", key)
    return value


def _params(value: Any) -> dict[str, ParamSpec]:
    if not isinstance(value, dict):
        raise SessionError("must be an object mapping names to {init, frozen}", "params")
    out = {}
    for name, spec in value.items():
        where = f"params.{name}"
        if isinstance(spec, str):
            spec = {"init": spec}
        if not isinstance(spec, dict):
            raise SessionError("must be an object with 'init' and 'frozen'", where)
        init = spec.get("init", "rand(1)")
        frozen = spec.get("frozen", False)
        if not isinstance(init, str):
            raise SessionError("must be text such as \"rand(1)\"", where + ".init")
        if not isinstance(frozen, bool):
            raise SessionError("must be true or false", where + ".frozen")
        out[name] = ParamSpec(init, frozen)
    return out


def _optimizer(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise SessionError("must be an object such as {\"name\": \"sgd\", \"lr\": 0.01}", "optimizer")
    value = dict(value)
    name = value.pop("name", "sgd")
    if name not in OPTIMIZERS:
        raise SessionError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}",
                           "optimizer.name")
    try:
        normalize_hypers(name, value)
    except GdvizError as exc:
        raise SessionError(str(exc), "optimizer") from None
    return name, value


def _landscape(value: Any) -> dict[str, list[float]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SessionError("must be an object such as {\"x\": [-2, 2]}", "landscape")
    for axis, rng in value.items():
        if axis not in ("x", "y") or not (isinstance(rng, list) and len(rng) == 2
                                          and all(_is_number(v) for v in rng) and rng[0] < rng[1]):
            raise SessionError("each axis must be [low, high] with low < high", f"landscape.{axis}")
    return {k: [float(a), float(b)] for k, (a, b) in value.items()}


def _state(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("values"), dict):
        raise SessionError("must hold 'step' and 'values'", "state")
    step = value.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise SessionError("must be a whole number >= 0", "state.step")
    for name, v in value["values"].items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise SessionError("must be a number or a rectangular list of numbers",
                               f"state.values.{name}") from None
        if arr.dtype == object:
            raise SessionError("must be a number or a rectangular list of numbers",
                               f"state.values.{name}")
    optimizer = value.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, dict):
        raise SessionError("must be an object (the optimizer's running state)", "state.optimizer")
    out = {"step": step, "values": value["values"]}
    if optimizer:
        out["optimizer"] = optimizer
    return out


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
