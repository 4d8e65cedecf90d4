"""What the command line prints and writes besides JSON: text summaries, the progress bar,
figures and the checks that make a bad output path fail before any training."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import GdvizError
from ..core.simulation import Simulation
from ..export import registry



def add_figure_options(p: argparse.ArgumentParser) -> None:
    fig = p.add_argument_group("figures (drawn as in the window)")
    fig.add_argument("--plot", action="append", default=[], metavar="KIND=FILE",
                     help="loss, trajectory, graph or data (the data and the fitted model); "
                     ".png or .svg (.csv: the numbers behind a plot; .json or .dot: the graph). "
                     "Repeatable")
    fig.add_argument("--animation", metavar="FILE", help="the run growing step by step, .gif or .mp4")
    fig.add_argument("--frames", type=int, default=60, help="animation frames, 1 to 10000 (default 60)")
    fig.add_argument("--fps", type=float, default=15.0, help="animation frames per second, 0.1 "
                     "to 120 (default 15)")
    fig.add_argument("--scale", type=float, default=2.0, help="PNG scale factor, up to 16 (default 2)")


def shown_path(path: Any) -> str:
    """A path as text that any terminal can print (undecodable bytes escaped)."""
    text = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    return text.encode(sys.stdout.encoding or "utf-8", "backslashreplace").decode(
        sys.stdout.encoding or "utf-8", "replace")


def check_writable(path: str) -> None:
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise GdvizError(f"cannot write {shown_path(path)}: the folder {shown_path(folder)} "
                         "does not exist")
    if len(Path(path).name.encode("utf-8", "surrogateescape")) > 255:
        raise GdvizError(f"cannot write {shown_path(path)[:80]}…: the file name is longer than "
                         "255 bytes")


def figure_requests(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Check --plot/--animation/--out before training, so a typo fails fast."""
    plots = []
    for item in args.plot:
        kind, sep, path = item.partition("=")
        if not sep or not path:
            raise GdvizError(f"--plot expects KIND=FILE such as loss=loss.png, got "
                             f"'{item[:80]}'")
        if kind not in registry.PLOT_KINDS:
            raise GdvizError(f"--plot: unknown plot '{kind[:40]}'; use "
                             f"{', '.join(registry.PLOT_KINDS)}")
        try:
            registry.check(kind, path)
        except GdvizError as exc:
            raise GdvizError(f"--plot {shown_path(exc)}") from None
        plots.append((kind, path))
    if args.animation:
        try:
            registry.check("animation", args.animation)
        except GdvizError as exc:
            raise GdvizError(f"--{shown_path(exc)}") from None
    if not 1 <= args.frames <= 10_000:
        raise GdvizError("--frames must be 1 to 10000")
    if not 0.1 <= args.fps <= 120:
        raise GdvizError("--fps must be 0.1 to 120")
    if not 0 < args.scale <= 16:
        raise GdvizError("--scale must be more than 0 and at most 16")
    outputs = [p for _, p in plots] + ([args.animation] if args.animation else [])
    for path in outputs + [p for p in (getattr(args, "out", None),
                                       getattr(args, "save_session", None)) if p]:
        check_writable(path)
    return plots


def check_figures_fit(plots: list[tuple[str, str]], session) -> None:
    """Before training: a figure of the data needs data."""
    for kind, path in plots:
        if kind == "data" and session.data is None:
            raise GdvizError(f"--plot data={shown_path(path)}: there is no data to draw; give "
                             "--data FILE.csv or --dataset NAME")


def write_figures(args: argparse.Namespace, plots: list[tuple[str, str]], sim: Simulation) -> None:
    """Draw the requested figures. Ctrl-C waits for the end of the figure or frame being
    drawn (stopping inside Qt's painting could crash), then nothing half-written is left."""
    if not plots and not args.animation:
        return
    from ..core import interrupt

    # Importing Qt counts too: Ctrl-C while shiboken starts is a fatal error, not an exception.
    with interrupt.deferred_interrupt():
        from ..export.animation import animate
        from ..export.figures import OffscreenFigures
        from ..qt.offscreen import ensure_app

        ensure_app()
        figures = OffscreenFigures(sim.problem, sim.runset, sim.session.landscape)
        try:
            for kind, path in plots:
                interrupt.check()
                figures.save(kind, path, args.scale)
                print(f"wrote {shown_path(path)}", file=sys.stderr)
            if args.animation:
                animate(figures, args.animation, args.frames, args.fps)
                print(f"wrote {shown_path(args.animation)}", file=sys.stderr)
        finally:
            figures.close()


def tensor_text(value: Any, indent: int = 0) -> str:
    """A tensor as text; continuation lines are indented by ``indent`` so that rows line
    up under the first one when the text follows a prefix of that width."""
    arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    if arr.size == 1:
        return f"{arr.reshape(-1)[0]:.6g}" + (f" (shape {tuple(arr.shape)})" if arr.ndim else "")
    text = np.array2string(arr, precision=6, separator=", ", threshold=40,
                           floatmode="maxprec_equal")
    return text.replace("\n", "\n" + " " * indent)


def readable_summary(summary: dict[str, Any], sim: Simulation, run) -> str:
    rate = summary["steps_per_s"] or 0
    steps = summary["steps"]
    lines = [f"{summary['status']} after {steps} step{'s' * (steps != 1)} on "
             f"{summary['device']} ({run.label}, {rate:,.0f} steps/s)"]
    if summary["schedule"]["name"] != "constant":
        lines.append(f"lr now {summary['lr']:.4g}")
    # a divergence is told once, on stderr, where scripts look for it
    if summary["message"] and summary["status"] != "diverged":
        lines.append(summary["message"])
    loss = summary["loss"]
    text = f"loss = {loss:.6g}" if loss is not None else "loss = not finite"
    if "data_loss" in summary:  # mini-batches: the last batch's loss, and the data's
        full = summary["data_loss"]
        text += (" (the last mini-batch's); on all the data: "
                 + (f"{full:.6g}" if full is not None else "not finite"))
    lines.append(text)
    for name, value in sim.problem.layout.unflatten(run.values).items():
        lines.append(f"{name} = {tensor_text(value, len(name) + 3)}")
    return "\n".join(lines)


class Progress:
    """A one-line progress bar for terminals."""

    def __init__(self, total: int):
        self.total = max(total, 1)

    def show(self, step: int, loss: float) -> None:
        frac = min(step / self.total, 1.0)
        bar = "#" * int(frac * 30)
        shown = f"{loss:.4g}" if math.isfinite(loss) else "—"
        sys.stdout.write(f"\r[{bar:<30}] {frac:4.0%} step {step}/{self.total} loss {shown}  ")
        sys.stdout.flush()

    def done(self) -> None:
        sys.stdout.write("\r" + " " * 78 + "\r")
        sys.stdout.flush()
