"""The command line's shared options, and turning them into a session.

The flags are one validation boundary: each is checked by the same rules as a session file
(:mod:`gdviz.core.session`), and every error names the flag.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.device import DEVICE_CHOICES
from ..core.errors import GdvizError, SessionError
from ..core.model import RunSettings, ramp_color
from ..core.optimizers import OPTIMIZERS, normalize_hypers
from ..core.problem import ParamSpec
from ..core.schedules import NAMES, Schedule, check_clip_norm
from ..core.session import RunRecord, Session, apply_overrides

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130

# Every hyperparameter of every optimizer becomes one flag (--momentum, --beta1, ...).
HYPERS = {h.name: h for spec in OPTIMIZERS.values() for h in spec.hypers if h.name != "lr"}
#: Options whose value is user text that may start with a minus sign ("-x").
_TEXT_OPTIONS = ("--function", "-f", "--loss", "-l", "--param", "-p", "--run", "--sweep")


class Parser(argparse.ArgumentParser):
    """argparse with gdviz's one-line errors (exit 2)."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        raise SystemExit(fail(message))


def fail(message: str) -> int:
    print(printable(f"gdviz: error: {clip(message)}", sys.stderr), file=sys.stderr)
    return EXIT_BAD_INPUT


def printable(text: str, stream) -> str:
    """``text`` as the stream can print it: file names that are not valid UTF-8 (held as
    surrogates) are escaped instead of raising UnicodeEncodeError."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


def clip(text: str, limit: int = 400) -> str:
    """A message shortened so that a huge bad value is not echoed whole."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def join_text_values(argv: Sequence[str]) -> list[str]:
    """``--function -x`` as ``--function=-x``: argparse would read ``-x`` as an option."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _TEXT_OPTIONS and i + 1 < len(args) and args[i + 1].startswith("-") \
                and args[i + 1] not in ("-h", "--help"):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def add_problem_options(p: argparse.ArgumentParser, save: bool = True) -> None:
    g = p.add_argument_group("problem")
    g.add_argument("--function", "-f", help="the function, e.g. \"X + 1\" (its free names are "
                   "the parameters)")
    g.add_argument("--loss", "-l", help="the loss in y (the function's value) and the "
                   "parameters, e.g. \"(3 - y)**2 / 2\"; default y")
    g.add_argument("--param", "-p", action="append", default=[], metavar="NAME=INIT",
                   help="initial value: a number, [1, 2], rand(SHAPE), randn(SHAPE), "
                   "zeros(SHAPE), ones(SHAPE), full(SHAPE, VALUE); default rand(1). Repeatable")
    g.add_argument("--freeze", action="append", default=[], metavar="NAME",
                   help="keep a parameter fixed (no gradient). Repeatable")
    g.add_argument("--seed", type=int, help="random seed for initial values, 0 to 2**63 - 1 "
                   "(default 0)")
    g.add_argument("--preset", help="start from a bundled example (see gdviz presets)")
    g.add_argument("--session", metavar="FILE", help="start from a session file (.gdviz.json)")
    d = p.add_argument_group("data")
    d.add_argument("--data", metavar="FILE.csv", help="fit to data: a CSV file with a header "
                   "row; its columns are variables of the function and the loss (a column y "
                   "is y_data: y is the function's value)")
    d.add_argument("--dataset", metavar="NAME", help="a bundled dataset instead of a file "
                   "(see gdviz presets)")
    d.add_argument("--batch-size", type=int, help="rows per mini-batch, shuffled each epoch "
                   "from --seed (default: the whole data every step)")
    if save:
        g.add_argument("--save-session", metavar="FILE", help="write the settings (and where "
                       "the runs ended) to a session file")
        d.add_argument("--embed-data", action="store_true", help="with --save-session, write "
                       "the data into the session instead of the data file's path")
    g.add_argument("--device", choices=DEVICE_CHOICES + ("cuda:0",), help="auto (CUDA when "
                   "there is one), cpu or cuda")


def add_limit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("limits")
    g.add_argument("--steps", type=int, help="step limit")
    g.add_argument("--tol", type=float, help="stop a run once its loss is at or below this "
                   "(a number >= 0)")


def add_optimizer_options(p: argparse.ArgumentParser) -> None:
    o = p.add_argument_group("optimizer")
    o.add_argument("--optimizer", "-o", choices=list(OPTIMIZERS), help="default sgd")
    o.add_argument("--lr", type=float, help="learning rate")
    for name, hyper in HYPERS.items():
        if hyper.kind == "bool":
            o.add_argument(hyper.flag, dest=name, action="store_true", default=None,
                           help=hyper.help)
        else:
            o.add_argument(hyper.flag, dest=name, type=float, help=hyper.help)
    add_schedule_options(p)


def add_schedule_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("learning-rate schedule and gradient clipping")
    s.add_argument("--schedule", choices=NAMES, help="how the learning rate changes over the "
                   "step limit (torch.optim.lr_scheduler, stepped every step); default constant")
    s.add_argument("--warmup", type=int, help="warmup-cosine: steps of linear warm-up from 1%% "
                   "of the rate")
    s.add_argument("--step-size", type=int, help="step: multiply the rate by --gamma every this "
                   "many steps (default 100)")
    s.add_argument("--gamma", type=float, help="step, exponential: the factor (default 0.5)")
    s.add_argument("--min-lr", type=float, help="cosine, warmup-cosine: the rate at the step "
                   "limit (default 0)")
    s.add_argument("--max-lr", type=float, help="one-cycle: the peak rate (default 10 x --lr)")
    s.add_argument("--clip-norm", type=float, help="scale each gradient down to at most this "
                   "norm before the update (clip_grad_norm_)")


# --- building a session from the options ------------------------------------------------

def base_session(args: argparse.Namespace) -> Session:
    from ..core.presets import load_preset, preset_names

    if args.preset and args.session:
        raise GdvizError("use either --preset or --session, not both")
    if args.preset:
        names = preset_names()
        if args.preset not in names:  # a name, never a path (a long one is an OSError there)
            raise GdvizError(f"unknown preset '{clip(args.preset, 60)}'; the presets are "
                             f"{', '.join(names)}")
        return load_preset(args.preset)
    if args.session:
        return Session.load(args.session)
    if args.function is None:
        raise GdvizError("give a function (--function \"X + 1\"), a --preset or a --session")
    return Session(function="", params={})


def session_from_args(args: argparse.Namespace, optimizer_flags: bool = True) -> Session:
    """Preset or session file first, then every flag given explicitly on top, through
    the same :func:`apply_overrides` the window uses."""
    from ..core.expressions import compile_expression

    session = base_session(args)
    function = args.function if args.function is not None else session.function
    params = dict(session.params)
    for item in args.param:
        name, sep, init = item.partition("=")
        if not sep or not name.strip():
            raise GdvizError(f"--param expects NAME=INIT, got '{clip(item, 80)}'")
        old = params.get(name.strip())
        params[name.strip()] = ParamSpec(init.strip(), old.frozen if old else False)
    for name in args.freeze:
        old = params.get(name)
        params[name] = ParamSpec(old.init if old else ParamSpec().init, True)
    explicit = {i.partition("=")[0].strip() for i in args.param} | set(args.freeze)
    # Parameters a preset named but the (new) function no longer has are dropped quietly;
    # only ones named on this command line are an error (Problem reports them).
    names = compile_expression(function, "function", reserved=("y", "loss")).names
    params = {n: s for n, s in params.items() if n in names or n in explicit}

    overrides: dict[str, Any] = {"function": args.function, "loss": args.loss,
                                 "params": params, "seed": args.seed, "device": args.device}
    overrides.update(data_overrides(args))
    if getattr(args, "steps", None) is not None:
        overrides["steps"] = args.steps
    if getattr(args, "tol", None) is not None:
        overrides["tol"] = args.tol
    if optimizer_flags and hasattr(args, "optimizer"):
        overrides.update(optimizer_overrides(args, session.run.optimizer))
        overrides.update(schedule_overrides(args, session.run.schedule))
        overrides["run_index"] = session.selected
    try:
        return apply_overrides(session, **overrides)
    except SessionError as exc:
        raise GdvizError(f"--{(exc.field or '').replace('_', '-')}: "
                         f"{str(exc).split(': ', 1)[-1]}") from None


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """--data, --dataset and --batch-size; the data is read now, so a bad file is an error
    before anything runs."""
    from ..core.data import load_bundled, read_csv
    from ..core.session import DataSource

    out: dict[str, Any] = {}
    if args.data and args.dataset:
        raise GdvizError("use either --data or --dataset, not both")
    if args.data:
        read_csv(args.data)
        out["data"] = DataSource(path=str(Path(args.data).resolve()))
    elif args.dataset:
        load_bundled(args.dataset)
        out["data"] = DataSource(dataset=args.dataset)
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise GdvizError("--batch-size must be at least 1")
        out["batch_size"] = args.batch_size
    return out


def save_session(session: Session, args: argparse.Namespace) -> None:
    """--save-session, with --embed-data when given."""
    session.save(args.save_session, embed_data=getattr(args, "embed_data", False))


def optimizer_overrides(args: argparse.Namespace, current: str) -> dict[str, Any]:
    optimizer = args.optimizer or current
    spec = OPTIMIZERS[optimizer]
    valid = {h.name for h in spec.hypers}
    hypers: dict[str, Any] = {}
    if args.lr is not None:
        hypers["lr"] = args.lr
    for name, hyper in HYPERS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in valid:
            flags = ", ".join(h.flag for h in spec.hypers)
            raise GdvizError(f"{hyper.flag} does not apply to {optimizer}; its options are {flags}")
        hypers[name] = value
    try:
        normalize_hypers(optimizer, hypers)
    except GdvizError as exc:
        raise GdvizError(f"--{str(exc)}") from None
    return {"optimizer": args.optimizer, "hypers": hypers}


SCHEDULE_FLAGS = ("warmup", "step_size", "gamma", "min_lr", "max_lr")


def schedule_overrides(args: argparse.Namespace, current: Schedule) -> dict[str, Any]:
    """--schedule and its settings on top of the run's schedule, and --clip-norm."""
    out: dict[str, Any] = {}
    given = {k: getattr(args, k) for k in SCHEDULE_FLAGS if getattr(args, k, None) is not None}
    name = getattr(args, "schedule", None)
    if name is not None or given:
        base = current if name is None or name == current.name else Schedule(name)
        base.check_settings(set(given), flags=True)
        try:
            out["schedule"] = replace(base, **given)
        except GdvizError as exc:
            raise GdvizError(f"--{exc}") from None
    if getattr(args, "clip_norm", None) is not None:
        try:
            out["clip_norm"] = check_clip_norm(args.clip_norm)
        except GdvizError as exc:
            raise GdvizError(f"--clip-norm: {exc}") from None
    return out


# --- run specs for race ------------------------------------------------------------------

def parse_run_spec(text: str, where: str) -> RunSettings:
    """'OPTIMIZER key=value ...' (booleans true/false, label=NAME) as run settings."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise GdvizError(f"{where}: {exc}") from None
    if not words:
        raise GdvizError(f"{where} is empty; write e.g. \"adam lr=0.01\"")
    optimizer, label, hypers = words[0].lower(), "", {}
    schedule: dict[str, Any] = {}
    clip_norm: float | None = None
    if optimizer not in OPTIMIZERS:
        raise GdvizError(f"{where}: unknown optimizer '{clip(words[0], 40)}'; choose from "
                         f"{', '.join(OPTIMIZERS)}")
    spec = OPTIMIZERS[optimizer]
    for word in words[1:]:
        key, sep, value = word.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep:
            raise GdvizError(f"{where}: expected key=value, got '{clip(word, 40)}'")
        if key == "label":
            label = value
            continue
        if key in ("schedule",) + SCHEDULE_FLAGS:
            schedule["name" if key == "schedule" else key] = value
            continue
        if key == "clip_norm":
            try:
                clip_norm = _number(value, key)
            except GdvizError as exc:
                raise GdvizError(f"{where}: {exc}") from None
            continue
        try:
            hyper = spec.hyper(key)
        except KeyError:
            raise GdvizError(f"{where}: {optimizer} has no option '{clip(key, 40)}'; its options "
                             f"are {', '.join(h.name for h in spec.hypers)}, label, schedule, "
                             f"{', '.join(SCHEDULE_FLAGS)}, clip_norm") from None
        if hyper.kind == "bool":
            if value.lower() not in ("true", "false"):
                raise GdvizError(f"{where}: {key} must be true or false")
            hypers[key] = value.lower() == "true"
        else:
            hypers[key] = value
    try:
        hypers = normalize_hypers(optimizer, hypers)
        plan = Schedule.from_dict({k: v if k == "name" else _number(v, k)
                                   for k, v in schedule.items()}) if schedule else Schedule()
        plan.check_settings(set(schedule) - {"name"})
        return RunSettings(optimizer, hypers, label, schedule=plan, clip_norm=clip_norm)
    except GdvizError as exc:
        raise GdvizError(f"{where}: {exc}") from None


def _number(text: str, key: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise GdvizError(f"{key} must be a number, not '{clip(text, 40)}'") from None
    return int(value) if key in ("warmup", "step_size") and value.is_integer() else value


def parse_sweep(text: str, count: int) -> list[RunSettings]:
    """'OPTIMIZER key=LOW..HIGH [key=value ...]': ``count`` runs with that key spaced
    logarithmically from LOW to HIGH."""
    if not 1 <= count <= 4096:
        raise GdvizError("--runs must be 1 to 4096")
    words = text.split()
    ranged = [w for w in words[1:] if ".." in w]
    if len(ranged) != 1:
        raise GdvizError("--sweep needs exactly one key=LOW..HIGH, e.g. \"sgd lr=1e-4..1e-1\"")
    key, _, span = ranged[0].partition("=")
    low_text, _, high_text = span.partition("..")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise GdvizError(f"--sweep: '{clip(span, 40)}' is not LOW..HIGH") from None
    if not (low > 0 and high > 0) or not (np.isfinite(low) and np.isfinite(high)):
        raise GdvizError("--sweep: both bounds must be positive numbers (the sweep is "
                         "logarithmic)")
    fixed = " ".join(w for w in words if w is not ranged[0])
    values = np.geomspace(low, high, count) if count > 1 else np.array([low])
    runs = []
    for k, value in enumerate(values):
        settings = parse_run_spec(f"{fixed} {key}={float(value)!r}", "--sweep")
        settings.color = ramp_color(k / max(1, count - 1))
        settings.label = f"{key} {float(value):.3g}"
        runs.append(settings)
    return runs


def records_for(runs: list[RunSettings]) -> list[RunRecord]:
    return [RunRecord(r.optimizer, dict(r.hypers), r.label, r.color, schedule=r.schedule,
                      clip_norm=r.clip_norm) for r in runs]
