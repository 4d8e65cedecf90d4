"""Step inspection: which recorded step of the selected run the window shows, and what the
optimizer did there.

The timeline's position lives here (a history row of the selected run, or None: live). For
that step this object asks the worker (the one thread that runs torch) for the update with
its numbers (:meth:`OptimizerTrace.explain`): at most one request is in flight and the
latest position wins, so dragging the slider never queues work. The answer is a
:class:`StepView` of plain arrays, which the update panel and the landscape's arrows draw.

"Restart from here" replays the optimizer state of the row shown (on the worker too) and
puts the run back there; "Check gradients" runs the gradient check at the point shown.

Nothing here imports torch at module level (the window paints before torch has loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from ..core.errors import GdvizError
from ..core.model import Run

if TYPE_CHECKING:
    from .controller import TrainingController


@dataclass
class StepView:
    """One update of the selected run, in plain arrays over every parameter column (NaN
    where a column is frozen): where it started, the vectors drawn as arrows (name ->
    vector) and the effective per-element rate (adaptive methods), with its explanation."""

    run_id: int
    row: int
    step: int
    point: np.ndarray
    loss: float = float("nan")
    arrows: dict[str, np.ndarray] = field(default_factory=dict)
    rates: np.ndarray | None = None        # lr / (sqrt(v-hat) + eps) and the like
    rates_name: str = ""
    explanation: Any = None                # core Explanation, or None (see note)
    note: str = ""
    names: list[str] = field(default_factory=list)  # the trainable elements' names


def state_arrow(rule: str) -> tuple[str, str] | None:
    """The state an update rule keeps as a direction: (its line's symbol, the arrow's name)."""
    if rule.startswith("adam"):
        return "m", "exp_avg −m"
    if rule == "momentum" or rule.endswith("-momentum"):
        return "b", "momentum buffer −b"
    return None


RATE_NAMES = {"adam": "exp_avg_sq: rate lr/(√v̂+ε)", "rmsprop": "square_avg: rate lr/(√s+ε)",
              "adagrad": "sum: rate lr/(√Σ+ε)"}


def _trace_key(run: Run) -> tuple:
    h, st = run.history, run.settings
    last = int(h.steps[-1]) if len(h) else -1
    return (run.id, len(h), last, h.stride, st.optimizer, repr(sorted(st.hypers.items())),
            repr(st.schedule), st.clip_norm)


def row_data(run: Run, row: int) -> tuple:
    """Copies of what :func:`step_view` needs of row ``row`` (read on the GUI thread, which
    owns the history): its step, point, gradient and the next point (None if not known)."""
    h = run.history
    step = int(h.steps[row])
    if row + 1 < len(h) and h.steps[row + 1] == step + 1:
        after = h.params[row + 1].copy()
    elif row == len(h) - 1 and run.step == step + 1:
        after = run.values.copy()
    else:
        after = None
    return (step, h.params[row].astype(np.float64), h.grads[row].astype(np.float64), after,
            float(h.loss[row]))


def step_view(trace, run_id: int, layout, row: int, data: tuple) -> StepView:
    """On the worker: the update at history row ``row`` (see StepView; ``data`` from
    :func:`row_data`)."""
    step, point, grad, after, loss = data
    cols = layout.trainable_columns
    n = layout.n_params

    def full(vec: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[cols] = vec
        return out

    view = StepView(run_id, row, step, point, loss, names=[layout.param_columns[c] for c in cols])
    view.arrows["−∇L"] = full(-grad)
    if after is not None:
        view.arrows["Δθ"] = np.asarray(after, dtype=np.float64) - point
    if trace is None:
        view.note = "the run is running: pause it to see the optimizer's state and the update"
        return view
    explanation = trace.explain(row) if trace.available(row) else None
    view.explanation = explanation
    if explanation is None:
        view.note = trace.why_not or "the optimizer's state at this step is not known"
        return view
    lines = {line.symbol: line for line in explanation.lines}
    found = state_arrow(explanation.rule)
    if found is not None and found[0] in lines:
        view.arrows[found[1]] = full(-lines[found[0]].values)
    family = next((k for k in RATE_NAMES if explanation.rule.startswith(k)), None)
    if family is not None:
        rates = lines["η"].values if "η" in lines else explanation.lr / lines["a"].values
        view.rates, view.rates_name = full(rates), RATE_NAMES[family]
    return view


class StepInspector(QObject):
    """See the module docstring."""

    rowChanged = Signal()               # the timeline moved (or snapped to live)
    stepExplained = Signal(object)      # StepView, or None (nothing to explain)
    gradCheckReady = Signal(object)     # core GradCheck
    gradCheckFailed = Signal(str)

    def __init__(self, controller: "TrainingController", parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.row: int | None = None
        self._wanted = False
        self._trace = None
        self._trace_key: tuple | None = None
        self._in_flight: tuple | None = None
        self._asked: tuple | None = None  # the latest (run, key, row) wanted
        self.shown: StepView | None = None
        self._cleared = False           # None was announced since the last StepView
        self._shown_ask: tuple | None = None  # what ``shown`` answers (None: not asked)

    @property
    def wanted(self) -> bool:
        """Someone shows the explanation (the arrows, the Update tab)."""
        return self._wanted

    @wanted.setter
    def wanted(self, on: bool) -> None:
        if on != self._wanted:
            self._wanted = on
            self._cleared = False  # a view that shows it now hears what there is to show

    # --- the position ------------------------------------------------------------------

    def set_row(self, row: int | None) -> None:
        """Show history row ``row`` of the selected run (None: live)."""
        run = self.controller.selected
        if row is not None and (run is None or not 0 <= row < len(run.history)):
            row = None
        if row != self.row:
            self.row = row
            self.rowChanged.emit()
        self.refresh()

    def go_live(self) -> None:
        self.set_row(None)

    def point(self) -> np.ndarray:
        """The parameters shown: the row's, or where the run stands."""
        run = self.controller.selected
        if run is None:
            return np.zeros(0)
        if self.row is None or self.row >= len(run.history) or not run.history.records_elements:
            return run.values
        return run.history.params[self.row]

    def explained_row(self) -> int | None:
        """The row whose update is explained: the one shown, or live the last recorded one
        (the update that brought the run where it stands)."""
        run = self.controller.selected
        if run is None or not len(run.history) or not run.history.records_elements:
            return None
        return self.row if self.row is not None else len(run.history) - 1

    # --- the explanation, on the worker --------------------------------------------------

    def _trace_for(self, run: Run):
        key = _trace_key(run)
        if key != self._trace_key:
            from ..core.analysis.trace import OptimizerTrace  # torch is loaded by now

            self._trace = OptimizerTrace(run.settings, run.history, self.controller.runset.steps)
            self._trace_key = key
        return self._trace

    def refresh(self) -> None:
        """Ask for the explanation of the row shown, if anyone shows it. While the run
        runs, only what the history holds is shown (the gradient and the update: plain
        arrays, here), without asking the worker."""
        c = self.controller
        run = c.selected
        row = self.explained_row()
        if not self.wanted or run is None or row is None:
            self._asked = self._shown_ask = None
            if self.shown is not None or not self._cleared:
                self.shown, self._cleared = None, True
                self.stepExplained.emit(None)
            return
        self._cleared = False
        if c.running:
            self._asked = self._shown_ask = None
            if self.shown is None or self.shown.run_id != run.id or self.shown.row != row:
                self.shown = step_view(None, run.id, run.history.layout, row, row_data(run, row))
                self.stepExplained.emit(self.shown)
            return
        ask = (run.id, _trace_key(run), row)
        if ask == self._shown_ask:
            return
        self._asked = ask
        if self._in_flight is None:
            self._send(run, row)

    def _send(self, run: Run, row: int) -> None:
        trace = self._trace_for(run)
        ask = (run.id, self._trace_key, row)
        self._in_flight = ask
        generation = self.controller.generation
        data, layout = row_data(run, row), run.history.layout
        self.controller.request(lambda _w: step_view(trace, run.id, layout, row, data),
                                lambda view: self._on_answer(ask, generation, view),
                                lambda error: self._on_answer(ask, generation, None, error))

    def _on_answer(self, ask: tuple, generation: int, view: StepView | None,
                   error: GdvizError | None = None) -> None:
        self._in_flight = None
        if error is not None and ask == self._asked:
            self._shown_ask = ask  # not asked again: one message is enough
            self.controller.message.emit(f"Cannot explain the step: {error}")
        elif ask == self._asked and generation == self.controller.generation:
            self.shown, self._shown_ask = view, ask
            self.stepExplained.emit(view)
            return
        self.refresh()  # the position moved on meanwhile: the latest one wins

    # --- restart from here --------------------------------------------------------------

    def restart_here(self, branch: bool = False) -> None:
        """Put the selected run back at the row shown, with its optimizer state where it
        can be replayed (the status bar says when it cannot); with ``branch``, a new run
        starts there instead and the selected one stays as it is ("Branch from here")."""
        c = self.controller
        run, row = c.selected, self.row
        if run is None or row is None or c.running:
            c.message.emit("Pause and scrub back on the timeline first: the run restarts "
                           "from the step shown.")
            return
        if not run.history.records_elements:
            c.message.emit("This problem is too large to record each step's parameters, so "
                           "it cannot restart from an earlier step.")
            return
        trace = self._trace_for(run)
        generation = c.generation

        def done(state) -> None:
            if generation != c.generation or c.selected is not run or row >= len(run.history):
                return
            step = int(run.history.steps[row])
            target = c.fork_run(run.id).id if branch else run.id  # the fork is selected
            c.restart_run(target, row, state, remember=not branch)
            self.row = None
            self.rowChanged.emit()
            how = "with the optimizer's state it had there" if state is not None or step == 0 \
                else f"with a fresh optimizer state ({trace.why_not or 'not replayable'})"
            c.message.emit(f"Branched from step {step:,} {how}: change its settings, then press "
                           "Play to compare." if branch else
                           f"Restarted from step {step:,} {how}. Ctrl+Z brings the later "
                           "steps back.")

        c.request(lambda _w: trace.row_state(row), done)

    # --- gradient check -----------------------------------------------------------------

    def check_gradients(self) -> None:
        """Finite differences against autograd at the point shown (on the worker)."""
        c = self.controller
        point = np.array(self.point(), dtype=np.float64, copy=True)
        generation = c.generation

        def compute(w):
            from ..core.analysis.gradcheck import check_gradients

            if w.generation != generation or w.problem is None:
                return None
            return check_gradients(w.problem, point)

        c.request(compute, lambda result: result is not None and self.gradCheckReady.emit(result),
                  lambda error: self.gradCheckFailed.emit(str(error)))
