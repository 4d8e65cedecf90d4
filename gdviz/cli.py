"""The ``gdviz`` command: a thin shell over gdviz.core (and the desktop app when no
sub-command is given).

Exit codes: 0 finished or converged, 3 diverged, 2 bad input (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

import numpy as np

from . import __version__
from .core.device import DEVICE_CHOICES
from .core.errors import GdvizError
from .core.history import History
from .core.optimizers import OPTIMIZERS
from .core.problem import ParamSpec
from .core.session import Session
from .core.trainer import DIVERGED, Trainer

EXIT_OK, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 2, 3

# Every hyperparameter of every optimizer becomes one flag (--momentum, --beta1, ...).
_HYPERS = {h.name: h for spec in OPTIMIZERS.values() for h in spec.hypers if h.name != "lr"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors, in our format
        self.print_usage(sys.stderr)
        raise SystemExit(_fail(message))


def _fail(message: str) -> int:
    print(f"gdviz: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _add_problem_options(p: argparse.ArgumentParser, training: bool = True) -> None:
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
    g.add_argument("--seed", type=int, help="random seed for initial values (default 0)")
    g.add_argument("--preset", help="start from a bundled example (see gdviz presets)")
    g.add_argument("--session", metavar="FILE", help="start from a session file (.gdviz.json)")
    g.add_argument("--save-session", metavar="FILE", help="write the settings (and where the "
                   "run ended) to a session file")
    g.add_argument("--device", choices=DEVICE_CHOICES + ("cuda:0",), help="auto (CUDA when "
                   "there is one), cpu or cuda")
    if not training:
        return
    o = p.add_argument_group("optimizer")
    o.add_argument("--optimizer", "-o", choices=list(OPTIMIZERS), help="default sgd")
    o.add_argument("--lr", type=float, help="learning rate")
    for name, hyper in _HYPERS.items():
        if hyper.kind == "bool":
            o.add_argument(hyper.flag, dest=name, action="store_true", default=None,
                           help=hyper.help)
        else:
            o.add_argument(hyper.flag, dest=name, type=float, help=hyper.help)
    o.add_argument("--steps", type=int, help="step limit")
    o.add_argument("--tol", type=float, help="stop once the loss is at or below this")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gdviz", description="Watch gradient descent and autograd at work. "
                     "With no command, opens the desktop app.")
    parser.add_argument("--version", action="version", version=f"gdviz {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="train and report the result")
    _add_problem_options(run)
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--out", metavar="FILE", help="write the history (.csv or .json)")
    fig = run.add_argument_group("figures (drawn as in the window)")
    fig.add_argument("--plot", action="append", default=[], metavar="KIND=FILE",
                     help="loss, trajectory or graph; .png or .svg (.csv: the data behind a "
                     "plot; .json or .dot: the graph). Repeatable")
    fig.add_argument("--animation", metavar="FILE", help="the run growing step by step, .gif or .mp4")
    fig.add_argument("--frames", type=int, default=60, help="animation frames (default 60)")
    fig.add_argument("--fps", type=float, default=15.0, help="animation frames per second (default 15)")
    fig.add_argument("--scale", type=float, default=2.0, help="PNG scale factor (default 2)")

    grad = sub.add_parser("grad", help="one forward and backward pass at the initial values")
    _add_problem_options(grad, training=False)
    grad.add_argument("--json", action="store_true", help="print one JSON object")

    graph = sub.add_parser("graph", help="the computation graph at the initial values")
    _add_problem_options(graph)
    graph.add_argument("--out", metavar="FILE", help="write the graph: .svg or .png (the window's "
                       "drawing), .json (nodes and edges) or .dot (Graphviz)")
    graph.add_argument("--scale", type=float, default=2.0, help="PNG scale factor (default 2)")

    sub.add_parser("presets", help="list the bundled examples")

    gui = sub.add_parser("gui", help="open the desktop app")
    gui.add_argument("file", nargs="?", help="a session file to open")
    return parser


# --- building a session from the options ------------------------------------------------

def session_from_args(args: argparse.Namespace) -> Session:
    """Preset or session file first, then every flag given explicitly on top."""
    from .core.presets import load_preset

    if args.preset and args.session:
        raise GdvizError("use either --preset or --session, not both")
    if args.preset:
        session = load_preset(args.preset)
    elif args.session:
        session = Session.load(args.session)
    elif args.function is None:
        raise GdvizError("give a function (--function \"X + 1\"), a --preset or a --session")
    else:
        session = Session(function="", params={})
    if args.function is not None:
        if args.function != session.function:
            session.state, session.history = None, None
        session.function = args.function
    if args.loss is not None:
        session.loss = args.loss
    if args.seed is not None:
        session.seed = args.seed
    if args.device is not None:
        session.device = args.device

    params = dict(session.params)
    for item in args.param:
        name, sep, init = item.partition("=")
        if not sep or not name.strip():
            raise GdvizError(f"--param expects NAME=INIT, got '{item}'")
        old = params.get(name.strip())
        params[name.strip()] = ParamSpec(init.strip(), old.frozen if old else False)
    for name in args.freeze:
        old = params.get(name)
        params[name] = ParamSpec(old.init if old else ParamSpec().init, True)
    explicit = {i.partition("=")[0].strip() for i in args.param} | set(args.freeze)
    # Parameters a preset named but the (new) function no longer has are dropped quietly;
    # only ones the user named on this command line are an error (Problem reports them).
    from .core.expressions import compile_expression
    names = compile_expression(session.function, "function", reserved=("y", "loss")).names
    session.params = {n: s for n, s in params.items() if n in names or n in explicit}

    if hasattr(args, "optimizer"):
        _apply_optimizer_flags(session, args)
    return session


def _apply_optimizer_flags(session: Session, args: argparse.Namespace) -> None:
    if args.optimizer is not None and args.optimizer != session.optimizer:
        spec = OPTIMIZERS[args.optimizer]
        # Keep only what the new optimizer understands (a preset's momentum means nothing to adam).
        session.hypers = {k: v for k, v in session.hypers.items()
                          if any(h.name == k for h in spec.hypers)}
        session.optimizer = args.optimizer
    spec = OPTIMIZERS[session.optimizer]
    valid = {h.name for h in spec.hypers}
    if args.lr is not None:
        session.hypers["lr"] = args.lr
    for name, hyper in _HYPERS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in valid:
            flags = ", ".join(h.flag for h in spec.hypers)
            raise GdvizError(f"{hyper.flag} does not apply to {session.optimizer}; its options "
                             f"are {flags}")
        session.hypers[name] = value
    if args.steps is not None:
        if args.steps < 0:
            raise GdvizError("--steps must be >= 0")
        session.steps = args.steps
    if args.tol is not None:
        session.tol = args.tol


def make_trainer(session: Session, max_batch_s: float = 0.1) -> Trainer:
    problem = session.build_problem()
    state = session.state or {}
    return Trainer(problem, session.optimizer, session.hypers, device=session.device,
                   max_steps=session.steps, tol=session.tol, start=state.get("values"),
                   start_step=state.get("step", 0), max_batch_s=max_batch_s,
                   optimizer_state=state.get("optimizer"))


def _use_one_thread_for_small(trainer: Trainer) -> None:
    # Tiny problems run faster on one intra-op thread (see DESIGN.md on 2-core machines).
    import torch
    if sum(v.numel() for v in trainer.values.values()) < 100_000:
        torch.set_num_threads(1)


# --- commands ---------------------------------------------------------------------------

def _figure_requests(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Check --plot/--animation before training, so a typo fails fast."""
    from pathlib import Path

    allowed = {"loss": (".png", ".svg", ".csv"), "trajectory": (".png", ".svg", ".csv"),
               "graph": (".png", ".svg", ".json", ".dot")}
    plots = []
    for item in args.plot:
        kind, sep, path = item.partition("=")
        if not sep or not path:
            raise GdvizError(f"--plot expects KIND=FILE such as loss=loss.png, got '{item}'")
        if kind not in allowed:
            raise GdvizError(f"--plot: unknown plot '{kind}'; use loss, trajectory or graph")
        if Path(path).suffix.lower() not in allowed[kind]:
            raise GdvizError(f"--plot {kind}: '{path}' must end in {', '.join(allowed[kind])}")
        plots.append((kind, path))
    if args.animation and Path(args.animation).suffix.lower() not in (".gif", ".mp4"):
        raise GdvizError(f"--animation: '{args.animation}' must end in .gif or .mp4")
    if not 1 <= args.frames <= 10_000 or not 0 < args.fps <= 120 or not 0 < args.scale <= 16:
        raise GdvizError("--frames must be 1 to 10000, --fps 0 to 120, --scale 0 to 16")
    for path in [p for _, p in plots] + ([args.animation] if args.animation else []) + \
            ([args.out] if args.out else []):
        folder = Path(path).resolve().parent
        if not folder.is_dir():
            raise GdvizError(f"cannot write {path}: the folder {folder} does not exist")
    return plots


def _write_figures(args, plots, session, trainer: Trainer, history: History) -> None:
    if not plots and not args.animation:
        return
    from .qt.figures import OffscreenFigures, animation
    from .qt.offscreen import ensure_app

    ensure_app()
    start = history.params[0] if len(history) else trainer.problem.initial_flat()
    figures = OffscreenFigures(trainer.problem, trainer.layout, history, start,
                               trainer.flat_params(), trainer.current_loss(), session.landscape,
                               session.steps)
    try:
        for kind, path in plots:
            figures.save(kind, path, args.scale)
        if args.animation:
            animation(figures, args.animation, args.frames, args.fps)
    finally:
        figures.close()


def cmd_run(args: argparse.Namespace) -> int:
    session = session_from_args(args)
    plots = _figure_requests(args)
    trainer = make_trainer(session)
    _use_one_thread_for_small(trainer)
    history = History(trainer.layout)
    if session.history:
        session.restore_history(history)
    progress = _Progress(trainer.max_steps) if sys.stdout.isatty() and not args.json else None
    for batch in trainer.iter_steps():
        history.extend(batch.steps, batch.loss, batch.params, batch.grads)
        if progress:
            progress.show(batch.step, batch.loss[-1] if len(batch) else math.nan)
    if progress:
        progress.done()
    summary = trainer.summary()
    if args.out:
        history.save(args.out)
    _write_figures(args, plots, session, trainer, history)
    if args.save_session:
        session.state = {"step": trainer.step, "values": summary["params"]}
        if trainer.optimizer_state():
            session.state["optimizer"] = trainer.optimizer_state()
        session.history = None
        session.save(args.save_session)
    if args.json:
        print(json.dumps(summary))
    else:
        print(_readable_summary(summary, trainer))
    if summary["status"] == DIVERGED:
        if not args.json:
            print(f"gdviz: {summary['message']}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def cmd_grad(args: argparse.Namespace) -> int:
    from .core.trainer import _nested

    session = session_from_args(args)
    problem = session.build_problem()
    trainer = Trainer(problem, device=session.device)
    y, loss, grads = trainer.evaluate()
    report = {
        "y": _nested(y),
        "loss": _nested(loss),
        "params": {n: _nested(v) for n, v in trainer.values.items()},
        "grads": {n: (None if g is None else _nested(g)) for n, g in grads.items()},
        "grad_fn": type(y.grad_fn).__name__ if y.grad_fn is not None else None,
        "loss_summed": problem.loss_summed,
    }
    if args.save_session:
        session.save(args.save_session)
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    print(f"y = {_tensor_text(y)}" + (f"   (grad_fn={report['grad_fn']})" if report["grad_fn"] else ""))
    print(f"loss = {float(loss):.6g}" + ("   (the loss expression is not a single number, so its "
                                       "elements are summed)" if problem.loss_summed else ""))
    for name, value in trainer.values.items():
        g = grads[name]
        print(f"{name} = {_tensor_text(value)}")
        print(f"  grad {name} = " + ("none (frozen)" if g is None else _tensor_text(g)))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .core.graph import capture_graph, layout_graph, node_lines, save_graph_text

    session = session_from_args(args)
    problem = session.build_problem()
    values = {n: t.numpy() for n, t in problem.initial.items()}
    if session.state:
        values.update({n: np.asarray(v) for n, v in session.state["values"].items() if n in values})
    graph = capture_graph(problem, values)
    if not args.out:
        layout_graph(graph)
        for node in graph.nodes:
            print(f"[{node.id}] {node.kind:8s} " + " | ".join(node_lines(node)))
        for edge in graph.edges:
            print(f"  {edge.source} -> {edge.target}")
        return EXIT_OK
    suffix = Path(args.out).suffix.lower()
    if suffix in (".svg", ".png"):
        if not 0 < args.scale <= 16:
            raise GdvizError("--scale must be between 0 and 16")
        from .qt.graph_view import save_graph
        from .qt.offscreen import ensure_app

        ensure_app()
        save_graph(graph, args.out, args.scale)
    else:
        save_graph_text(graph, args.out)  # .json or .dot, without Qt
    print(f"wrote {args.out} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return EXIT_OK


def cmd_presets(_args: argparse.Namespace) -> int:
    from .core.presets import all_presets

    presets = all_presets()
    width = max(len(n) for n, _ in presets)
    for name, session in presets:
        print(f"{name:<{width}}  {session.description}")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    import os

    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort with a cryptic plugin message; say what to do instead.
        return _fail("no display to open the window on (DISPLAY is not set). Run gdviz on a "
                     "desktop, or start a virtual screen (Xvfb :99 & export DISPLAY=:99); "
                     "gdviz run, grad and graph work without one")
    try:
        from .qt.app import main as gui_main
    except ImportError as exc:
        return _fail(f"the desktop app cannot start: {exc}. Install gdviz with its GUI "
                     "dependencies (pip install gdviz), or use gdviz run / grad")
    return gui_main(getattr(args, "file", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "grad": cmd_grad, "graph": cmd_graph, "presets": cmd_presets,
                "gui": cmd_gui,
                None: cmd_gui}
    try:
        return handlers[args.command](args)
    except GdvizError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("gdviz: interrupted", file=sys.stderr)
        return 130


# --- text output ------------------------------------------------------------------------

def _tensor_text(tensor: Any) -> str:
    arr = np.asarray(tensor.detach().cpu() if hasattr(tensor, "detach") else tensor)
    if arr.size == 1:
        return f"{arr.reshape(-1)[0]:.6g}" + (f" (shape {tuple(arr.shape)})" if arr.ndim else "")
    text = np.array2string(arr, precision=6, separator=", ", threshold=40)
    return text.replace("\n", "\n    ")


def _readable_summary(summary: dict[str, Any], trainer: Trainer) -> str:
    lines = [f"{summary['status']} after {summary['steps']} steps on {summary['device']} "
             f"({summary['optimizer']['name']}, lr {summary['optimizer']['lr']:g}, "
             f"{summary['steps_per_s'] or 0:,.0f} steps/s)"]
    if summary["message"]:
        lines.append(summary["message"])
    loss = summary["loss"]
    lines.append(f"loss = {loss:.6g}" if loss is not None else "loss = not finite")
    for name, value in trainer.values.items():
        lines.append(f"{name} = {_tensor_text(value)}")
    return "\n".join(lines)


class _Progress:
    """A one-line progress bar for terminals."""

    def __init__(self, total: int):
        self.total = max(total, 1)

    def show(self, step: int, loss: float) -> None:
        frac = min(step / self.total, 1.0)
        bar = "#" * int(frac * 30)
        sys.stdout.write(f"\r[{bar:<30}] {frac:4.0%} step {step}/{self.total} loss {loss:.4g}  ")
        sys.stdout.flush()

    def done(self) -> None:
        sys.stdout.write("\r" + " " * 78 + "\r")
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
