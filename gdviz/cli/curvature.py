"""``gdviz curvature``: the Hessian's eigenvalues at a point and the learning rates beyond
which descent is unstable there."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from ..core import jsonsafe
from ..core.analysis.curvature import DEFAULT_TOP, Curvature, hessian_at, stability_limits
from ..core.errors import GdvizError
from ..core.problem import Problem
from ..core.session import Session
from .basin import session_start
from .options import EXIT_OK, add_problem_options, session_from_args
from .output import tensor_text


def add_parser(sub) -> None:
    p = sub.add_parser("curvature", help="the Hessian's eigenvalues and stable learning rates "
                       "at a point (--param a=1 --param b=1; with --session, where its run "
                       "stands)")
    add_problem_options(p, save=False)
    p.add_argument("--momentum", type=float, default=0.9,
                   help="momentum for the heavy-ball limit, 0 to below 1 (default 0.9)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP,
                   help=f"eigenvalues estimated (Lanczos) when there are too many elements "
                   f"for the exact Hessian, 1 to 100 (default {DEFAULT_TOP})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if not 0 <= args.momentum < 1:
        raise GdvizError(f"--momentum must be at least 0 and below 1, got {args.momentum:g}")
    if not 1 <= args.top <= 100:
        raise GdvizError("--top must be 1 to 100")
    session = session_from_args(args, optimizer_flags=False)
    problem = session.build_problem()
    curvature = hessian_at(problem, current_point(session, problem), top=args.top)
    if args.json:
        print(json.dumps(jsonsafe.plain(curvature.summary(args.momentum))))
    else:
        print(summary_text(curvature, args.momentum))
    return EXIT_OK


def current_point(session: Session, problem: Problem) -> np.ndarray:
    """Where the selected run stands: its saved values in a session file that has them, else
    its start (the initial values, which --param sets)."""
    point = session_start(session, problem)
    values = session.run.values
    if values:
        for name, sl in problem.layout.param_slices.items():
            if name in values:
                point[sl] = np.asarray(values[name], dtype=np.float64).reshape(-1)
    return point


def _number(value: float | None) -> str:
    if value is None:
        return "unknown (only the top eigenvalues are estimated)"
    return f"{value:.6g}" if math.isfinite(value) else "infinite"


def summary_text(c: Curvature, momentum: float) -> str:
    limits = stability_limits(c.eigenvalues, momentum)
    what = "eigenvalues" if c.exact else f"top {len(c.eigenvalues)} eigenvalues (Lanczos)"
    lines = [f"Hessian over {', '.join(c.columns[:8])}{', ...' if len(c.columns) > 8 else ''}"]
    if c.hessian is not None and len(c.columns) <= 6:
        lines.append("  " + tensor_text(c.hessian, 2))
    lines.append(f"{what}: {tensor_text(np.asarray(c.eigenvalues), len(what) + 2)}")
    lines.append(f"condition number: {_number(c.condition_number)}")
    if c.lambda_max > 0:
        lines.append(f"stable learning rates: below {_number(limits['lr_limit_sgd'])} for "
                     f"plain gradient descent, below {_number(limits['lr_limit_momentum'])} "
                     f"with momentum {momentum:g}")
    else:
        lines.append("no direction curves up here (a maximum, or flat): gradient descent "
                     "moves away from this point at any learning rate, and none oscillates")
    return "\n".join(lines)
