"""Ctrl-C that waits for a safe moment.

A KeyboardInterrupt raised while Qt is painting unwinds through C++ frames and can crash the
process; one raised while a file is half written leaves it behind; one raised in the middle
of a training step leaves the runs half updated. Inside :func:`deferred_interrupt`, Ctrl-C
only sets a flag, and the code checks it where stopping is safe (between animation frames,
between training batches) by calling :func:`check`.

Scopes nest: an inner scope (an animation inside the command line's figure writing) shares
the outer one's request, so a Ctrl-C pressed between the two is never lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_requested = threading.Event()
_depth = 0  # how many deferred_interrupt scopes are open on the main thread


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Turn SIGINT into a request that :func:`check` raises as KeyboardInterrupt; a request
    still pending when the scope ends is raised then."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals
        return
    outermost = _depth == 0
    if outermost:
        _requested.clear()
        previous = signal.signal(signal.SIGINT, lambda *_: _requested.set())
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if outermost:
            signal.signal(signal.SIGINT, previous)
        if _requested.is_set():
            _requested.clear()
            raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt now if Ctrl-C was pressed."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt
