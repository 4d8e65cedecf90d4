"""Sessions: everything needed to rebuild a set of runs, as versioned JSON.

One schema serves the bundled presets, ``gdviz run/race --session`` and the desktop app's
``.gdviz.json`` files (version 2; version 1 files, with one run at the top level, still
open)::

    {"format": "gdviz-session", "version": 2,
     "name": "...", "description": "...",
     "function": "X + 1", "loss": "(3 - y)**2 / 2",
     "params": {"X": {"init": "rand(1)", "frozen": false}},
     "steps": 10000, "tol": null, "seed": 0, "device": "auto",
     "landscape": {"x": [-1, 3], "y": [-1, 3]},                     (optional)
     "runs": [{"optimizer": {"name": "sgd", "lr": 0.001},
               "label": "", "color": "#0072B2", "visible": true,
               "start": {"X": [0.5]},                              (optional: own start)
               "state": {"step": 250, "values": {"X": [1.2]},      (optional: where it is)
                         "status": "paused", "message": "",
                         "optimizer": {"step": 250, "momentum_buffer": {"X": [0.1]}}},
               "history": {"columns": [...], "rows": [[...], ...]}}], (optional)
     "selected": 0}

Reading is the validation boundary for files: every field is checked, with a message that
names it and the limit it broke, before anything is built. Non-finite numbers are written
as "nan", "inf" and "-inf" (:mod:`.jsonsafe`), so a file reads back with the meaning it was
written with. :func:`apply_overrides` is the one place where the command line's flags and
the window's edits change a session, so the two never disagree.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import jsonsafe
from .atomic import atomic_write
from .errors import GdvizError, SessionError
from .history import ColumnLayout
from .limits import MAX_ELEMENTS, MAX_HISTORY_VALUES, MAX_RUNS, MAX_SEED, MAX_STEPS, MAX_TEXT
from .optimizers import OPTIMIZERS, normalize_hypers
from .params import DEFAULT_LOSS, ParamSpec
from .records import RowState
from .schedules import Schedule, check_clip_norm
from .status import Status

if TYPE_CHECKING:
    from .data import Dataset
    from .model import RunSet
    from .problem import Problem

FORMAT = "gdviz-session"
VERSION = 2
SUFFIX = ".gdviz.json"
MAX_FILE_BYTES = 200 * 1024 * 1024
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_INDEX = re.compile(r"[0-9]{1,6}")  # a parameter's number in a version 1 optimizer state
_MAX_DEPTH = 32  # lists nested deeper than this are not arrays gdviz wrote
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


@dataclass
class RunRecord:
    """One run in a session: its settings and, optionally, where it stands."""

    optimizer: str = "sgd"
    hypers: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    color: str = ""
    visible: bool = True
    start: dict[str, np.ndarray] | None = None
    step: int = 0
    values: dict[str, np.ndarray] | None = None
    status: Status = Status.IDLE
    message: str = ""
    optimizer_state: RowState | None = None
    history: np.ndarray | None = None      # rows of (step, loss, params..., grads...)
    history_columns: list[str] | None = None
    schedule: Schedule = field(default_factory=Schedule)
    clip_norm: float | None = None

    def fresh(self) -> "RunRecord":
        """The same settings, back at the start."""
        return RunRecord(self.optimizer, dict(self.hypers), self.label, self.color,
                         self.visible, self.start, schedule=self.schedule,
                         clip_norm=self.clip_norm)


@dataclass(frozen=True)
class DataSource:
    """Where a session's data comes from: a CSV file, a bundled dataset or columns written
    into the session itself (small data, when asked for)."""

    path: str | None = None          # absolute once read (a relative path is the file's)
    dataset: str | None = None
    columns: dict[str, list[float]] | None = None

    def load(self) -> "Dataset":
        from .data import from_columns, load_bundled, read_csv

        if self.dataset is not None:
            return load_bundled(self.dataset)
        if self.columns is not None:
            return from_columns(self.columns)
        return read_csv(self.path or "")

    def describe(self) -> str:
        return self.dataset or (Path(self.path).name if self.path else "embedded data")


@dataclass
class Session:
    """The problem, the limits shared by its runs, and the runs."""

    function: str = "X + 1"
    loss: str = DEFAULT_LOSS
    params: dict[str, ParamSpec] = field(default_factory=dict)
    steps: int = 1000
    tol: float | None = None
    seed: int = 0
    device: str = "auto"
    landscape: dict[str, list[float]] | None = None
    name: str = ""
    description: str = ""
    data: DataSource | None = None
    batch_size: int | None = None    # rows per mini-batch; None: the full data every step
    runs: list[RunRecord] = field(default_factory=lambda: [RunRecord()])
    selected: int = 0
    #: what was not right in the file but could be recovered (printed, shown in the window)
    warnings: list[str] = field(default_factory=list)
    #: read from a version 1 file or a preset (one run at the top level)
    legacy: bool = False

    def with_changes(self, **changes: Any) -> "Session":
        return replace(self, **changes)

    def build_problem(self) -> "Problem":
        # torch comes in here, not when sessions are read: the window paints before it loads
        from .problem import Problem

        return Problem(self.function, self.loss, self.params, seed=self.seed,
                       data=self.load_data(), batch_size=self.batch_size)

    def load_data(self) -> "Dataset | None":
        """The session's data, read now (DataError says what is wrong with it)."""
        return None if self.data is None else self.data.load()

    @property
    def run(self) -> RunRecord:
        """The selected run (the one `gdviz run` trains)."""
        return self.runs[min(self.selected, len(self.runs) - 1)]

    # --- JSON ---------------------------------------------------------------------------

    def to_dict(self, include_history: bool = True, relative_to: Path | None = None,
                embed_data: bool = False) -> dict[str, Any]:
        """As JSON. A data file's path is written relative to ``relative_to`` (the folder
        the session is saved in) where it can be; ``embed_data`` writes the columns
        themselves (small data only, see MAX_EMBEDDED)."""
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        data.update({
            "function": self.function,
            "loss": self.loss,
            "params": {n: {"init": s.init, "frozen": s.frozen} for n, s in self.params.items()},
            "steps": self.steps,
            "tol": self.tol,
            "seed": self.seed,
            "device": self.device,
        })
        if self.landscape:
            data["landscape"] = self.landscape
        if self.data is not None:
            data["data"] = _data_dict(self.data, relative_to, embed_data)
        if self.batch_size is not None:
            data["batch_size"] = self.batch_size
        data["runs"] = [_run_dict(r, include_history) for r in self.runs]
        data["selected"] = self.selected
        return jsonsafe.plain(data, nonfinite="text")

    def save(self, path: str | Path, include_history: bool = True,
             embed_data: bool = False) -> None:
        """Write atomically as JSON."""
        folder = Path(path).resolve().parent
        text = json.dumps(self.to_dict(include_history, folder, embed_data), indent=1)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Session":
        path = Path(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise SessionError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB")
            if not path.is_file():
                raise SessionError(f"{path} is not a file")
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.from_dict(parse_json(text, path.name), folder=path.resolve().parent)

    @classmethod
    def from_dict(cls, data: Any, preset: bool = False, folder: Path | None = None) -> "Session":
        """Validate a decoded JSON object; ``preset`` files may omit format and version.
        A relative data path is taken from ``folder`` (the session file's)."""
        return _Reader(preset, folder).session(data)


def parse_json(text: str, name: str = "the file") -> Any:
    """JSON with the limits a hostile file needs: nesting depth and the digits of a number."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{name} is not valid JSON (line {exc.lineno}, column "
                           f"{exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise SessionError(f"{name} is nested too deeply to be a session") from None
    except ValueError as exc:  # a number with thousands of digits
        raise SessionError(f"{name} holds a number that is too long: {str(exc)[:80]}") from None


def _parse_int(text: str) -> int | float:
    # Python refuses to read integers of more than 4300 digits. A whole number beyond a
    # double's range is read as the infinity it rounds to, as 1e400 is: the same number
    # means the same whether it is written with an exponent or with all its digits.
    digits = text.lstrip("-")
    if len(digits) > 400:
        return -math.inf if text.startswith("-") else math.inf
    return jsonsafe.huge_as_inf(int(text))


#: Numbers a session embeds at most (``embed_data``); larger data is referred to by path.
MAX_EMBEDDED = 1_000_000


def _data_dict(source: DataSource, folder: Path | None, embed: bool) -> dict[str, Any]:
    if source.dataset is not None:
        return {"dataset": source.dataset}
    if source.columns is not None or embed:
        columns = source.columns
        if columns is None:
            loaded = source.load()
            if loaded.rows * len(loaded.columns) > MAX_EMBEDDED:
                raise GdvizError(f"the data has {loaded.rows * len(loaded.columns):,} numbers; "
                                 f"a session embeds at most {MAX_EMBEDDED:,} (it keeps the "
                                 "file's path instead when not asked to embed)")
            columns = {n: v.tolist() for n, v in loaded.columns.items()}
        return {"columns": columns}
    path = Path(source.path or "")
    if folder is not None and path.is_absolute():
        try:
            return {"path": os.path.relpath(path, folder)}
        except ValueError:  # another drive (Windows)
            pass
    return {"path": str(path)}


def _run_dict(run: RunRecord, include_history: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"optimizer": {"name": run.optimizer, **run.hypers}}
    if not run.schedule.is_constant:
        data["schedule"] = run.schedule.to_dict()
    if run.clip_norm is not None:
        data["clip_norm"] = run.clip_norm
    if run.label:
        data["label"] = run.label
    if run.color:
        data["color"] = run.color
    if not run.visible:
        data["visible"] = False
    if run.start is not None:
        data["start"] = {n: np.asarray(v).tolist() for n, v in run.start.items()}
    if run.values is not None:
        state: dict[str, Any] = {"step": run.step,
                                 "values": {n: np.asarray(v).tolist() for n, v in run.values.items()},
                                 "status": run.status.value}
        if run.message:
            state["message"] = run.message
        if run.optimizer_state is not None:
            state["optimizer"] = {"step": run.optimizer_state.step,
                                  **{k: {n: np.asarray(a).tolist() for n, a in per.items()}
                                     for k, per in run.optimizer_state.tensors.items()}}
        data["state"] = state
    if include_history and run.history is not None and len(run.history):
        data["history"] = {"columns": list(run.history_columns or []),
                           "rows": [[int(r[0]), *r[1:].tolist()] for r in run.history]}
    return data


# --- reading, field by field --------------------------------------------------------------

_TOP = {"format", "version", "name", "description", "function", "loss", "params", "optimizer",
        "steps", "tol", "seed", "device", "landscape", "state", "history", "runs", "selected",
        "schedule", "clip_norm", "data", "batch_size"}
_RUN = {"optimizer", "label", "color", "visible", "start", "state", "history", "schedule",
        "clip_norm"}
#: what a version 1 file or a preset holds at the top level for its one run
_LEGACY_RUN = ("optimizer", "state", "history", "schedule", "clip_norm")


class _Reader:
    def __init__(self, preset: bool, folder: Path | None = None):
        self.preset = preset
        self.folder = folder
        self.warnings: list[str] = []

    def session(self, data: Any) -> Session:
        if not isinstance(data, dict):
            raise SessionError("a session must be a JSON object")
        fmt = data.get("format", FORMAT if self.preset else None)
        if fmt != FORMAT:
            raise SessionError(f"expected \"{FORMAT}\", got {_short(fmt)}: this is not a gdviz "
                               "session", "format")
        version = data.get("version", 1 if self.preset else None)
        if not _is_int(version):
            raise SessionError("missing or not a whole number", "version")
        if version > VERSION:
            raise SessionError(f"this file was written by a newer gdviz (version "
                               f"{_short(version, 20)}); this gdviz reads versions 1 to "
                               f"{VERSION}", "version")
        if version < 1:
            raise SessionError(f"unknown version {_short(version, 20)}", "version")
        unknown = sorted(set(data) - _TOP)
        if unknown:
            raise SessionError("unknown field in a session", _key(unknown[0]))
        s = Session()
        s.name = text_field(data.get("name"), "name", "", 200)
        s.description = text_field(data.get("description"), "description", "", 2000)
        s.function = text_field(data.get("function"), "function", None, MAX_TEXT)
        s.loss = text_field(data.get("loss"), "loss", DEFAULT_LOSS, MAX_TEXT) or DEFAULT_LOSS
        s.params = self.params(data.get("params", {}))
        s.steps = check_steps(data.get("steps", 1000), "steps")
        s.seed = check_seed(data.get("seed", 0), "seed")
        s.tol = check_tol(data.get("tol"), "tol")
        s.device = check_device(text_field(data.get("device"), "device", "auto", 20), "device")
        s.landscape = self.landscape(data.get("landscape"))
        s.data = self.data_source(data.get("data"))
        s.batch_size = self.batch_size(data.get("batch_size"), s.data)
        if "runs" in data:
            for old in _LEGACY_RUN:
                if old in data:
                    raise SessionError("belongs inside a run when the session has 'runs'", old)
            runs = data["runs"]
            if not isinstance(runs, list) or not runs:
                raise SessionError("must be a non-empty list of runs", "runs")
            if len(runs) > MAX_RUNS:
                raise SessionError(f"{len(runs)} runs; the limit is {MAX_RUNS}", "runs")
            s.runs = [self.run(r, f"runs[{i}]") for i, r in enumerate(runs)]
        else:  # version 1 and presets: one run at the top level
            s.runs = [self.run({k: data[k] for k in _LEGACY_RUN if k in data},
                               "", legacy=True)]
        selected = data.get("selected", 0)
        if not _is_int(selected) or not 0 <= selected < len(s.runs):
            raise SessionError(f"must be the index of a run (0 to {len(s.runs) - 1})", "selected")
        s.selected = selected
        s.warnings = self.warnings
        s.legacy = "runs" not in data
        return s

    def data_source(self, value: Any) -> DataSource | None:
        if value is None:
            return None
        if not isinstance(value, dict) or len(value) != 1 or \
                next(iter(value)) not in ("path", "dataset", "columns"):
            raise SessionError("must be {\"path\": \"points.csv\"}, {\"dataset\": \"NAME\"} or "
                               "{\"columns\": {\"x\": [...], ...}}", "data")
        (key, inner), = value.items()
        if key == "columns":
            from .data import DataError, from_columns
            if not isinstance(inner, dict):
                raise SessionError("must be an object of columns", "data.columns")
            arrays = {}
            for name, column in inner.items():
                arrays[name] = array_field(column, f"data.columns.{_key(name)}")
                if arrays[name].ndim != 1:
                    raise SessionError("must be a list of numbers", f"data.columns.{_key(name)}")
            try:
                from_columns(arrays)
            except DataError as exc:
                raise SessionError(str(exc), "data.columns") from None
            return DataSource(columns={n: a.tolist() for n, a in arrays.items()})
        text = text_field(inner, f"data.{key}", None, 4096)
        if key == "dataset":
            return DataSource(dataset=text)
        path = Path(text)
        if not path.is_absolute() and self.folder is not None:
            path = self.folder / path
        return DataSource(path=str(path))

    def batch_size(self, value: Any, data: DataSource | None) -> int | None:
        if value is None:
            return None
        if not _is_int(value) or not 1 <= value <= 10**9:
            raise SessionError("must be a whole number of rows, at least 1", "batch_size")
        if data is None:
            raise SessionError("a batch size needs data (add \"data\")", "batch_size")
        return int(value)

    def params(self, value: Any) -> dict[str, ParamSpec]:
        if not isinstance(value, dict):
            raise SessionError("must be an object mapping names to {init, frozen}", "params")
        if len(value) > 1000:
            raise SessionError("more than 1000 parameters", "params")
        out = {}
        for name, spec in value.items():
            if not _NAME.match(name):
                raise SessionError("a parameter name must be a name such as x or w1",
                                   f"params.{_key(name, 40)}")
            where = f"params.{name}"
            if isinstance(spec, str):
                spec = {"init": spec}
            if not isinstance(spec, dict) or set(spec) - {"init", "frozen"}:
                raise SessionError("must be an object with 'init' and 'frozen'", where)
            init = text_field(spec.get("init"), where + ".init", "rand(1)", 1000)
            frozen = spec.get("frozen", False)
            if not isinstance(frozen, bool):
                raise SessionError("must be true or false", where + ".frozen")
            out[name] = ParamSpec(init, frozen)
        return out

    def landscape(self, value: Any) -> dict[str, list[float]] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise SessionError("must be an object such as {\"x\": [-2, 2]}", "landscape")
        out = {}
        for axis, rng in value.items():
            where = f"landscape.{_key(axis, 20)}"
            if axis not in ("x", "y") or not isinstance(rng, list) or len(rng) != 2:
                raise SessionError("each axis must be [low, high] with low < high", where)
            lo, hi = (_finite_number(v) for v in rng)
            if lo is None or hi is None or not lo < hi or max(abs(lo), abs(hi)) > 1e30:
                raise SessionError("each axis must be [low, high]: finite, low < high, "
                                   "within ±1e30", where)
            out[axis] = [lo, hi]
        return out

    def run(self, data: Any, where: str, legacy: bool = False) -> RunRecord:
        prefix = f"{where}." if where else ""
        if not isinstance(data, dict):
            raise SessionError("must be an object (a run)", where)
        unknown = sorted(set(data) - _RUN)
        if unknown:
            raise SessionError("unknown field in a run", prefix + _key(unknown[0]))
        r = RunRecord()
        r.optimizer, r.hypers = self.optimizer(data.get("optimizer", {"name": "sgd"}),
                                               prefix + "optimizer")
        r.schedule = self.schedule(data.get("schedule"), prefix + "schedule")
        r.clip_norm = self.clip_norm(data.get("clip_norm"), prefix + "clip_norm")
        r.label = text_field(data.get("label"), prefix + "label", "", 200)
        r.color = text_field(data.get("color"), prefix + "color", "", 20)
        if r.color and not _COLOR.match(r.color):
            raise SessionError("must be a colour such as \"#1f77b4\"", prefix + "color")
        visible = data.get("visible", True)
        if not isinstance(visible, bool):
            raise SessionError("must be true or false", prefix + "visible")
        r.visible = visible
        if data.get("start") is not None:
            r.start = self.values(data["start"], prefix + "start")
        state = data.get("state")
        if state is not None:
            self.state(state, r, prefix + "state", legacy)
        history = data.get("history")
        if history is not None:
            r.history_columns, r.history = self.history(history, prefix + "history")
            # Training goes on from the run's step; rows past it would come back out of order.
            if len(r.history) and r.history[-1, 0] > r.step:
                raise SessionError(f"the history goes up to step {int(r.history[-1, 0])}, past "
                                   f"the run's step ({r.step})", prefix + "history.rows")
        return r

    def optimizer(self, value: Any, where: str) -> tuple[str, dict[str, Any]]:
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise SessionError("must be an object such as {\"name\": \"sgd\", \"lr\": 0.01}", where)
        # a whole number beyond a double's range is the infinity it rounds to (see parse_json)
        value = {k: jsonsafe.huge_as_inf(v) for k, v in value.items()}
        name = value.pop("name", "sgd")
        if not isinstance(name, str) or name not in OPTIMIZERS:
            raise SessionError(f"unknown optimizer {_short(name)}; choose from "
                               f"{', '.join(OPTIMIZERS)}", where + ".name")
        try:
            return name, normalize_hypers(name, value)
        except GdvizError as exc:
            raise SessionError(str(exc), where) from None

    def schedule(self, value: Any, where: str) -> Schedule:
        value = {k: jsonsafe.huge_as_inf(v) for k, v in value.items()} \
            if isinstance(value, dict) else value
        try:
            return Schedule.from_dict(value)
        except (GdvizError, TypeError) as exc:
            raise SessionError(str(exc), where) from None

    def clip_norm(self, value: Any, where: str) -> float | None:
        try:
            return check_clip_norm(jsonsafe.huge_as_inf(value))
        except GdvizError as exc:
            raise SessionError(str(exc), where) from None

    def values(self, value: Any, where: str) -> dict[str, np.ndarray]:
        if not isinstance(value, dict):
            raise SessionError("must be an object mapping parameter names to values", where)
        return {name: array_field(v, f"{where}.{_key(name, 40)}") for name, v in value.items()}

    def state(self, value: Any, r: RunRecord, where: str, legacy: bool) -> None:
        if not isinstance(value, dict) or not isinstance(value.get("values"), dict):
            raise SessionError("must hold 'step' and 'values'", where)
        unknown = sorted(set(value) - {"step", "values", "status", "message", "optimizer"})
        if unknown:
            raise SessionError("unknown field", f"{where}.{_key(unknown[0], 40)}")
        r.step = check_steps(value.get("step", 0), where + ".step")
        r.values = self.values(value["values"], where + ".values")
        status = value.get("status", "paused" if r.step else "idle")
        try:
            r.status = Status(status) if isinstance(status, str) else None
        except ValueError:
            r.status = None
        if r.status is None or r.status == Status.RUNNING:
            r.status = Status.PAUSED if r.step else Status.IDLE
        r.message = text_field(value.get("message"), where + ".message", "", 2000)
        optimizer = value.get("optimizer")
        if optimizer is not None:
            r.optimizer_state = (self.torch_state(optimizer, where + ".optimizer", r.step)
                                 if legacy and _looks_like_torch_state(optimizer)
                                 else self.optimizer_state(optimizer, where + ".optimizer"))
        if r.optimizer_state is not None and r.optimizer_state.step > r.step:
            # An optimizer cannot have made more updates than its run took steps (and its
            # count would pass the step limit); the run goes on with a fresh state.
            self.warnings.append(f"{where}.optimizer: its step ({r.optimizer_state.step}) is "
                                 f"past the run's ({r.step}); the run goes on from its saved "
                                 "point with a fresh optimizer state")
            r.optimizer_state = None

    def optimizer_state(self, value: Any, where: str) -> RowState | None:
        if not isinstance(value, dict):
            raise SessionError("must be an object (the optimizer's running state)", where)
        if not value:
            return None
        step = value.get("step", 0)
        step = check_steps(step, where + ".step")
        tensors: dict[str, dict[str, np.ndarray]] = {}
        for key, per in value.items():
            if key == "step":
                continue
            if not _NAME.match(key) or not isinstance(per, dict):
                raise SessionError("must map parameter names to arrays", f"{where}.{_key(key, 40)}")
            tensors[key] = {n: array_field(a, f"{where}.{key}.{_key(n, 40)}") for n, a in per.items()}
        return RowState(step, tensors)

    def torch_state(self, value: dict, where: str, step: int) -> RowState | None:
        """Version 1 stored torch's own state_dict()['state']: {"0": {"exp_avg": {"tensor":
        [...]}, "step": {"tensor": 12.0}}} per trainable parameter in order. The names are
        filled in when the run is built (see :func:`_name_legacy_state`)."""
        tensors: dict[str, dict[str, np.ndarray]] = {}
        count = None
        for index, entry in value.items():
            if not isinstance(entry, dict) or not _INDEX.fullmatch(str(index)):
                raise SessionError("must map parameter numbers to their state", where)
            for key, item in entry.items():
                if key == "step":
                    got = item.get("tensor") if isinstance(item, dict) else item
                    number = _finite_number(got)
                    if number is None or number < 0 or number > MAX_STEPS:
                        raise SessionError(f"must be a whole number from 0 to {MAX_STEPS}",
                                           f"{where}.{index}.step")
                    count = int(number)
                    continue
                data = item.get("tensor") if isinstance(item, dict) else item
                tensors.setdefault(key, {})[f"#{int(index)}"] = array_field(
                    data, f"{where}.{index}.{_key(key, 40)}")
        if not tensors:
            return None
        return RowState(step if count is None else count, tensors)

    def history(self, value: Any, where: str) -> tuple[list[str], np.ndarray]:
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) \
                or not isinstance(value.get("rows"), list):
            raise SessionError("must hold 'columns' and 'rows' lists", where)
        columns = value["columns"]
        if not all(isinstance(c, str) and len(c) < 300 for c in columns) or len(columns) < 2:
            raise SessionError("must be a list of column names (step, loss, ...)", where + ".columns")
        rows = value["rows"]
        if len(rows) * len(columns) > MAX_HISTORY_VALUES:
            raise SessionError(f"holds more than {MAX_HISTORY_VALUES:,} numbers", where + ".rows")
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            bad = next(i for i, row in enumerate(rows)
                       if not isinstance(row, list) or len(row) != len(columns))
            raise SessionError(f"every row must be a list of {len(columns)} numbers (one per "
                               "column)", f"{where}.rows[{bad}]")
        table = array_field(rows, where + ".rows", max_elements=MAX_HISTORY_VALUES, allow_nan=True) \
            if rows else np.zeros((0, len(columns)))
        table = table.reshape(len(rows), len(columns))
        steps = table[:, 0]
        # A step may repeat: a run stopped by the tolerance and then continued records the
        # point it rested on again (gdviz writes such files, so it must read them).
        if len(steps) and (not np.isfinite(steps).all() or (steps < 0).any()
                           or (steps != np.round(steps)).any() or (np.diff(steps) < 0).any()
                           or steps.max() > MAX_STEPS):
            raise SessionError("the step column must hold whole numbers >= 0 in increasing "
                               "order", where + ".rows")
        return list(columns), table


# --- field checks shared by files and command-line flags -----------------------------------

def check_steps(value: Any, where: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_STEPS:
        raise SessionError(f"must be a whole number from 0 to {MAX_STEPS:,}", where)
    return int(value)


def check_seed(value: Any, where: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise SessionError("must be a whole number from 0 to 2**63 - 1", where)
    return int(value)


def check_tol(value: Any, where: str) -> float | None:
    """None (no tolerance) or a number >= 0; "inf" is allowed and means what it says."""
    if value is None:
        return None
    number = jsonsafe.number(value)
    if number is None or not number >= 0:
        raise SessionError("must be a number >= 0, or null for none", where)
    return number


def check_device(value: str, where: str) -> str:
    value = value.strip().lower()
    if value not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d{1,2}", value):
        raise SessionError(f"unknown device {_short(value)}; use auto, cpu or cuda", where)
    return value


def text_field(value: Any, where: str, default: str | None, limit: int) -> str:
    if value is None:
        if default is None:
            raise SessionError("missing", where)
        return default
    if not isinstance(value, str):
        raise SessionError(f"must be text, got {type(value).__name__}", where)
    if len(value) > limit:
        raise SessionError(f"is {len(value):,} characters long; the limit is {limit:,}", where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SessionError("holds a character that is not valid text (a lone surrogate)",
                           where) from None
    return value


def array_field(value: Any, where: str, max_elements: int = MAX_ELEMENTS,
                allow_nan: bool = True) -> np.ndarray:
    """A number or a rectangular nested list of numbers (non-finite as null or "inf")."""
    if isinstance(value, (bool, dict, str)) and not (isinstance(value, str) and
                                                     jsonsafe.number(value) is not None):
        raise SessionError("must be a number or a rectangular list of numbers", where)
    if isinstance(value, str):
        return np.asarray(jsonsafe.number(value))
    if isinstance(value, list):
        count = _count_leaves(value, max_elements)
        if count < 0:
            raise SessionError(f"is nested too deeply (more than {_MAX_DEPTH} levels)", where)
        if count > max_elements:
            raise SessionError(f"has more than {max_elements:,} numbers", where)
    try:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except OverflowError:  # whole numbers beyond a double: infinity, as in parse_json
            arr = np.asarray(_huge_as_inf(value), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SessionError("must be a number or a rectangular list of numbers", where) from None
    if arr.ndim > 8:
        raise SessionError("has more than 8 dimensions", where)
    if _has_bool(value):
        raise SessionError("must hold numbers, not true/false", where)
    return arr


def _huge_as_inf(value: Any) -> Any:
    # nested at most _MAX_DEPTH deep (checked before), so recursion is safe
    if isinstance(value, list):
        return [_huge_as_inf(v) for v in value]
    return jsonsafe.huge_as_inf(value)


def _count_leaves(value: list, cap: int) -> int:
    """How many numbers a nested list holds, stopping once past ``cap``; -1 when it is
    nested more than ``_MAX_DEPTH`` deep (iterative: a list nested thousands deep must not
    exhaust the stack)."""
    count, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return -1
        if isinstance(item, list):
            stack.extend((x, depth + 1) for x in item)
        else:
            count += 1
            if count > cap:
                return count
    return count


def _has_bool(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


def _looks_like_torch_state(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(_INDEX.fullmatch(str(k)) for k in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> float | None:
    number = jsonsafe.number(value)
    return number if number is not None and math.isfinite(number) else None


def _key(value: Any, limit: int = 60) -> str:
    """A field name as it appears in a message's path: as written, shortened."""
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _short(value: Any, limit: int = 40) -> str:
    """A value as it appears in a message: its repr, shortened (and bounded in time: a
    hostile file's list of millions or int of thousands of digits is not written out)."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int of more than 4,300 digits
        text = "a number of thousands of digits"
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- sessions and run sets ------------------------------------------------------------------

def check_run_against(record: RunRecord, layout: ColumnLayout, where: str) -> str | None:
    """Shapes of the saved values, start and optimizer state against the problem. An
    optimizer state that does not fit is dropped, and the reason returned as a warning (the
    run goes on from its saved point with a fresh state); values of the wrong shape are an
    error."""
    from .updates import fresh_state_fits

    for field_name, values in (("start", record.start), ("state.values", record.values)):
        if values is None:
            continue
        for name, arr in values.items():
            if name not in layout.shapes:
                raise SessionError(f"{name} is not a parameter of the function",
                                   f"{where}{field_name}.{name}")
            shape = layout.shapes[name]
            if arr.size != math.prod(shape):
                raise SessionError(f"has {arr.size} elements, but {name} has shape {shape}",
                                   f"{where}{field_name}.{name}")
            values[name] = arr.reshape(shape)
    if record.values is not None:
        missing = [n for n in layout.shapes if n not in record.values]
        if missing:
            raise SessionError(f"has no value for {missing[0]}", f"{where}state.values")
    state = record.optimizer_state
    if state is not None:
        trainable = {n: layout.shapes[n] for n in layout.trainable}
        _name_legacy_state(state, list(trainable))
        why = fresh_state_fits(record.optimizer, record.hypers, state, trainable)
        if why:
            record.optimizer_state = None
            return why
    return None


def _name_legacy_state(state: RowState, trainable: list[str]) -> None:
    for key, per in state.tensors.items():
        if all(n.startswith("#") for n in per):
            state.tensors[key] = {trainable[int(n[1:])] if int(n[1:]) < len(trainable) else n: a
                                  for n, a in per.items()}


def apply_overrides(session: Session, *, function: str | None = None, loss: str | None = None,
                    params: Mapping[str, ParamSpec] | None = None, seed: int | None = None,
                    device: str | None = None, steps: int | None = None,
                    tol: float | None | str = "keep", optimizer: str | None = None,
                    hypers: Mapping[str, Any] | None = None, run_index: int | None = None,
                    landscape: dict | None | str = "keep", schedule: Schedule | None = None,
                    clip_norm: float | None | str = "keep", data: DataSource | None | str = "keep",
                    batch_size: int | None | str = "keep") -> Session:
    """A new session with these changes, applied the same way for the command line and the
    window: a new function, loss, initial values or seed restarts every run; a new optimizer
    keeps a run's point and starts its optimizer state fresh (a state saved for momentum
    means nothing to Adam); hyperparameters of another optimizer are dropped."""
    s = replace(session, runs=[replace(r, hypers=dict(r.hypers)) for r in session.runs],
                params=dict(session.params), warnings=list(session.warnings))
    restart = False
    if function is not None and function != s.function:
        s.function, restart = function, True
        if landscape == "keep":
            s.landscape = None
    if loss is not None and loss != s.loss:
        s.loss, restart = loss, True
    if params is not None and dict(params) != s.params:
        s.params, restart = dict(params), True
    if seed is not None and seed != s.seed:
        s.seed, restart = check_seed(seed, "seed"), True
    if data != "keep" and data != s.data:
        s.data, restart = data, True  # type: ignore[assignment]
        if landscape == "keep":
            s.landscape = None
    if batch_size != "keep" and batch_size != s.batch_size:
        s.batch_size, restart = batch_size, True  # type: ignore[assignment]
    if device is not None:
        s.device = check_device(device, "device")
    if steps is not None:
        s.steps = check_steps(steps, "steps")
    if tol != "keep":
        s.tol = check_tol(tol, "tol")
    if landscape != "keep":
        s.landscape = landscape  # type: ignore[assignment]
    if restart:
        s.runs = [r.fresh() for r in s.runs]
        for r in s.runs:  # a start chosen for a parameter the function has no more, or whose
            if r.start:   # initial value changed, is dropped: the run starts as the others do
                r.start = {n: v for n, v in r.start.items()
                           if n in s.params and s.params[n] == session.params.get(n)} or None
    targets = range(len(s.runs)) if run_index is None else [run_index]
    for i in targets:
        r = s.runs[i]
        if optimizer is not None and optimizer != r.optimizer:
            if optimizer not in OPTIMIZERS:
                raise SessionError(f"unknown optimizer {_short(optimizer)}; choose from "
                                   f"{', '.join(OPTIMIZERS)}", "optimizer")
            names = {h.name for h in OPTIMIZERS[optimizer].hypers}
            kept = {k: v for k, v in r.hypers.items() if k in names}
            r.optimizer, r.hypers, r.optimizer_state = optimizer, normalize_hypers(optimizer, kept), None
        if hypers:
            r.hypers = normalize_hypers(r.optimizer, {**r.hypers, **hypers})
        if schedule is not None:
            r.schedule = schedule
        if clip_norm != "keep":
            r.clip_norm = check_clip_norm(clip_norm)
    return s


def build_runset(session: Session, layout: ColumnLayout, initial: np.ndarray) -> "RunSet":
    """The model for a session: its runs, each where the file says it stands. Raises
    SessionError naming the field when a saved value does not fit the problem; adds to
    ``session.warnings`` what it recovered from."""
    from .model import RunSet, RunSettings

    runset = RunSet(layout, initial, session.steps, session.tol)
    for i, record in enumerate(session.runs):
        where = "" if session.legacy else f"runs[{i}]."
        why = check_run_against(record, layout, where)
        if why:
            session.warnings.append(f"{where}state.optimizer: {why}; the run goes on from its "
                                    "saved point with a fresh optimizer state")
        start = None if record.start is None else _flat(layout, record.start, initial)
        run = runset.add(RunSettings(record.optimizer, dict(record.hypers), record.label,
                                     record.color, record.visible, start, record.schedule,
                                     record.clip_norm), announce=False)
        if record.values is not None:
            run.values = _flat(layout, record.values, initial)
            run.step, run.status, run.message = record.step, record.status, record.message
            run.optimizer_state = record.optimizer_state
        if record.history is not None:
            if record.history_columns != run.history.columns:
                raise SessionError("the saved columns do not match the function's parameters",
                                   f"{where}history.columns")
            table = record.history
            p, g = run.history.n_params, run.history.n_grads
            run.history.extend(table[:, 0].astype(np.int64), table[:, 1], table[:, 2:2 + p],
                               table[:, 2 + p:2 + p + g])
    runset.selected_id = runset.runs[session.selected].id
    return runset


def session_from_runset(base: Session, runset: "RunSet", include_history: bool = True) -> Session:
    """``base``'s problem with the runs as they stand in ``runset``."""
    layout = runset.layout
    runs = []
    for run in runset:
        st = run.settings
        record = RunRecord(st.optimizer, dict(st.hypers), st.label, st.color, st.visible,
                           None if st.start is None else layout.unflatten(np.asarray(st.start)),
                           schedule=st.schedule, clip_norm=st.clip_norm)
        if run.step or run.status != Status.IDLE:
            record.step, record.values = run.step, layout.unflatten(run.values)
            record.status = Status.PAUSED if run.status == Status.RUNNING else run.status
            record.message, record.optimizer_state = run.message, run.optimizer_state
        if include_history and len(run.history):
            record.history_columns, record.history = run.history.columns, run.history.table()
        runs.append(record)
    selected = next((i for i, r in enumerate(runset.runs) if r.id == runset.selected_id), 0)
    return replace(base, steps=runset.steps, tol=runset.tol, runs=runs, selected=selected,
                   warnings=[], legacy=False, params=dict(base.params))


def _flat(layout: ColumnLayout, values: Mapping[str, np.ndarray], fallback: np.ndarray) -> np.ndarray:
    out = np.asarray(fallback, dtype=np.float64).copy()
    for name, sl in layout.param_slices.items():
        if name in values:
            out[sl] = np.asarray(values[name], dtype=np.float64).reshape(-1)
    return out
