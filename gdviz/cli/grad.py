"""``gdviz grad``: one forward and backward pass at the initial values."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ..core import jsonsafe
from ..core.analysis.gradcheck import GradCheck, check_gradients
from ..core.device import resolve_device
from .options import EXIT_OK, add_problem_options, save_session, session_from_args

EXIT_CHECK_FAILED = 1
from .output import tensor_text


def add_parser(sub) -> None:
    p = sub.add_parser("grad", help="one forward and backward pass at the initial values")
    add_problem_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--check", action="store_true", help="also compare autograd's gradient with "
                   "finite differences, element by element (double precision); kinks (abs, "
                   "relu, clamp at the point) are flagged. Exit status 1 when a smooth element "
                   "disagrees")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    session = session_from_args(args, optimizer_flags=False)
    problem = session.build_problem()
    device = resolve_device(session.device)
    values = {n: t.clone().to(device).requires_grad_(n not in problem.frozen)
              for n, t in problem.initial.items()}
    y, loss = problem.forward(values)
    trainable = [values[n] for n in problem.trainable]
    found = torch.autograd.grad(loss, trainable, allow_unused=True, materialize_grads=True) \
        if loss.requires_grad else [torch.zeros_like(t) for t in trainable]
    grads = dict.fromkeys(problem.names)
    grads.update(zip(problem.trainable, found))
    report = jsonsafe.plain({
        "y": _nested(y), "loss": _nested(loss),
        "params": {n: _nested(v) for n, v in values.items()},
        "grads": {n: (None if g is None else _nested(g)) for n, g in grads.items()},
        "grad_fn": type(y.grad_fn).__name__ if y.grad_fn is not None else None,
        "loss_summed": problem.loss_summed,
    })
    check = check_gradients(problem) if args.check else None
    if check is not None:
        report["check"] = jsonsafe.plain(check.to_dict())
    if args.save_session:
        save_session(session, args)
    status = EXIT_OK if check is None or check.passed else EXIT_CHECK_FAILED
    if args.json:
        print(json.dumps(report))
        return status
    print(f"y = {tensor_text(y, 4)}" + (f"   (grad_fn={report['grad_fn']})" if report["grad_fn"] else ""))
    print(f"loss = {float(loss.detach()):.6g}" + ("   (the loss expression is not a single "
                                                "number, so its elements are summed)"
                                                if problem.loss_summed else ""))
    for name, value in values.items():
        g = grads[name]
        print(f"{name} = {tensor_text(value, len(name) + 3)}")
        prefix = f"  grad {name} = "
        print(prefix + ("none (frozen)" if g is None else tensor_text(g, len(prefix))))
    if check is not None:
        print()
        print(check_table(check))
    return status


def check_table(check: GradCheck, rows: int = 40) -> str:
    """The gradient check as a text table (the first ``rows`` elements, failures first)."""
    ordered = sorted(check.elements, key=lambda e: (e.ok, not e.kink))
    width = max([len(e.label) for e in ordered[:rows]] + [7])
    lines = [f"{'element':<{width}}  {'autograd':>13}  {'finite diff':>13}  {'rel error':>9}  note"]
    for e in ordered[:rows]:
        note = ("kink: left {:.6g}, right {:.6g}".format(e.left, e.right) if e.kink
                else "" if e.ok else "DISAGREES")
        lines.append(f"{e.label:<{width}}  {e.autograd:>13.6g}  {e.numeric:>13.6g}  "
                     f"{e.rel_error:>9.1e}  {note}".rstrip())
    if len(ordered) > rows:
        lines.append(f"... and {len(ordered) - rows} more")
    lines.append(f"gradient check: {check.summary()}")
    return "\n".join(lines)


def _nested(tensor: torch.Tensor):
    return np.asarray(tensor.detach().cpu().to(torch.float64)).tolist()
