"""How long capturing and laying out a computation graph takes, by size.

Builds long sums of terms (sin(k*x) per term, about two nodes each) so the graphs have
about 50, 200 and 500 nodes, then times capture_graph (forward, backward with hooks) and
layout_graph (grandalf's Sugiyama layout, which the window runs off the GUI thread).

    python benchmarks/graph_layout.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from gdviz.core.graph import layout_graph
from gdviz.core.graph_capture import capture_graph
from gdviz.core.problem import ParamSpec, Problem


def problem_with_terms(terms: int) -> Problem:
    text = " + ".join(f"sin({k}*x)" for k in range(1, terms + 1))
    return Problem(text, "y", {"x": ParamSpec("0.5")})


def main() -> None:
    print(f"{'nodes':>6} {'edges':>6} {'capture ms':>11} {'layout ms':>10}")
    for terms in (12, 50, 125, 250):
        problem = problem_with_terms(terms)
        captures, layouts = [], []
        for _ in range(3):
            start = time.perf_counter()
            graph = capture_graph(problem, {"x": np.array(0.5)})
            captures.append(time.perf_counter() - start)
            start = time.perf_counter()
            layout_graph(graph)
            layouts.append(time.perf_counter() - start)
        print(f"{len(graph.nodes):6d} {len(graph.edges):6d} {statistics.median(captures) * 1e3:11.1f} "
              f"{statistics.median(layouts) * 1e3:10.1f}")


if __name__ == "__main__":
    main()
