"""Atomic file writes: write a temporary file beside the target, then rename it over.

A failed write (unwritable folder, disk full, an exception while rendering) leaves no
half-written file behind and raises a :class:`GdvizError` that says what went wrong.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import GdvizError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) for writers that want a file name;
    renamed over ``path`` when the block succeeds, removed when it fails."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        # A short prefix: the temporary name must fit where a 255-byte name fits.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:32]}.", suffix=path.suffix[:16],
                                   dir=folder)
        os.close(fd)
    except OSError as exc:
        raise GdvizError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        yield Path(tmp)
        _make_readable(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise GdvizError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _make_readable(tmp: str) -> None:
    # mkstemp creates files only their owner can read; give them the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
