"""Fitting a line to N rows: gdviz's engine against a hand-written torch loop.

Both do the same work per step: the forward pass w*x + b over the data, the mean squared
error, one backward pass and a plain SGD update, full batch. The hand-written loop is what
an engineer would write; gdviz adds its history (w, b and their gradients every step), its
checks and its time-sliced batches. Interleaved in one process (loop, gdviz, loop, ...);
prints steps/s of each and the median ratio gdviz / loop (goal: 0.8 or better at N = 1e6),
then the peak memory of a long run over the data itself.

    python benchmarks/data_fit.py [--rows 1000 100000 1000000] [--steps 300] [--rounds 5]
                                  [--device cpu] [--memory-steps 10000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch

from gdviz.core.data import Dataset
from gdviz.core.params import ParamSpec
from gdviz.core.problem import Problem
from gdviz.core.engine import Engine
from gdviz.core.model import RunSet, RunSettings


def make_data(rows: int) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, rows)
    return Dataset({"x": x, "t": 2.5 * x - 1 + rng.normal(0, 0.5, rows)}, "synthetic")


def hand_loop(data: Dataset, steps: int, device: str) -> float:
    x = torch.as_tensor(data.columns["x"], dtype=torch.float32, device=device)
    t = torch.as_tensor(data.columns["t"], dtype=torch.float32, device=device)
    w = torch.zeros((), device=device, requires_grad=True)
    b = torch.zeros((), device=device, requires_grad=True)
    start = time.perf_counter()
    for _ in range(steps):
        loss = ((w * x + b - t) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w -= 0.05 * w.grad
            b -= 0.05 * b.grad
            w.grad = None
            b.grad = None
    if device != "cpu":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def gdviz_run(data: Dataset, steps: int, device: str) -> float:
    problem = Problem("w*x + b", "mse(y, t)", {"w": ParamSpec("0"), "b": ParamSpec("0")},
                      data=data)
    runset = RunSet(problem.layout, problem.initial_flat(), steps)
    runset.add(RunSettings("sgd", {"lr": 0.05}))
    engine = Engine(problem, device, steps, max_batch_s=0.1)
    for run in runset.engine_runs():
        engine.add_run(run)
    start = time.perf_counter()
    for batch in engine.run():
        runset.apply(batch)
    return steps / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-steps", type=int, default=10_000)
    args = parser.parse_args()
    for rows in args.rows:
        data = make_data(rows)
        ratios = []
        for k in range(args.rounds):
            loop = hand_loop(data, args.steps, args.device)
            ours = gdviz_run(data, args.steps, args.device)
            ratios.append(ours / loop)
            print(f"N={rows:>9,} round {k + 1}: loop {loop:8.1f} steps/s, gdviz {ours:8.1f} "
                  f"steps/s, ratio {ours / loop:.2f}")
        print(f"N={rows:>9,} median ratio gdviz / hand-written loop: "
              f"{statistics.median(ratios):.2f}")
    if args.memory_steps:
        data = make_data(max(args.rows))
        before = peak_rss_mb()
        gdviz_run(data, args.memory_steps, args.device)
        print(f"peak memory of a {args.memory_steps:,}-step run on {max(args.rows):,} rows: "
              f"{peak_rss_mb() - before:+.0f} MB over the peak before it (the data itself is "
              f"{data.rows * 8 * 2 / 1e6:.0f} MB as float64, {data.rows * 4 * 2 / 1e6:.0f} MB "
              "as float32 tensors)")


if __name__ == "__main__":
    main()
