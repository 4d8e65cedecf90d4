"""``gdviz run``: train one run and report where it ended."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..core import jsonsafe
from ..core.analysis.curvature import lambda_max_at
from ..core.atomic import atomic_write
from ..core.errors import GdvizError
from ..core.history import History
from ..core.simulation import Simulation
from ..core.status import Status
from .options import (EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, add_limit_options,
                      add_optimizer_options, add_problem_options, save_session,
                      session_from_args)
from .output import (Progress, add_figure_options, check_figures_fit, figure_requests,
                     readable_summary, shown_path, write_figures)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="train and report the result")
    add_problem_options(p)
    add_optimizer_options(p)
    add_limit_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE", help="write the history (.csv or .json)")
    p.add_argument("--curvature-every", type=int, metavar="K", help="the Hessian's largest "
                   "eigenvalue (lambda_max) at every K-th history row: a lambda_max column in "
                   "--out, lists lambda_max and lambda_max_steps in --json")
    add_figure_options(p)
    p.set_defaults(handler=main)


def use_one_thread_for_small(sim: Simulation) -> None:
    """Tiny problems run faster on one intra-op thread (see DESIGN.md on 2-core machines)."""
    import torch

    # the count from the shapes: the column names of a large parameter are millions of strings
    elements = sum(math.prod(shape) for shape in sim.problem.layout.shapes.values())
    if len(sim.runset) * elements < 100_000:
        torch.set_num_threads(1)


def main(args: argparse.Namespace) -> int:
    if args.curvature_every is not None and args.curvature_every < 1:
        raise GdvizError("--curvature-every must be at least 1")
    session = session_from_args(args)
    plots = figure_requests(args)
    check_figures_fit(plots, session)
    # run trains the session's selected run; --save-session puts it back among the others
    sim = Simulation(session.with_changes(runs=[session.run], selected=0))
    use_one_thread_for_small(sim)
    run = sim.runset.runs[0]
    progress = Progress(sim.runset.steps) if sys.stdout.isatty() and not args.json else None
    sim.run(on_batch=(lambda b: progress.show(run.step, run.loss)) if progress else None)
    if progress:
        progress.done()
    summary = sim.summary(run, arrays=args.json)
    curvature = None
    if args.curvature_every:
        curvature = curvature_rows(sim, run, args.curvature_every)
        summary["lambda_max_steps"] = curvature[0].tolist()
        summary["lambda_max"] = jsonsafe.plain(curvature[1])
    if args.out:
        if curvature is None:
            run.history.save(args.out)
        else:
            save_with_curvature(run.history, args.out, *curvature)
    if not sim.interrupted:  # Ctrl-C: the user wants to stop; drawing could take minutes
        write_figures(args, plots, sim)
    if args.save_session:
        saved = sim.snapshot()
        runs = list(session.runs)
        runs[session.selected] = saved.runs[0]
        save_session(saved.with_changes(runs=runs, selected=session.selected), args)
    if args.json:
        print(json.dumps(summary))
    else:
        print(readable_summary(summary, sim, run))
    if sim.interrupted:
        kept = [shown_path(p) for p in (args.out, args.save_session) if p]
        print(f"gdviz: interrupted at step {run.step}; what was done so far is kept"
              + (f" in {' and '.join(kept)}" if kept else "")
              + ("; figures and animations were not drawn" if plots or args.animation else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if run.status == Status.DIVERGED:
        if not args.json:
            print(f"gdviz: {run.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def curvature_rows(sim: Simulation, run, every: int) -> tuple[np.ndarray, np.ndarray]:
    """The steps of the history rows that are a multiple of ``every`` and lambda_max at
    each (NaN where the loss is not twice differentiable)."""
    history = run.history
    chosen = np.flatnonzero(history.steps % every == 0)
    return history.steps[chosen].copy(), lambda_max_at(sim.problem, history.params[chosen])


def save_with_curvature(history: History, path: str, steps: np.ndarray,
                        values: np.ndarray) -> None:
    """The history as ``History.save`` writes it, with a lambda_max column (empty or null
    on the rows between)."""
    column = np.full(len(history), np.nan)
    have = np.zeros(len(history), bool)
    rows = np.searchsorted(history.steps, steps)
    column[rows], have[rows] = values, True
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        with atomic_write(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([*history.columns, "lambda_max"])
            for row, value, known in zip(history.table(), column, have):
                writer.writerow([int(row[0]), *(repr(float(v)) for v in row[1:]),
                                 repr(float(value)) if known else ""])
    elif suffix == ".json":
        records = history.to_records()
        for record, value, known in zip(records, column, have):
            record["lambda_max"] = jsonsafe.plain(float(value)) if known else None
        with atomic_write(path, "w") as fh:
            json.dump({"columns": [*history.columns, "lambda_max"], "stride": history.stride,
                       "rows": records}, fh)
    else:
        history.save(path)  # its own message about the suffix
