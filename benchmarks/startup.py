"""How soon the window is on screen: time to first paint and to ready, against Qt alone.

Each round starts fresh Python processes (what a user's launch costs, interpreter start
included), interleaved:

- Qt alone: import PySide6, show an empty window, stop at its first paint;
- gdviz: import the app, show the main window, note its first paint (the window can be
  typed in from then on: torch loads on the training thread meanwhile) and when the first
  problem is built and ready to Play.

Prints the medians (goal: gdviz paints within 1 second of launch).

    QT_QPA_PLATFORM=offscreen python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

QT_ALONE = r"""
import time, json
t0 = time.perf_counter()
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
w = QWidget(); w.resize(1400, 860)
out = {}
class Probe(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and "paint" not in out:
            out["paint"] = time.perf_counter() - t0
            QTimer.singleShot(0, app.quit)
        return False
p = Probe(); w.installEventFilter(p); w.show()
app.exec()
print(json.dumps(out))
"""

GDVIZ = r"""
import time, json, sys
t0 = time.perf_counter()
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from gdviz.qt.main_window import MainWindow
out = {}
w = MainWindow()
class Probe(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and "paint" not in out:
            out["paint"] = time.perf_counter() - t0
            out["torch_loaded_at_paint"] = "torch" in sys.modules
        return False
def ready():
    out["ready"] = time.perf_counter() - t0
    QTimer.singleShot(0, app.quit)
p = Probe(); w.installEventFilter(p)
w.controller.problemLoaded.connect(ready)
w.show()
QTimer.singleShot(60_000, app.quit)
app.exec()
w.close()
print(json.dumps(out))
"""


def measure(code: str) -> dict:
    env = dict(os.environ, GDVIZ_SETTINGS_ORG="gdviz-startup-benchmark")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the probe failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    qt, paint, ready = [], [], []
    for r in range(args.rounds):
        a = measure(QT_ALONE)["paint"]
        b = measure(GDVIZ)
        qt.append(a)
        paint.append(b["paint"])
        ready.append(b["ready"])
        print(f"round {r + 1}: Qt alone paints at {a:5.2f} s   gdviz paints at {b['paint']:5.2f} s "
              f"(torch loaded then: {b['torch_loaded_at_paint']})   ready at {b['ready']:5.2f} s")
    print(f"median: Qt alone {statistics.median(qt):.2f} s, gdviz first paint "
          f"{statistics.median(paint):.2f} s (goal <= 1 s), ready for Play "
          f"{statistics.median(ready):.2f} s")


if __name__ == "__main__":
    main()
