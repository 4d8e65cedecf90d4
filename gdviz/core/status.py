"""Where a run stands: the one status enum every part of gdviz uses."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A run's status. ``str`` so it reads and compares as its value ("diverged")."""

    IDLE = "idle"            # at its start, never stepped
    RUNNING = "running"
    PAUSED = "paused"        # stepped, can go on
    FINISHED = "finished"    # reached the step limit
    CONVERGED = "converged"  # the loss reached the tolerance
    DIVERGED = "diverged"    # a loss, parameter or gradient stopped being finite

    @property
    def stopped(self) -> bool:
        """Ended by a stop condition: Play does not move it on."""
        return self in (Status.FINISHED, Status.CONVERGED, Status.DIVERGED)

    def __str__(self) -> str:
        return self.value
