"""Fitting a line to N rows: gdviz's engine against a hand-written torch loop.

Both do the same work per step: the forward pass w*x + b over the data, the mean squared
error, one backward pass and a plain SGD update, full batch. The hand-written loop is what
an engineer would write; gdviz adds its history (w, b and their gradients every step), its
checks and its time-sliced batches. Interleaved in one process (loop, gdviz, loop, ...);
prints steps/s of each and the median ratio gdviz / loop (goal: 0.8 or better at N = 1e6),
then the peak memory of a long run over the data itself, each measured in a fresh process.

    python benchmarks/data_fit.py [--rows 1000 100000 1000000] [--steps 300] [--rounds 5]
                                  [--device cpu] [--memory-steps 10000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
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
    """This process's peak resident memory. On Linux its own memory's high-water mark:
    ru_maxrss also counts the parent's memory that a spawned child shared before exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(kind: str, rows: int, steps: int, device: str) -> None:
    """In a fresh process: the data, then nothing (``data``), the hand-written loop
    (``loop``) or gdviz (``gdviz``) for ``steps``; prints the process's peak RSS in MB."""
    data = make_data(rows)
    torch.zeros(1, device=device)  # torch's own start-up counts in every process alike
    if kind == "loop":
        hand_loop(data, steps, device)
    elif kind == "gdviz":
        gdviz_run(data, steps, device)
    print(f"{peak_rss_mb():.1f}")


def peak_of(kind: str, rows: int, steps: int, device: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(rows),
                          "--memory-steps", str(steps), "--device", device],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-steps", type=int, default=10_000)
    parser.add_argument("--child", choices=["data", "loop", "gdviz"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(args.child, args.rows[0], args.memory_steps, args.device)
        return
    for rows in args.rows if args.rounds else []:
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
        # each in a process of its own, so that no earlier round's peak hides this one's
        rows, steps = max(args.rows), args.memory_steps
        base = peak_of("data", rows, steps, args.device)
        loop = peak_of("loop", rows, steps, args.device)
        ours = peak_of("gdviz", rows, steps, args.device)
        print(f"peak memory over the data itself ({rows:,} rows loaded as float64, torch "
              f"started: {base:.0f} MB): a {steps:,}-step run of the hand-written loop "
              f"{loop - base:+.0f} MB, of gdviz {ours - base:+.0f} MB (goal under 100 MB)")


if __name__ == "__main__":
    main()
