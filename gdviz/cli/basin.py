"""``gdviz basin``: run the optimizer from every start of a grid and map where each ends."""

from __future__ import annotations

import argparse
import colorsys
import csv
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from ..core import jsonsafe
from ..core.analysis.basin import DEFAULT_GRID, MAX_GRID, BasinMap, basin_axes, basin_map, \
    check_grid, check_range, default_ranges
from ..core.analysis.sweep import Outcome
from ..core.atomic import atomic_path, atomic_write
from ..core.device import resolve_device
from ..core.errors import GdvizError
from ..core.optimizers import OPTIMIZERS
from ..core.problem import Problem
from ..core.session import Session
from .options import EXIT_OK, add_limit_options, add_optimizer_options, add_problem_options, \
    clip, session_from_args
from .output import check_writable, shown_path

#: a value such as "-5,5" is a value, not an option (argparse only knows "-5" and "-.5")
_NEGATIVE_VALUE = re.compile(r"^-\.?\d")


def allow_negative_values(p: argparse.ArgumentParser) -> None:
    """Let ``--x -5,5`` read "-5,5" as the value (argparse takes it for an option)."""
    p._negative_number_matcher = _NEGATIVE_VALUE  # noqa: SLF001 - argparse has no public hook


def add_parser(sub) -> None:
    p = sub.add_parser("basin", help="map which minimum each start on a grid reaches")
    add_problem_options(p, save=False)
    add_optimizer_options(p)
    add_limit_options(p)
    g = p.add_argument_group("map")
    g.add_argument("--grid", type=int, default=DEFAULT_GRID,
                   help=f"starts per side, 2 to {MAX_GRID} (default {DEFAULT_GRID})")
    g.add_argument("--x", metavar="LO,HI", help="range of the x axis (default: the preset's "
                   "landscape range, or around the initial value)")
    g.add_argument("--y", metavar="LO,HI", help="range of the y axis")
    g.add_argument("--x-axis", metavar="NAME", help="the element on the x axis, e.g. a or "
                   "w[0] (default: the first trainable one; the others not on an axis are "
                   "held at their initial values)")
    g.add_argument("--y-axis", metavar="NAME", help="the element on the y axis (default: the "
                   "second trainable one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE", help="write the map (.png) or one row per start "
                   "(.csv: start, end, loss, steps, status, basin)")
    allow_negative_values(p)
    p.set_defaults(handler=main)


def choose_threads(values: int) -> None:
    """Torch's intra-op threads for a batch of ``values`` numbers: one for small batches (see
    DESIGN.md: on 2 cores, 2 threads stall when the other core is busy, and here that costs
    tens of times the run), more only for large batches on cores that are idle now."""
    import torch

    threads = 1
    if values >= 200_000:
        idle = (os.cpu_count() or 1) - os.getloadavg()[0]
        threads = max(1, min(torch.get_num_threads(), int(idle + 0.5)))
    torch.set_num_threads(threads)


def session_start(session: Session, problem: Problem) -> np.ndarray:
    """The selected run's start (a full flat parameter row): its own start where the session
    gives one, else the problem's initial values."""
    row = problem.initial_flat()
    start = session.run.start
    if start:
        for name, sl in problem.layout.param_slices.items():
            if name in start:
                row[sl] = np.asarray(start[name], dtype=np.float64).reshape(-1)
    return row


def parse_range(text: str | None, flag: str) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        values = (float(parts[0]), float(parts[1]))
    except ValueError:
        raise GdvizError(f"{flag} expects LO,HI such as -5,5; got '{clip(text, 40)}'") from None
    try:
        return check_range(values, flag.lstrip("-"))
    except GdvizError as exc:
        raise GdvizError(f"{flag}: {exc}") from None


def main(args: argparse.Namespace) -> int:
    try:
        check_grid(args.grid)
    except GdvizError as exc:
        raise GdvizError(f"--grid: {exc}") from None
    x_range, y_range = parse_range(args.x, "--x"), parse_range(args.y, "--y")
    if args.out:
        if Path(args.out).suffix.lower() not in (".png", ".csv"):
            raise GdvizError(f"--out: '{shown_path(args.out)[:80]}' must end in .png (the map) "
                             "or .csv (one row per start)")
        check_writable(args.out)
    session = session_from_args(args)
    problem = session.build_problem()
    chosen = [args.x_axis, args.y_axis]
    if any(chosen) and not all(chosen):
        raise GdvizError("give both --x-axis and --y-axis, or neither")
    names, indices = basin_axes(problem, chosen if all(chosen) else None)
    base = session_start(session, problem)
    default_x, default_y = default_ranges(base, indices, session.landscape if not any(chosen)
                                          else None)
    device = resolve_device(session.device)
    choose_threads(args.grid ** 2 * problem.layout.n_params)
    run = session.run
    progress = _progress if sys.stderr.isatty() and not args.json else None
    result = basin_map(problem, run.optimizer, run.hypers, session.steps, session.tol,
                       x_range or default_x, y_range or default_y, args.grid, names, base,
                       device, progress=progress)
    if progress:
        sys.stderr.write("\r" + " " * 40 + "\r")
    if args.out:
        if args.out.lower().endswith(".csv"):
            write_csv(result, args.out)
        else:
            write_png(result, args.out, settings_text(run.optimizer, run.hypers))
        if not args.json:
            print(f"wrote {shown_path(args.out)}", file=sys.stderr)
    if args.json:
        print(json.dumps(jsonsafe.plain(result.summary())))
    else:
        print(summary_text(result, session))
    return EXIT_OK


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\r{done}/{total} starts ({done / total:.0%})")
    sys.stderr.flush()


def settings_text(optimizer: str, hypers: dict) -> str:
    """"adam lr=0.02": the learning rate and the settings that differ from the defaults."""
    defaults = OPTIMIZERS[optimizer].defaults()
    shown = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={str(v).lower()}"
             for k, v in hypers.items() if k == "lr" or v != defaults.get(k)]
    return " ".join([optimizer, *shown])


def _point_text(result: BasinMap, point: np.ndarray, digits: int = 6) -> str:
    """The coordinates, with float32 noise around zero (say 5e-10) written as 0."""
    scale = max(np.ptp(result.xs), np.ptp(result.ys))
    return ", ".join(f"{name} = {(0.0 if abs(v) < 1e-7 * scale else v):.{digits}g}"
                     for name, v in zip(result.axes, point))


def summary_text(result: BasinMap, session: Session) -> str:
    run = session.run
    (x0, x1), (y0, y1) = (result.xs[[0, -1]], result.ys[[0, -1]])
    lines = [f"{len(result.xs)} x {len(result.ys)} starts over {result.axes[0]} {x0:g}..{x1:g}, "
             f"{result.axes[1]} {y0:g}..{y1:g}; {settings_text(run.optimizer, run.hypers)}, "
             f"up to {result.step_limit} steps ({result.seconds:.2f} s)"]
    shown = result.basins[:20]
    for k, b in enumerate(shown):
        steps = result.steps[result.labels == k]
        lines.append(f"  basin {k + 1:>3}: {_point_text(result, b.point):<36} loss {b.loss:<12.6g}"
                     f" {b.fraction:7.2%} of starts, median {int(np.median(steps))} steps")
    if len(result.basins) > len(shown):
        rest = sum(b.fraction for b in result.basins[len(shown):])
        lines.append(f"  ... {len(result.basins) - len(shown)} more basins, {rest:.2%} of starts")
    lines.append(f"  diverged {result.diverged:.2%}, unfinished {result.unfinished:.2%}"
                 + ("" if not result.unfinished else
                    " (still moving at the step limit: try more --steps)"))
    return "\n".join(lines)


# --- files ---------------------------------------------------------------------------------

def write_csv(result: BasinMap, path: str) -> None:
    a, b = result.axes
    names = result.status_names()
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"start {a}", f"start {b}", f"end {a}", f"end {b}", "loss", "steps",
                         "status", "basin"])
        for start, end, loss, steps, status, label in zip(
                result.starts.tolist(), result.ends.tolist(), result.loss.tolist(),
                result.steps.tolist(), names.tolist(), result.labels.tolist()):
            writer.writerow([repr(start[0]), repr(start[1]), repr(end[0]), repr(end[1]),
                             repr(loss), steps, status, "" if label < 0 else label + 1])


#: colours of the first basins (then evenly spread hues)
_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (255, 187, 120)]
_DIVERGED = (0, 0, 0)
_UNFINISHED = (150, 150, 150)


def basin_colors(count: int) -> np.ndarray:
    """An RGB colour per basin: a qualitative palette, then golden-ratio hues."""
    colors = list(_PALETTE[:count])
    for k in range(len(colors), count):
        h = (k * 0.618033988749895) % 1.0
        colors.append(tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.65, 0.95)))
    return np.asarray(colors, dtype=np.float64).reshape(-1, 3)


def map_rgb(result: BasinMap) -> np.ndarray:
    """The map as an (ny, nx, 3) uint8 image, y growing upwards: each start in its basin's
    colour, darker the more steps it needed; diverged black, unfinished grey."""
    colors = basin_colors(len(result.basins))
    rgb = np.empty((len(result.outcome), 3))
    labelled = result.labels >= 0
    limit = max(1, result.step_limit)
    shade = 1.0 - 0.65 * np.clip(result.steps / limit, 0.0, 1.0)
    if len(colors):
        rgb[labelled] = colors[result.labels[labelled]] * shade[labelled, None]
    rgb[result.outcome == Outcome.DIVERGED] = _DIVERGED
    rgb[result.outcome == Outcome.UNFINISHED] = _UNFINISHED
    image = rgb.reshape(len(result.xs), len(result.ys), 3).transpose(1, 0, 2)[::-1]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_png(result: BasinMap, path: str, title: str) -> None:
    """The map with a legend, drawn with Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=13)
    except (TypeError, OSError):  # an old Pillow or one without FreeType
        font = ImageFont.load_default()
    n = max(len(result.xs), len(result.ys))
    scale = max(1, 520 // n)
    side_x, side_y = len(result.xs) * scale, len(result.ys) * scale
    left, top, legend = 60, 34, 300
    width, height = left + side_x + 20 + legend, top + side_y + 40
    canvas = Image.new("RGB", (width, max(height, top + 40 + 18 * 16)), (255, 255, 255))
    tile = Image.fromarray(map_rgb(result), "RGB").resize((side_x, side_y), Image.NEAREST)
    canvas.paste(tile, (left, top))
    draw = ImageDraw.Draw(canvas)
    ink = (20, 20, 20)
    draw.text((left, 8), f"Basins of attraction: {title}, up to {result.step_limit} steps",
              fill=ink, font=font)
    draw.rectangle([left - 1, top - 1, left + side_x, top + side_y], outline=ink)
    (x0, x1), (y0, y1) = result.xs[[0, -1]], result.ys[[0, -1]]
    draw.text((left, top + side_y + 4), f"{x0:g}", fill=ink, font=font)
    draw.text((left + side_x, top + side_y + 4), f"{x1:g}", fill=ink, font=font, anchor="ra")
    draw.text((left + side_x // 2, top + side_y + 20), result.axes[0], fill=ink, font=font,
              anchor="ma")
    draw.text((left - 4, top + side_y), f"{y0:g}", fill=ink, font=font, anchor="rb")
    draw.text((left - 4, top), f"{y1:g}", fill=ink, font=font, anchor="rt")
    draw.text((left - 4, top + side_y // 2), result.axes[1], fill=ink, font=font, anchor="rm")
    # where each basin's runs end, when it is on the map
    for b in result.basins[:2000]:
        px = left + (b.point[0] - x0) / (x1 - x0) * side_x
        py = top + (y1 - b.point[1]) / (y1 - y0) * side_y
        if left <= px <= left + side_x and top <= py <= top + side_y:
            draw.line([px - 4, py, px + 4, py], fill=(255, 255, 255), width=2)
            draw.line([px, py - 4, px, py + 4], fill=(255, 255, 255), width=2)
    colors = basin_colors(len(result.basins))
    x, y = left + side_x + 20, top
    rows = 14
    for k, b in enumerate(result.basins[:rows]):
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=tuple(int(c) for c in colors[k]))
        draw.text((x + 18, y), f"{_point_text(result, b.point, 5)}  {b.fraction:.1%}", fill=ink,
                  font=font)
        y += 18
    if len(result.basins) > rows:
        rest = sum(b.fraction for b in result.basins[rows:])
        draw.text((x + 18, y), f"{len(result.basins) - rows} more basins  {rest:.1%}",
                  fill=ink, font=font)
        y += 18
    for color, text in ((_DIVERGED, f"diverged  {result.diverged:.1%}"),
                        (_UNFINISHED, f"unfinished  {result.unfinished:.1%}")):
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=color)
        draw.text((x + 18, y), text, fill=ink, font=font)
        y += 18
    draw.text((x, y + 8), "darker: more steps to settle", fill=ink, font=font)
    draw.text((x, y + 26), "+: where a basin's runs end", fill=ink, font=font)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
