"""Redraw pacing: at most about 30 redraws a second, fewer when frames are expensive.

The GUI thread shares the GIL with training: a frame (redraw and paint) may take at most
``GUI_SHARE`` of the time, so expensive frames come less often (down to MAX_REDRAW_MS).
"""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QObject, QTimer

from .plot_style import GUI_CLOCK

REDRAW_MS = 33
#: A third: 20 redraws a second of a race of eight runs (a frame of about 16 ms, most of
#: its painting in C++, see plot_style.FastCurve). At 0.15 the race was drawn 7 times a
#: second; the price is paid by training at full speed (benchmarks/gui.py measures both).
GUI_SHARE = 0.35
MAX_REDRAW_MS = 150


class RedrawPacer(QObject):
    """Calls ``redraw()`` on a timer when something changed (``mark_dirty``), spacing the
    calls so that drawing and painting stay near GUI_SHARE of the GUI thread's time."""

    def __init__(self, redraw: Callable[[], None], parent: QObject | None = None):
        super().__init__(parent)
        self._redraw = redraw
        self.dirty = False
        self._frame_cost: float | None = None
        self._frame_ema: float | None = None  # typical seconds of GUI work per frame
        self.timer = QTimer(self, interval=REDRAW_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.timer.start()

    def mark_dirty(self, *_args) -> None:
        self.dirty = True

    def stop(self) -> None:
        self.timer.stop()

    def _on_timer_timeout(self) -> None:
        painted = GUI_CLOCK.take()  # the paint that followed the previous frame
        if self._frame_cost is not None:
            cost = self._frame_cost + painted
            if self._frame_ema is not None:
                cost = min(cost, 3 * self._frame_ema)  # one slow frame (a relayout) is no trend
            self._frame_ema = cost if self._frame_ema is None else 0.8 * self._frame_ema + 0.2 * cost
            interval = min(MAX_REDRAW_MS, max(REDRAW_MS, 1000 * self._frame_ema / GUI_SHARE))
            self.timer.setInterval(int(interval))
            self._frame_cost = None
        if not self.dirty:
            return
        self.dirty = False
        start = time.perf_counter()
        self._redraw()
        self._frame_cost = time.perf_counter() - start
