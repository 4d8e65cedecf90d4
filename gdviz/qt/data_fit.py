"""Keeps the data view up to date with the runs while they train.

The model of every visible run is evaluated on the worker (the one thread that touches
torch: :func:`gdviz.core.analysis.fit.fit_picture`), at most one request at a time; when
the runs moved meanwhile, the latest values are asked for next, so a fast run never
queues work behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject

from ..core.errors import GdvizError
from .data_view import DataView

if TYPE_CHECKING:
    from .controller import TrainingController
    from .worker import EngineWorker


class DataFit(QObject):
    """Asks for the data view's picture when the runs have moved (``refresh``)."""

    def __init__(self, controller: "TrainingController", view: DataView,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.controller, self.view = controller, view
        self._in_flight = False
        self._again = False
        self._shown: tuple | None = None

    def reset(self) -> None:
        """A new problem: nothing of the old picture is kept."""
        self._shown = None
        info = self.controller.info
        self.view.clear("" if info is not None and info.data is not None else
                        "There is no data: open a CSV file (File > Open data…).")

    def _runs(self) -> tuple[list, np.ndarray, int]:
        """The runs drawn (the visible ones, else the selected), their values, the selected."""
        runset = self.controller.runset
        runs = runset.visible() or [runset.selected]
        return runs, np.stack([np.asarray(r.values, dtype=np.float64) for r in runs]), \
            runset.selected_id

    def picture_now(self):
        """Compute and draw the picture now (for an export): (FitPicture, its runs)."""
        c = self.controller
        if c.runset is None or c.info is None or c.info.data is None:
            raise GdvizError("there is no data to draw: open a CSV file (File > Open data…)")
        runs, rows, selected = self._runs()

        def compute(w: "EngineWorker"):
            from ..core.analysis.fit import fit_picture
            return fit_picture(w.problem, rows)

        picture = c.worker.call(compute)
        self.view.show_picture(picture, runs, selected)
        self._shown = None  # the next refresh draws the live picture again
        return picture, runs

    def refresh(self) -> None:
        c = self.controller
        if c.runset is None or c.info is None or c.info.data is None:
            return
        runs, rows, selected = self._runs()
        key = (c.generation, tuple(r.id for r in runs), selected, rows.tobytes())
        if key == self._shown:
            return
        if self._in_flight:
            self._again = True  # asked for once the answer in flight has come
            return
        self._in_flight = True
        generation = c.generation

        def compute(w: "EngineWorker"):
            from ..core.analysis.fit import fit_picture

            if w.generation != generation or w.problem is None:
                return None
            return fit_picture(w.problem, rows)

        def done(picture) -> None:
            if picture is not None and generation == c.generation:
                self._shown = key
                self.view.show_picture(picture, runs, selected)
            self._finish()

        def failed(error) -> None:
            self._shown = key  # not asked again until the runs move
            self.view.show_reason(f"Cannot draw the fit: {error}")
            self._finish()

        c.request(compute, done, failed)

    def _finish(self) -> None:
        self._in_flight = False
        if self._again:
            self._again = False
            self.refresh()
