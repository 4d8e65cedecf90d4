"""``gdviz lr-find``: the learning-rate range test (one short run per learning rate)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from ..core import jsonsafe
from ..core.analysis.lr_range import DEFAULT_COUNT, DEFAULT_LR_MAX, DEFAULT_LR_MIN, \
    DEFAULT_STEPS, LrRange, log_lrs, lr_range_test
from ..core.atomic import atomic_write
from ..core.device import resolve_device
from ..core.errors import GdvizError
from ..core.limits import MAX_STEPS
from .basin import choose_threads, session_start
from .options import EXIT_OK, add_optimizer_options, add_problem_options, session_from_args
from .output import check_writable, shown_path


def add_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="final loss against the learning rate: where descent "
                       "works and where it diverges")
    add_problem_options(p, save=False)
    add_optimizer_options(p)
    g = p.add_argument_group("range test")
    g.add_argument("--lr-min", type=float, default=DEFAULT_LR_MIN,
                   help=f"lowest learning rate (default {DEFAULT_LR_MIN:g})")
    g.add_argument("--lr-max", type=float, default=DEFAULT_LR_MAX,
                   help=f"highest learning rate (default {DEFAULT_LR_MAX:g})")
    g.add_argument("--count", type=int, default=DEFAULT_COUNT,
                   help=f"learning rates, log-spaced (default {DEFAULT_COUNT})")
    g.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"steps of each run (default {DEFAULT_STEPS})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="FILE", help="write lr, final loss and diverged per "
                   "learning rate (.csv)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.steps <= MAX_STEPS:
        raise GdvizError(f"--steps must be 1 to {MAX_STEPS}")
    if not args.lr_min < args.lr_max:
        raise GdvizError(f"--lr-min ({args.lr_min:g}) must be below --lr-max ({args.lr_max:g})")
    try:
        lrs = log_lrs(args.lr_min, args.lr_max, args.count)
    except GdvizError as exc:
        raise GdvizError(f"--lr-min/--lr-max/--count: {exc}") from None
    if args.out:
        if Path(args.out).suffix.lower() != ".csv":
            raise GdvizError(f"--out: '{shown_path(args.out)[:80]}' must end in .csv")
        check_writable(args.out)
    session = session_from_args(args)
    problem = session.build_problem()
    run = session.run
    choose_threads(len(lrs) * problem.layout.n_params)
    result = lr_range_test(problem, run.optimizer, run.hypers, session_start(session, problem),
                           lrs, args.steps, resolve_device(session.device))
    if args.out:
        write_csv(result, args.out)
        if not args.json:
            print(f"wrote {shown_path(args.out)}", file=sys.stderr)
    if args.json:
        print(json.dumps(jsonsafe.plain(result.summary())))
    else:
        print(summary_text(result, run.optimizer))
    return EXIT_OK


def summary_text(result: LrRange, optimizer: str) -> str:
    lrs = result.lrs
    lines = [f"{optimizer}: {len(lrs)} learning rates from {lrs[0]:g} to {lrs[-1]:g}, "
             f"{result.steps} steps each, from a loss of {result.initial_loss:.6g} "
             f"({result.seconds:.2f} s)"]
    if result.max_stable_lr is None:
        lines.append("no learning rate lowered the loss: try a wider range or more --steps")
    else:
        lines.append(f"largest stable lr: {result.max_stable_lr:.4g} (the largest whose final "
                     "loss is below the initial loss)")
        if result.suggested_lr is not None:
            lines.append(f"suggested lr:      {result.suggested_lr:.4g} (where the final loss "
                         "falls fastest)")
    if result.diverged.any():
        first = lrs[result.diverged.argmax()]
        lines.append(f"diverged from lr {first:.4g} on ({int(result.diverged.sum())} of "
                     f"{len(lrs)})")
    return "\n".join(lines)


def write_csv(result: LrRange, path: str) -> None:
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lr", "final_loss", "diverged"])
        for lr, loss, diverged in zip(result.lrs.tolist(), result.final_loss.tolist(),
                                      result.diverged.tolist()):
            writer.writerow([repr(lr), repr(loss) if math.isfinite(loss) else "",
                             "true" if diverged else "false"])
