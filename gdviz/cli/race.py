"""``gdviz race``: several runs of one problem, stepped together, with a leaderboard."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys

from ..core import jsonsafe
from ..core.atomic import atomic_write
from ..core.errors import GdvizError
from ..core.simulation import Simulation
from ..core.status import Status
from .options import (EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, add_limit_options,
                      add_problem_options, parse_run_spec, parse_sweep, records_for,
                      save_session, session_from_args)
from .output import (Progress, add_figure_options, check_figures_fit, figure_requests,
                     shown_path, write_figures)
from .run import use_one_thread_for_small


def add_parser(sub) -> None:
    p = sub.add_parser("race", help="race several optimizers (or learning rates) on one problem")
    add_problem_options(p)
    add_limit_options(p)
    g = p.add_argument_group("runs")
    g.add_argument("--run", action="append", default=[], metavar="SPEC",
                   help="a run: \"OPTIMIZER key=value ...\", e.g. \"sgd lr=0.001 momentum=0.9 "
                   "label=Momentum\"; booleans are true/false. Repeatable")
    g.add_argument("--sweep", metavar="SPEC", help="runs of one optimizer with one setting "
                   "spaced logarithmically, e.g. \"sgd lr=1e-4..1e-1\"")
    g.add_argument("--runs", type=int, default=8, help="how many runs --sweep makes (default 8)")
    g.add_argument("--compare", action="store_true", help="the window's Compare optimizers: "
                   "SGD, momentum, Nesterov, RMSprop, Adam and AdamW from one start, with "
                   "learning rates that suit the problem's scale (with --run/--sweep: added)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE", help="write the leaderboard as CSV")
    add_figure_options(p)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    session = session_from_args(args, optimizer_flags=False)
    specs = [parse_run_spec(text, f"--run {i + 1} ('{text[:60]}')") for i, text in enumerate(args.run)]
    if args.sweep:
        specs += parse_sweep(args.sweep, args.runs)
    if args.compare:
        from ..core.model import RunSettings, comparison_runs

        run = session.run
        specs = comparison_runs(RunSettings(run.optimizer, dict(run.hypers)),
                                session.build_problem().initial_flat()) + specs
    if specs:
        session = session.with_changes(runs=records_for(specs), selected=0)
    if args.out and not args.out.lower().endswith(".csv"):
        raise GdvizError(f"--out: '{shown_path(args.out)[:80]}' must end in .csv (the leaderboard)")
    plots = figure_requests(args)
    check_figures_fit(plots, session)
    sim = Simulation(session)
    use_one_thread_for_small(sim)
    progress = Progress(sim.runset.steps) if sys.stdout.isatty() and not args.json else None
    lead = sim.runset.runs[0]
    sim.run(on_batch=(lambda b: progress.show(max(r.step for r in sim.runset), lead.loss))
            if progress else None)
    if progress:
        progress.done()
    board = sim.runset.leaderboard()
    if args.out:
        write_leaderboard(board, sim, args.out)
    if not sim.interrupted:  # Ctrl-C: the user wants to stop; drawing could take minutes
        write_figures(args, plots, sim)
    if args.save_session:
        save_session(sim.snapshot(), args)
    if args.json:
        runs = []
        for run, row in zip(sim.runset, board):
            summary = sim.summary(run)
            runs.append({"label": run.label, "optimizer": run.settings.optimizer,
                         "hypers": dict(run.settings.hypers), "status": summary["status"],
                         "steps": run.step, "loss": summary["loss"],
                         "best_loss": row["best_loss"], "steps_to_target": row["steps_to_target"],
                         "message": run.message, "params": summary["params"],
                         "grads": summary["grads"]})
        engine = sim.engine
        print(json.dumps(jsonsafe.plain({
            "runs": runs, "device": str(sim.device), "elapsed_s": round(engine.elapsed_s, 6),
            "steps_per_s": round(engine.executed / engine.elapsed_s, 1) if engine.elapsed_s else None})))
    else:
        print(leaderboard_text(board, sim.runset.target_description()))
    if sim.interrupted:
        print("gdviz: interrupted; what was done so far is kept"
              + ("; figures and animations were not drawn" if plots or args.animation else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_DIVERGED if any(r.status == Status.DIVERGED for r in sim.runset) else EXIT_OK


def _hypers_text(run) -> str:
    return " ".join(f"{k}={v}" for k, v in run.settings.hypers.items())


def write_leaderboard(board, sim: Simulation, path: str) -> None:
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "label", "optimizer", "hypers", "status", "steps", "loss",
                         "best_loss", "steps_to_target"])
        for rank, (row, run) in enumerate(ranked(board, sim), start=1):
            writer.writerow([rank, row["label"], row["optimizer"], _hypers_text(run),
                             row["status"], row["steps"], repr(float(row["loss"])),
                             repr(float(row["best_loss"])),
                             "" if row["steps_to_target"] is None else row["steps_to_target"]])


def ranked(board, sim: Simulation):
    """Best first: by final loss, diverged runs last."""
    pairs = list(zip(board, sim.runset))

    def key(pair):
        row = pair[0]
        loss = row["loss"]
        return (row["status"] == "diverged", loss if math.isfinite(loss) else math.inf)

    return sorted(pairs, key=key)


def leaderboard_text(board, target: str) -> str:
    width = max(len(r["label"]) for r in board)
    lines = [f"{'run':<{width}}  {'status':<9}  {'steps':>7}  {'loss':>12}  {'best':>12}  to target"]
    order = sorted(board, key=lambda r: (r["status"] == "diverged",
                                         r["loss"] if math.isfinite(r["loss"]) else math.inf))
    for r in order:
        loss = f"{r['loss']:.6g}" if math.isfinite(r["loss"]) else "—"
        best = f"{r['best_loss']:.6g}" if math.isfinite(r["best_loss"]) else "—"
        reach = "—" if r["steps_to_target"] is None else str(r["steps_to_target"])
        lines.append(f"{r['label']:<{width}}  {r['status']:<9}  {r['steps']:>7}  {loss:>12}  "
                     f"{best:>12}  {reach}")
    lines.append(f"(to target: {target})")
    return "\n".join(lines)
