"""A basin map costs what a hand-written batched torch loop costs, not N runs.

The reference: every start of the grid as one (N, 2) tensor, Rosenbrock written out in torch,
``torch.optim.Adam`` (lr 0.01), 500 steps: the least a batched map can cost. Against it,
``gdviz.core.analysis.basin.basin_map`` for the same grid, optimizer and steps: the compiled
loss, gdviz's own batched update, stop conditions tracked per step, ends grouped into basins.
Interleaved round by round (so machine noise hits both alike); goal: at most 2x.

    python benchmarks/basin.py [--rounds 3] [--grids 200 400] [--threads 2]

On a 2-core machine keep the other core idle: torch's 2 intra-op threads stall badly when
it is busy (see DESIGN.md), and then both timings mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from gdviz.core.analysis.basin import basin_map, grid_starts
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.presets import load_preset

STEPS = 500
LR = 0.01


def reference(starts: np.ndarray) -> float:
    """The hand-written loop: one (N, 2) tensor, torch.optim.Adam."""
    x = torch.tensor(starts, dtype=torch.float32, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=LR)
    began = time.perf_counter()
    for _ in range(STEPS):
        optimizer.zero_grad()
        a, b = x[:, 0], x[:, 1]
        loss = ((1 - a) ** 2 + 100 * (b - a ** 2) ** 2).sum()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - began


def gdviz_map(problem, session, grid: int) -> float:
    began = time.perf_counter()
    basin_map(problem, "adam", normalize_hypers("adam", {"lr": LR}), STEPS, None,
              session.landscape["x"], session.landscape["y"], grid)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grids", type=int, nargs="+", default=[200, 400])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    session = load_preset("rosenbrock")
    problem = session.build_problem()
    print(f"Rosenbrock, Adam lr {LR}, {STEPS} steps from every start; torch {torch.__version__}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cores")
    if args.threads > 1 and os.getloadavg()[0] > 0.5:
        print("warning: the machine is busy; with more than one thread a round can stall "
              "(tens of seconds) and the ratios mean little; --threads 1 is steadier")
    for grid in args.grids:
        _, _, starts = grid_starts(session.landscape["x"], session.landscape["y"], grid)
        reference(starts[:1000]), gdviz_map(problem, session, 20)  # warm up
        ratios = []
        for r in range(args.rounds):
            ref = reference(starts)
            ours = gdviz_map(problem, session, grid)
            ratios.append(ours / ref)
            print(f"{grid} x {grid} round {r + 1}: loop {ref:6.3f} s   gdviz {ours:6.3f} s   "
                  f"({ours / ref:4.2f}x)")
        print(f"{grid} x {grid}: median {statistics.median(ratios):.2f}x the hand-written loop "
              f"(goal <= 2)")


if __name__ == "__main__":
    main()
