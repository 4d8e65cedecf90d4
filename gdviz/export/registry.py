"""The one table of what can be exported, in which formats, and the writers.

This module imports no Qt, so the command line can check a request (``--plot
loss=x.gif``) before it trains; the writers import the drawing code when they run.

A *source* is what the writers draw from: the window (through its views) or
:class:`gdviz.export.figures.OffscreenFigures`. It offers ``loss_plot`` and
``trajectory_plot`` (widgets), ``trajectory_axes``, ``runset``, ``graph()`` (laid out),
``window`` (a widget or None) and ``selected`` (a run).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.atomic import atomic_write
from ..core.errors import GdvizError


@dataclass(frozen=True)
class Format:
    kind: str
    suffix: str
    label: str      # for menus: "PNG…", "Data (CSV)…"


#: kind -> (title for menus, formats in menu order)
KINDS: dict[str, tuple[str, tuple[Format, ...]]] = {}


def _register(kind: str, title: str, *formats: tuple[str, str]) -> None:
    KINDS[kind] = (title, tuple(Format(kind, suffix, label) for suffix, label in formats))


_register("loss", "Loss plot", (".png", "PNG…"), (".svg", "SVG…"), (".csv", "Data (CSV)…"))
_register("trajectory", "Trajectory plot", (".png", "PNG…"), (".svg", "SVG…"),
          (".csv", "Data (CSV)…"))
_register("data", "Data and fit", (".png", "PNG…"), (".svg", "SVG…"),
          (".csv", "Fit (CSV)…"))
_register("graph", "Computation graph", (".png", "PNG…"), (".svg", "SVG…"),
          (".json", "Graph data (JSON)…"), (".dot", "Graphviz (DOT)…"))
_register("surface", "3-D surface", (".png", "PNG…"))
_register("window", "Whole window", (".png", "PNG…"), (".svg", "SVG…"))
_register("history", "History of the selected run", (".csv", "CSV…"), (".json", "JSON…"))
_register("leaderboard", "Leaderboard", (".csv", "CSV…"))
_register("animation", "Animation", (".gif", "GIF…"), (".mp4", "MP4…"))

#: what --plot may write (figures and the data behind them)
PLOT_KINDS = ("loss", "trajectory", "graph", "data")


def suffixes(kind: str) -> tuple[str, ...]:
    if kind not in KINDS:
        raise GdvizError(f"nothing called '{kind[:40]}' to export; the kinds are "
                         f"{', '.join(KINDS)}")
    return tuple(f.suffix for f in KINDS[kind][1])


def check(kind: str, path: str | Path) -> str:
    """The suffix of ``path`` when ``kind`` can be written in that format; else an error
    that lists the formats."""
    allowed = suffixes(kind)
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise GdvizError(f"{kind}: '{str(path)[-80:]}' must end in {', '.join(allowed)}")
    return suffix


def export(source: Any, kind: str, path: str | Path, scale: float = 2.0) -> None:
    """Write ``kind`` from ``source`` to ``path`` (format by suffix), atomically."""
    suffix = check(kind, path)
    if kind == "animation":
        raise GdvizError("animations are written with export.animation (they take a while)")
    WRITERS[(kind, suffix)](source, Path(path), scale)


# --- writers ---------------------------------------------------------------------------

def _image(widget_of: Callable[[Any], Any], titled: bool = True):
    def write(source, path: Path, scale: float) -> None:
        from .figures import save_widget
        widget = widget_of(source)
        if widget is None:
            raise GdvizError("there is no window to draw")
        save_widget(widget, path, scale, getattr(source, "title", "") if titled else "")
    return write


def _graph(source, path: Path, scale: float) -> None:
    from ..core.graph import save_graph_text
    graph = source.graph()
    if graph is None:
        raise GdvizError("the graph is still being laid out; try again in a moment")
    if path.suffix.lower() in (".svg", ".png"):
        from ..qt.graph_view import save_graph
        save_graph(graph, path, scale, constants=getattr(source, "graph_numbers", False),
                   fold=getattr(source, "graph_fold", True))
    else:
        save_graph_text(graph, path)


def _surface(source, path: Path, scale: float) -> None:
    view = getattr(source, "surface", None)
    if view is None:
        raise GdvizError("the 3-D surface is drawn in the window only")
    view.save_png(path, scale)


def _table(columns: list[str], rows: np.ndarray | list, path: Path) -> None:
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else repr(value)


def plot_table(kind: str, source) -> tuple[list[str], list[list]]:
    """The data behind a plot: ``loss`` (step, loss) or ``trajectory`` (step, loss and the
    plotted parameter elements), for every visible run (with a run column when several)."""
    runs = source.runset.visible() or [source.selected]
    several = len(runs) > 1
    names = [name for name, _ in source.trajectory_axes] if kind == "trajectory" else []
    index = [i for _, i in source.trajectory_axes] if kind == "trajectory" else []
    columns = (["run"] if several else []) + ["step", "loss", *names]
    rows: list[list] = []
    for run in runs:
        h = run.history
        block = np.column_stack([h.steps, h.loss, h.params[:, index]]) if index else \
            np.column_stack([h.steps, h.loss])
        rows.extend(([run.label] if several else []) + list(r) for r in block)
    return columns, rows


def _plot_data(kind: str):
    def write(source, path: Path, scale: float) -> None:
        _table(*plot_table(kind, source), path)
    return write


def fit_table(picture, runs) -> tuple[list[str], list[list]]:
    """The models behind the data view: one row per input point (the line of inputs, or
    the grid of two), one column per run."""
    labels = [r.label for r in runs]
    if picture.kind == "curve":
        xs = picture.grid[0]
        return [picture.inputs[0], *labels], [[x, *picture.values[:, i]] for i, x in
                                               enumerate(xs)]
    gx, gy = picture.grid
    return ([*picture.inputs, *labels],
            [[x, y, *picture.values[:, j, i]] for j, y in enumerate(gy) for i, x in enumerate(gx)])


def _fit(source, path: Path, scale: float) -> None:
    picture, runs = source.data_picture()
    if picture.kind == "none":
        raise GdvizError(f"no fit to draw: {picture.reason}")
    if path.suffix.lower() == ".csv":
        _table(*fit_table(picture, runs), path)
    else:
        _image(lambda s: s.data_plot)(source, path, scale)


def _history(source, path: Path, scale: float) -> None:
    source.selected.history.save(path)


def _leaderboard(source, path: Path, scale: float) -> None:
    runset = source.runset
    board = runset.leaderboard()
    rows = []
    for r in board:
        settings = runset.get(r["id"]).settings
        rows.append([r["label"], r["optimizer"],
                     " ".join(f"{k}={v}" for k, v in settings.hypers.items()),
                     r["status"], r["steps"], r["loss"], r["best_loss"],
                     "" if r["steps_to_target"] is None else r["steps_to_target"],
                     settings.schedule.describe(),
                     "" if settings.clip_norm is None else settings.clip_norm])
    _table(["label", "optimizer", "hypers", "status", "steps", "loss", "best_loss",
            "steps_to_target", "schedule", "clip_norm"], rows, path)


WRITERS: dict[tuple[str, str], Callable[[Any, Path, float], None]] = {
    ("loss", ".png"): _image(lambda s: s.loss_plot),
    ("loss", ".svg"): _image(lambda s: s.loss_plot),
    ("loss", ".csv"): _plot_data("loss"),
    ("trajectory", ".png"): _image(lambda s: s.trajectory_plot),
    ("trajectory", ".svg"): _image(lambda s: s.trajectory_plot),
    ("trajectory", ".csv"): _plot_data("trajectory"),
    ("data", ".png"): _fit, ("data", ".svg"): _fit, ("data", ".csv"): _fit,
    ("graph", ".png"): _graph, ("graph", ".svg"): _graph, ("graph", ".json"): _graph,
    ("graph", ".dot"): _graph,
    ("surface", ".png"): _surface,
    ("window", ".png"): _image(lambda s: s.window, titled=False),
    ("window", ".svg"): _image(lambda s: s.window, titled=False),
    ("history", ".csv"): _history, ("history", ".json"): _history,
    ("leaderboard", ".csv"): _leaderboard,
}
