"""A run's optimizer state at any recorded step, by replaying its updates.

The history keeps, for every step, the point and the gradient there; the engine's update is
deterministic. So the state after k updates (torch's momentum buffer, exp_avg...) is found
by applying the run's update rule (:class:`~gdviz.core.updates.UpdateGroup`, the engine's
own code, so the numbers are the engine's to the bit) to the recorded gradients from step
0. Each replayed update is checked against the next recorded point: where they part (the
learning rate was changed during the run, the run was forked from another optimizer, the
history was loaded from a file written differently), the trace stops there and says so
rather than show a state the run never had.

States are kept every few steps (checkpoints), so a step far into a long run costs at most
a checkpoint's worth of updates, and memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..history import History
from ..model import RunSettings
from ..records import RowState
from ..updates import UpdateGroup
from .explain import Explanation, explain_update

#: Numbers kept in checkpoints at most (states x elements x checkpoints).
CHECKPOINT_VALUES = 2_000_000


@dataclass(frozen=True)
class StepState:
    """The optimizer's state before the update at ``step`` (after ``updates`` updates)."""

    step: int
    updates: int
    lr: float                            # the rate the update at ``step`` uses
    tensors: dict[str, np.ndarray]       # per state key, flat over the trainable elements


class OptimizerTrace:
    """Replays one run's optimizer over its recorded history (see the module docstring)."""

    def __init__(self, settings: RunSettings, history: History, total_steps: int):
        self.settings = settings
        self.total = int(total_steps)
        self.layout = history.layout
        self._cols = self.layout.trainable_columns
        self.steps = history.steps.copy()
        self._params = history.params[:, self._cols].astype(np.float32) \
            if history.records_elements else np.zeros((len(self.steps), 0), np.float32)
        self._grads = history.grads.astype(np.float32)
        #: steps from 0 up to (not including) this one can be replayed; why not past it
        self.valid_until, self.why_not = self._replayable(history)
        width = max(1, len(self._cols))
        self._every = max(16, int(len(self.steps) * width * 3 // CHECKPOINT_VALUES) + 1)
        self._checkpoints: dict[int, tuple[tuple, UpdateGroup]] = {}
        self._verified = 0   # updates checked against the recorded points so far

    def _replayable(self, history: History) -> tuple[int, str]:
        n = len(self.steps)
        if not history.records_elements:
            return 0, ("this problem has too many elements to record each step's parameters, "
                       "so the optimizer's state is known only where the run stands now")
        if n == 0 or self.steps[0] != 0:
            return 0, "the history does not start at step 0"
        if history.stride > 1:
            return 0, (f"this long run keeps every {history.stride}th step, so the state "
                       "between cannot be replayed; it is known where the run stands now")
        gaps = np.flatnonzero(np.diff(self.steps) != 1)
        if len(gaps):
            return int(self.steps[gaps[0]]) + 1, f"the history skips steps after step {self.steps[gaps[0]]}"
        return n, ""

    # --- replay -------------------------------------------------------------------------

    def _fresh_group(self) -> UpdateGroup:
        st = self.settings
        return UpdateGroup(st.optimizer, [st.hypers], {"flat": (len(self._cols),)},
                           torch.device("cpu"), [None], [st.schedule], [st.clip_norm], [0],
                           self.total)

    def _group_at(self, step: int) -> UpdateGroup:
        """A group holding the state after ``step`` updates (checked against the history)."""
        base = max((k for k in self._checkpoints if k <= step), default=None)
        if base is None:
            group, base = self._fresh_group(), 0
        else:
            snapshot, template = self._checkpoints[base]
            group = template.select([0])
            group.restore(snapshot)
        for k in range(base, step):
            if k % self._every == 0 and k not in self._checkpoints:
                self._checkpoints[k] = (group.snapshot(), group.select([0]))
            out = group.step({"flat": torch.from_numpy(self._params[k:k + 1])},
                             {"flat": torch.from_numpy(self._grads[k:k + 1])})["flat"]
            if k + 1 < len(self.steps) and k >= self._verified:
                expected = self._params[k + 1]
                if not np.allclose(out.numpy()[0], expected, rtol=1e-5, atol=1e-7):
                    self.valid_until = min(self.valid_until, k + 1)
                    self.why_not = (f"the update at step {k} does not match the recorded point: "
                                    "the settings changed during the run (or it was forked "
                                    "from another optimizer), so earlier states are not shown")
                    raise ValueError(self.why_not)
                self._verified = k + 1
        if step % self._every == 0 and step not in self._checkpoints:
            self._checkpoints[step] = (group.snapshot(), group.select([0]))
        return group

    # --- what the window asks -----------------------------------------------------------

    def available(self, step: int) -> bool:
        """The state before the update at ``step`` can be shown (it has a recorded
        gradient and a verified past)."""
        return 0 <= step < self.valid_until and step < len(self.steps)

    def state_before(self, step: int) -> StepState | None:
        """The state the update at ``step`` starts from; None where it cannot be known
        (``why_not`` says why)."""
        if not self.available(step):
            return None
        try:
            group = self._group_at(step)
        except ValueError:
            return None
        if not self.available(step):
            return None
        tensors = {k: per["flat"][0].numpy().astype(np.float64).copy()
                   for k, per in group.state.items()}
        return StepState(step, int(group.steps[0]), float(group.lr_now()[0]), tensors)

    def explain(self, step: int) -> Explanation | None:
        """The update at ``step`` with its numbers (None where the state is unknown)."""
        before = self.state_before(step)
        if before is None:
            return None
        st = self.settings
        return explain_update(st.optimizer, st.hypers, before.tensors if before.updates else None,
                              before.updates, self._grads[step].astype(np.float64),
                              self._params[step].astype(np.float64), before.lr, st.clip_norm)

    def row_state(self, step: int) -> RowState | None:
        """The state before ``step`` in the form a run keeps (for "restart from here")."""
        before = self.state_before(step)
        if before is None:
            return None
        return RowState(before.updates, {k: self.layout.unflatten(v, grads=True)
                                         for k, v in before.tensors.items()})
