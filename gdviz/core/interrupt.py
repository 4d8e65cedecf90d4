"""Ctrl-C that waits for a safe moment.

A KeyboardInterrupt raised while Qt is painting unwinds through C++ frames and can crash the
process; one raised while a file is half written leaves it behind. Inside
:func:`deferred_interrupt`, Ctrl-C only sets a flag, and the code checks it where stopping
is safe (between animation frames) by calling :func:`check`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_requested = threading.Event()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Turn SIGINT into a request that :func:`check` raises as KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can take signals
        return
    _requested.clear()
    previous = signal.signal(signal.SIGINT, lambda *_: _requested.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if _requested.is_set():
            _requested.clear()
            raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt now if Ctrl-C was pressed."""
    if _requested.is_set():
        _requested.clear()
        raise KeyboardInterrupt
