"""``gdviz graph``: the computation graph at the initial values (or a session's point)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..core.errors import GdvizError
from .options import EXIT_OK, add_problem_options, session_from_args
from .output import check_writable, shown_path


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="the computation graph at the initial values")
    add_problem_options(p, save=False)
    p.add_argument("--out", metavar="FILE", help="write the graph: .svg or .png (the window's "
                   "drawing), .json (nodes and edges) or .dot (Graphviz)")
    p.add_argument("--scale", type=float, default=2.0, help="PNG scale factor (default 2)")
    p.add_argument("--unfold", action="store_true", help="draw every term of a long sum (by "
                   "default 8 or more alike terms are folded into one box)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ..core.graph import layout_graph, node_lines, save_graph_text
    from ..core.graph_capture import capture_graph

    session = session_from_args(args, optimizer_flags=False)
    problem = session.build_problem()
    values = {n: t.numpy() for n, t in problem.initial.items()}
    run = session.run
    if run.values is not None:
        values.update({n: np.asarray(v) for n, v in run.values.items() if n in values})
    graph = capture_graph(problem, values)
    if not args.out:
        layout_graph(graph)
        for node in graph.nodes:
            print(f"[{node.id}] {node.kind:8s} " + " | ".join(node_lines(node)))
        for edge in graph.edges:
            print(f"  {edge.source} -> {edge.target}")
        return EXIT_OK
    check_writable(args.out)
    suffix = Path(args.out).suffix.lower()
    if suffix in (".svg", ".png"):
        if not 0 < args.scale <= 16:
            raise GdvizError("--scale must be more than 0 and at most 16")
        from ..core import interrupt

        # Ctrl-C waits: inside Qt's start-up or painting it could crash the process
        with interrupt.deferred_interrupt():
            from ..qt.graph_view import save_graph
            from ..qt.offscreen import ensure_app

            ensure_app()
            save_graph(graph, args.out, args.scale, fold=not args.unfold)
        drawn = graph.without_constants()
        folded = sum(n.kind == "repeat" for n in drawn.collapsed().nodes) if not args.unfold else 0
        note = f"; drawn with long sums folded into {folded} box{'es' * (folded != 1)}, " \
            "--unfold draws every node" if folded else ""
    else:
        save_graph_text(graph, args.out)  # .json or .dot, without Qt: every node
        note = ""
    print(f"wrote {shown_path(args.out)} ({len(graph.nodes)} nodes, {len(graph.edges)} edges"
          f"{note})")
    return EXIT_OK
