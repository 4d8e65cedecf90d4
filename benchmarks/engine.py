"""Steps per second of gdviz's engine (with full history) against the seed notebook's loop.

Both solve X + 1 = 3 with lr 1e-3 for 10,000 steps, in this one process, interleaved
(notebook, engine, notebook, engine, ...) so that machine noise hits both alike. Prints each
round and the median ratio engine / notebook (goal: 0.9 or better).

The engine runs the loss twice, typed two ways:
- "(3 - y)*(3 - y) / 2": the notebook's own operations (diff * diff), so the ratio measures
  only what gdviz adds (the expression interpreter, full history, the checks);
- "(3 - y)**2 / 2": the issue's example; pow has a heavier backward than mul, so this ratio
  also includes a difference in the maths the user typed.

    python benchmarks/engine.py [--rounds 5] [--steps 10000] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gdviz.core.params import ParamSpec
from gdviz.core.session import Session
from gdviz.core.simulation import Simulation


def notebook_loop(steps: int, device: str) -> float:
    """The seed notebook's exact code (gradient-in-pytorch.txt), timed."""
    X = torch.rand(1, requires_grad=True, device=device)

    def mse(Y):
        diff = 3.0 - Y
        return (diff * diff).sum() / 2

    learning_rate = 1e-3
    start = time.perf_counter()
    for i in range(0, steps):
        Y = X + 1.0
        loss = mse(Y)
        loss.backward()
        with torch.no_grad():
            X -= learning_rate * X.grad
            X.grad.zero_()
    if device != "cpu":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


LOSSES = ("(3 - y)*(3 - y) / 2", "(3 - y)**2 / 2")


def engine(steps: int, device: str, loss: str = LOSSES[0]) -> float:
    """gdviz's engine (a set of one run) with full history, as ``gdviz run`` drives it."""
    session = Session(function="X + 1", loss=loss, params={"X": ParamSpec("rand(1)")},
                      steps=steps, device=device)
    session.runs[0].hypers = {"lr": 1e-3}
    sim = Simulation(session, max_batch_s=0.1)
    start = time.perf_counter()
    for _batch in sim.batches():
        pass
    rate = steps / (time.perf_counter() - start)
    run = sim.runset.runs[0]
    assert len(run.history) == steps
    if steps == 10_000:  # the seed's answer
        assert f"{run.values[0]:.4f}" == "1.9999"
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    notebook_loop(500, args.device), engine(500, args.device)  # warm up both
    ratios: dict[str, list[float]] = {loss: [] for loss in LOSSES}
    print(f"device {args.device}, {args.steps} steps per run, torch {torch.__version__}")
    for r in range(args.rounds):
        for loss in LOSSES:
            if r % 2:  # alternate who goes first, so neither always gets the warmer cache
                en = engine(args.steps, args.device, loss)
                nb = notebook_loop(args.steps, args.device)
            else:
                nb = notebook_loop(args.steps, args.device)
                en = engine(args.steps, args.device, loss)
            ratios[loss].append(en / nb)
            print(f"round {r + 1}: notebook {nb:6.0f} steps/s   engine {en:6.0f} steps/s   "
                  f"ratio {en / nb:.3f}   loss {loss}")
    for loss in LOSSES:
        print(f"median ratio engine/notebook, loss {loss!r}: "
              f"{statistics.median(ratios[loss]):.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
