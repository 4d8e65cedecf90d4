"""The seed's 10,000 steps (or a race of 8 runs) through the window (offscreen) against the
headless engine.

For each round, in one process and interleaved: the headless engine (a Simulation on this
thread), then the window (press Play, wait for runFinished) while a 10 ms
QTimer measures how late the GUI thread answers. Prints the time ratio window/headless
(goal <= 1.25) and the lateness percentiles (goal: p99 under 30 ms).

With --race, the window races the 8-run Compare set of benchmarks/race.py on Rosenbrock at
full speed (goals: at least 20 redraws a second, GUI lateness p99 under 30 ms).

    QT_QPA_PLATFORM=offscreen python benchmarks/gui.py [--rounds 3] [--steps 10000] [--race]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDVIZ_SETTINGS_ORG", "gdviz-benchmark")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for race.COMPARE
from gdviz.core.presets import load_preset  # noqa: E402
from gdviz.core.simulation import Simulation  # noqa: E402


def headless(steps: int, session=None) -> float:
    sim = Simulation((session or load_preset("seed-linear")).with_changes(steps=steps))
    start = time.perf_counter()
    for _batch in sim.batches():
        pass
    return time.perf_counter() - start


def race_session(steps: int):
    from gdviz.core.session import RunRecord
    from race import COMPARE

    return load_preset("rosenbrock").with_changes(
        steps=steps, runs=[RunRecord(o, dict(h)) for o, h in COMPARE])


def windowed(window, steps: int) -> tuple[float, np.ndarray, dict]:
    """Seconds from Play to runFinished, and the 10 ms timer's lateness samples (ms)."""
    controller = window.controller
    controller.reset()
    window.problemPanel.stepsSpin.setValue(steps)
    window.controls.fullSpeedButton.click()  # the window opens at a watchable 2,000 steps/s
    loop = QEventLoop()
    result: dict = {}
    lateness: list[float] = []
    clock = QElapsedTimer()
    probe = QTimer(interval=10)
    probe.setTimerType(Qt.TimerType.PreciseTimer)

    def on_probe() -> None:
        elapsed = clock.nsecsElapsed() / 1e6
        lateness.append(max(0.0, elapsed - 10.0))
        clock.restart()

    def on_finished(summary: dict) -> None:
        result.update(summary)
        result["t"] = time.perf_counter()
        loop.quit()

    probe.timeout.connect(on_probe)
    window.runFinished.connect(on_finished)
    redraws = [0]
    real_redraw = window.pacer._redraw

    def counting_redraw() -> None:
        redraws[0] += 1
        real_redraw()

    window.pacer._redraw = counting_redraw
    QTimer.singleShot(200, loop.quit)  # let the reset settle
    loop.exec()
    clock.start()
    probe.start()
    start = time.perf_counter()
    window.controls.playButton.click()
    QTimer.singleShot(600_000, loop.quit)
    loop.exec()
    probe.stop()
    window.runFinished.disconnect(on_finished)
    window.pacer._redraw = real_redraw
    seconds = result.get("t", time.perf_counter()) - start
    result["redraws_per_s"] = redraws[0] / seconds
    return seconds, np.array(lateness), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--race", action="store_true", help="race the 8-run Compare set")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True)  # as gdviz.qt.app sets it: the app's real cost
    from gdviz.qt import MainWindow

    session = race_session(args.steps) if args.race else load_preset("seed-linear")
    window = MainWindow(session)
    window.show()
    torch.set_num_threads(1)
    deadline = time.perf_counter() + 30
    while window.controller.runset is None and time.perf_counter() < deadline:
        app.processEvents()  # the first problem is built on the training thread
    headless(500, session)
    ratios, p99s = [], []
    print(f"{args.steps} steps of the seed problem, torch {torch.__version__}, "
          f"platform {app.platformName()}")
    for r in range(args.rounds):
        h = headless(args.steps, session)
        w, late, summary = windowed(window, args.steps)
        x = summary.get("params", {}).get("X", summary.get("params", {}).get("a", [float("nan")]))
        x = x[0] if isinstance(x, list) else x
        ratios.append(w / h)
        p99s.append(float(np.percentile(late, 99)) if len(late) else float("nan"))
        print(f"round {r + 1}: headless {h:6.2f} s   window {w:6.2f} s   ratio {w / h:5.2f}   "
              f"GUI lateness p50 {np.percentile(late, 50):5.1f} ms  p99 {p99s[-1]:5.1f} ms  "
              f"max {late.max():5.1f} ms   {summary['redraws_per_s']:4.1f} redraws/s   "
              f"{'a' if args.race else 'X'} = {x:.4f}")
    print(f"median ratio window/headless: {statistics.median(ratios):.2f} (goal <= 1.25)")
    print(f"median GUI lateness p99: {statistics.median(p99s):.1f} ms (goal < 30 ms)")
    window.close()


if __name__ == "__main__":
    main()
