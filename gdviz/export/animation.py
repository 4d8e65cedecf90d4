"""Animations (GIF, MP4) of the runs growing step by step.

Written frame by frame, never all in memory: GIFs through Pillow, MP4s through
imageio-ffmpeg's own ffmpeg. The file is written beside the target and renamed only once the
writer has succeeded: for MP4, once ffmpeg has exited with status 0 and the written file has
been read back with the right number of frames (out of disk, ffmpeg can fail quietly).
Cancelling (the progress dialog, or Ctrl-C between frames) stops ffmpeg and removes the
partial file; an existing file is never touched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
from fractions import Fraction
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
        interrupt.check()  # a Ctrl-C during the last frame keeps the old file too
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
        # Our own file object: Pillow closes a file it opened only on an Exception, so a
        # Ctrl-C between frames would leave it to the garbage collector (a ResourceWarning,
        # "Exception ignored in ..." when warnings are errors).
        with open(tmp, "wb") as fh:
            first.save(fh, format="GIF", save_all=True, append_images=images,
                       duration=duration, loop=0)
    except OSError as exc:
        raise GdvizError(f"cannot write the GIF: {exc.strerror or exc}") from None
    finally:
        images.close()


def _write_mp4(frames: _Counting, tmp: Path, fps: float) -> None:
    """Frames piped to imageio-ffmpeg's ffmpeg, run by us so that its exit status is known:
    ffmpeg killed (a file size limit, out of memory) or failing is an error, and on any
    error, Ctrl-C included, ffmpeg is stopped before the temporary file is removed (else it
    would write the file again after it was removed)."""
    import imageio_ffmpeg

    stream = iter(frames)
    try:
        first = next(stream)
    except StopIteration:
        raise GdvizError("there are no frames to write") from None
    height, width = first.shape[:2]
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", str(Fraction(fps).limit_denominator(1000)), "-i", "-", "-an",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "15"]
    if width % 16 or height % 16:  # players want whole macro blocks
        command += ["-vf", f"scale={-(-width // 16) * 16}:{-(-height // 16) * 16}"]
    command += ["-f", "mp4", str(tmp)]
    written = 0
    with tempfile.TemporaryFile() as log:
        # its own session: Ctrl-C in the terminal reaches gdviz, which stops ffmpeg itself
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)
        try:
            try:
                for frame in _chain(first, stream):
                    frame = np.ascontiguousarray(frame, dtype=np.uint8)
                    if frame.shape != first.shape:
                        raise GdvizError(f"frame {written + 1} has the size {frame.shape[1]}x"
                                         f"{frame.shape[0]}, not {width}x{height}")
                    proc.stdin.write(frame.data)
                    written += 1
                proc.stdin.close()
            except OSError:  # ffmpeg died and its pipe broke: its exit status says why
                pass
            code = _wait(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if code != 0:
            log.seek(0)
            said = log.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
            raise GdvizError(f"ffmpeg failed while writing the MP4 ({_exit_reason(code)})"
                             + (f": {said[-1][:200]}" if said else "")
                             + "; the old file, if any, is kept")
    try:
        count, _secs = imageio_ffmpeg.count_frames_and_secs(str(tmp))
    except (RuntimeError, OSError) as exc:
        raise GdvizError(f"ffmpeg did not write a readable MP4: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    if count != written:
        raise GdvizError(f"ffmpeg wrote {count} of {written} frames (out of disk space?); the "
                         "old file, if any, is kept")


def _wait(proc: subprocess.Popen) -> int:
    """ffmpeg's exit status, waiting for it to finish encoding; Ctrl-C still cancels."""
    while True:
        try:
            return proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            interrupt.check()


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (a file size limit?)" if name == "SIGXFSZ" else ""
        return f"ffmpeg was stopped by {name}{hint}"
    return f"ffmpeg exited with status {code}"


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
