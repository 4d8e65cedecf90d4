"""Animations (GIF, MP4) of the runs growing step by step.

Written frame by frame, never all in memory: GIFs through Pillow, MP4s through
imageio-ffmpeg's own ffmpeg. The file is written beside the target and renamed only once the
writer has succeeded, and for MP4 once the written file has been read back with the right
number of frames (ffmpeg can fail without saying so: killed, or out of disk). Cancelling
(the progress dialog, or Ctrl-C between frames) removes the partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..core import interrupt
from ..core.atomic import atomic_path
from ..core.errors import GdvizError

SUFFIXES = (".gif", ".mp4")
MAX_FRAMES = 10_000


class Cancelled(Exception):
    """The animation was cancelled; nothing was written."""


def write_animation(frames: Iterable[np.ndarray], path: str | Path, fps: float = 15.0,
                    progress: Callable[[int], bool] | None = None) -> int:
    """Write RGB frames as GIF or MP4 (by suffix). ``progress(i)`` is called after each
    frame; returning False cancels (raises Cancelled, nothing is left behind). Returns the
    number of frames written."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise GdvizError(f"cannot tell the animation format from '{Path(path).name}'; use "
                         ".gif or .mp4")
    if not 0.1 <= fps <= 120:
        raise GdvizError("the frame rate must be 0.1 to 120 frames per second")
    counted = _Counting(frames, progress)
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            _write_gif(counted, tmp, fps)
        else:
            _write_mp4(counted, tmp, fps)
    return counted.count


class _Counting:
    """Frames passed through, counted, with the cancel and Ctrl-C checks between them."""

    def __init__(self, frames: Iterable[np.ndarray], progress: Callable[[int], bool] | None):
        self.frames, self.progress, self.count = iter(frames), progress, 0

    def __iter__(self):
        for frame in self.frames:
            interrupt.check()
            yield frame
            self.count += 1
            if self.progress is not None and not self.progress(self.count):
                raise Cancelled()
            interrupt.check()


def _write_gif(frames: _Counting, tmp: Path, fps: float) -> None:
    from PIL import Image

    images = (Image.fromarray(np.ascontiguousarray(f, dtype=np.uint8)) for f in frames)
    try:
        first = next(images)
    except StopIteration:
        raise GdvizError("there are no frames to write") from None
    duration = max(20, round(1000.0 / fps))  # GIF delays are in ms; viewers cap small ones
    try:
        first.save(tmp, save_all=True, append_images=images, duration=duration, loop=0)
    except OSError as exc:
        raise GdvizError(f"cannot write the GIF: {exc.strerror or exc}") from None


def _write_mp4(frames: _Counting, tmp: Path, fps: float) -> None:
    import imageio_ffmpeg

    stream = iter(frames)
    try:
        first = next(stream)
    except StopIteration:
        raise GdvizError("there are no frames to write") from None
    height, width = first.shape[:2]
    writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), fps=fps, codec="libx264",
                                         quality=7, macro_block_size=16,
                                         ffmpeg_log_level="error")
    writer.send(None)
    written = 0
    try:
        for frame in _chain(first, stream):
            writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
            written += 1
    except OSError as exc:  # ffmpeg died: its pipe broke
        writer.close()
        raise GdvizError(f"ffmpeg failed while writing the MP4: {str(exc).splitlines()[0]}") from None
    writer.close()
    try:
        count, _secs = imageio_ffmpeg.count_frames_and_secs(str(tmp))
    except (RuntimeError, OSError) as exc:
        raise GdvizError(f"ffmpeg did not write a readable MP4: {str(exc).splitlines()[0][:200]}") from None
    if count != written:
        raise GdvizError(f"ffmpeg wrote {count} of {written} frames (out of disk space?); the "
                         "old file, if any, is kept")


def _chain(first: np.ndarray, rest):
    yield first
    yield from rest


def animate(figures, path: str | Path, frames: int = 60, fps: float = 15.0,
            progress: Callable[[int], bool] | None = None) -> bool:
    """Write the runs' animation from offscreen figures; False when cancelled (nothing is
    left behind)."""
    if not 1 <= frames <= MAX_FRAMES:
        raise GdvizError(f"the number of frames must be 1 to {MAX_FRAMES}")
    try:
        with interrupt.deferred_interrupt():
            write_animation(figures.animation_frames(frames), path, fps, progress)
    except Cancelled:
        return False
    return True
