"""A minimal change announcement: what the model uses to tell views what changed.

Qt-free on purpose (core never imports Qt); the window's controller turns these into Qt
signals where it needs queued delivery. psygnal would do the same; a list of callbacks is
all the model needs, and keeps core's dependencies to torch and numpy.
"""

from __future__ import annotations

from typing import Any, Callable


class Event:
    """Callbacks called in the order they were connected, with the arguments of emit()."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)
