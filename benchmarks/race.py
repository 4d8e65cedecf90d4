"""Racing runs cost one batched step, not N: time per lock step of a race over a single run.

In one process, interleaved round by round (so machine noise hits all alike):

- the Compare set (SGD, momentum, Nesterov, RMSprop, Adam, AdamW, and SGD and momentum
  again: 8 runs, 5 update rules) on Rosenbrock, against one run of the same problem
  (Adam, as the preset has it) — goal: at most 1.5x;
- a 256-run learning-rate sweep of SGD on Rosenbrock, against one run — goal: at most 4x;
- for scale, the 8 runs one after another (what racing replaces).

    python benchmarks/race.py [--rounds 5] [--steps 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gdviz.core.presets import load_preset
from gdviz.core.session import RunRecord
from gdviz.core.simulation import Simulation

COMPARE = [("sgd", {"lr": 1e-3}), ("sgd", {"lr": 1e-3, "momentum": 0.9}),
           ("sgd", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}), ("rmsprop", {"lr": 0.02}),
           ("adam", {"lr": 0.02}), ("adamw", {"lr": 0.02}), ("sgd", {"lr": 5e-4}),
           ("sgd", {"lr": 5e-4, "momentum": 0.8})]


def seconds_per_step(runs: list[tuple[str, dict]], steps: int) -> float:
    session = load_preset("rosenbrock").with_changes(
        steps=steps, runs=[RunRecord(o, dict(h)) for o, h in runs])
    sim = Simulation(session, max_batch_s=0.1)
    start = time.perf_counter()
    for _batch in sim.batches():
        pass
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    single = [("adam", {"lr": 0.02})]
    sweep = [("sgd", {"lr": float(lr)}) for lr in np.geomspace(1e-5, 1e-2, 256)]
    seconds_per_step(single, 200), seconds_per_step(COMPARE, 200)  # warm up
    race_ratio, sweep_ratio, serial_ratio = [], [], []
    print(f"Rosenbrock, {args.steps} lock steps per race, torch {torch.__version__}, 1 thread")
    for r in range(args.rounds):
        one = seconds_per_step(single, args.steps)
        eight = seconds_per_step(COMPARE, args.steps)
        many = seconds_per_step(sweep, args.steps)
        serial = sum(seconds_per_step([run], args.steps // 4) for run in COMPARE)
        race_ratio.append(eight / one)
        sweep_ratio.append(many / one)
        serial_ratio.append(serial / eight)
        print(f"round {r + 1}: 1 run {one * 1e6:6.0f} us   8 runs {eight * 1e6:6.0f} us "
              f"({eight / one:4.2f}x)   256-run sweep {many * 1e6:6.0f} us ({many / one:4.2f}x)   "
              f"8 runs one after another {serial * 1e6:6.0f} us")
    print(f"median: 8-run race {statistics.median(race_ratio):.2f}x a single run (goal <= 1.5), "
          f"256-run sweep {statistics.median(sweep_ratio):.2f}x (goal <= 4); racing is "
          f"{statistics.median(serial_ratio):.1f}x faster than running the 8 one after another")


if __name__ == "__main__":
    main()
