"""``gdviz run``: train one run and report where it ended."""

from __future__ import annotations

import argparse
import json
import math
import sys

from ..core.simulation import Simulation
from ..core.status import Status
from .options import (EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, add_limit_options,
                      add_optimizer_options, add_problem_options, session_from_args)
from .output import (Progress, add_figure_options, figure_requests, readable_summary,
                     shown_path, write_figures)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="train and report the result")
    add_problem_options(p)
    add_optimizer_options(p)
    add_limit_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE", help="write the history (.csv or .json)")
    add_figure_options(p)
    p.set_defaults(handler=main)


def use_one_thread_for_small(sim: Simulation) -> None:
    """Tiny problems run faster on one intra-op thread (see DESIGN.md on 2-core machines)."""
    import torch

    if len(sim.runset) * len(sim.problem.layout.param_columns) < 100_000:
        torch.set_num_threads(1)


def main(args: argparse.Namespace) -> int:
    session = session_from_args(args)
    plots = figure_requests(args)
    # run trains the session's selected run; --save-session puts it back among the others
    sim = Simulation(session.with_changes(runs=[session.run], selected=0))
    use_one_thread_for_small(sim)
    run = sim.runset.runs[0]
    progress = Progress(sim.runset.steps) if sys.stdout.isatty() and not args.json else None
    sim.run(on_batch=(lambda b: progress.show(run.step, run.loss)) if progress else None)
    if progress:
        progress.done()
    summary = sim.summary(run)
    if args.out:
        run.history.save(args.out)
    write_figures(args, plots, sim)
    if args.save_session:
        saved = sim.snapshot()
        runs = list(session.runs)
        runs[session.selected] = saved.runs[0]
        saved.with_changes(runs=runs, selected=session.selected).save(args.save_session)
    if args.json:
        print(json.dumps(summary))
    else:
        print(readable_summary(summary, sim, run))
    if sim.interrupted:
        print(f"gdviz: interrupted at step {run.step}; what was done so far is kept"
              + (f" in {shown_path(args.out)}" if args.out else "")
              + (f" and {shown_path(args.save_session)}" if args.save_session else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if run.status == Status.DIVERGED:
        if not args.json:
            print(f"gdviz: {run.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK
