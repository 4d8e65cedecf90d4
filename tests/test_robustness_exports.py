"""Issue #14, files and interruption: a failed writer leaves the old file as it was and
says so; Ctrl-C exits 130 quickly, keeping what was done and leaving no temporary file;
odd file names are written and printed."""

from __future__ import annotations

import gc
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gdviz.cli import main
from gdviz.core import interrupt
from gdviz.core.errors import GdvizError
from gdviz.core.presets import load_preset
from gdviz.core.simulation import Simulation
from gdviz.export.animation import write_animation

GDVIZ = [sys.executable, "-m", "gdviz"]
ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen")


def frames(count, fail_at=None, exc=RuntimeError):
    for i in range(count):
        if i == fail_at:
            raise exc("stopped")
        yield np.full((32, 48, 3), (i * 37) % 255, np.uint8)


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# --- a writer that fails keeps the old file and says why -----------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ulimit -f")
def test_an_mp4_stopped_by_a_file_size_limit_keeps_the_old_file(tmp_path):
    # ffmpeg is killed by SIGXFSZ (a GIF fails inside Python: see the test below)
    target = tmp_path / "a.mp4"
    target.write_text("OLD")
    command = " ".join(GDVIZ + ["run", "--preset", "bowl", "--animation", str(target),
                                "--frames", "10"])
    proc = subprocess.run(["bash", "-c", f"ulimit -f 4; exec {command}"], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("gdviz: error: ")
    assert "ffmpeg was stopped by SIGXFSZ" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert target.read_text() == "OLD" and temporaries(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE")
def test_a_gif_that_fails_to_write_says_so_and_leaves_no_unclosed_file(tmp_path):
    import resource

    target = tmp_path / "a.gif"
    target.write_text("OLD")
    noise = np.random.default_rng(0).integers(0, 255, (10, 120, 160, 3), dtype=np.uint8)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(GdvizError, match="cannot write the GIF: File too large"):
            write_animation(iter(noise), target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    gc.collect()  # an unclosed file would be an unraisable ResourceWarning: an error here
    assert target.read_text() == "OLD" and temporaries(tmp_path) == []


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
@pytest.mark.parametrize("exc", [RuntimeError, GdvizError, KeyboardInterrupt])
def test_frames_failing_midway_leave_nothing_behind(tmp_path, suffix, exc):
    # KeyboardInterrupt is Ctrl-C between frames. Pillow closes a file it opened only on an
    # Exception, so it used to leave an unclosed file ("Exception ignored in ..." at exit,
    # an error under pytest's unraisable-exception check); ffmpeg, left running, wrote the
    # temporary file again after it was removed.
    target = tmp_path / f"a{suffix}"
    target.write_text("OLD")
    with pytest.raises(exc):
        write_animation(frames(10, fail_at=5, exc=exc), target, fps=10)
    gc.collect()
    time.sleep(0.2)  # an ffmpeg still running would write now
    assert target.read_text() == "OLD" and temporaries(tmp_path) == []


def test_an_mp4_is_checked_and_written(tmp_path):
    import imageio_ffmpeg

    target = tmp_path / "a.mp4"
    assert write_animation(frames(7), target, fps=0.5) == 7
    assert imageio_ffmpeg.count_frames_and_secs(str(target))[0] == 7
    with pytest.raises(GdvizError, match="frame 2 has the size"):
        write_animation(iter([np.zeros((32, 48, 3), np.uint8), np.zeros((16, 48, 3), np.uint8)]),
                        tmp_path / "b.mp4")
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


@pytest.mark.parametrize("argv, message", [
    (["--fps", "0.001"], "--fps must be 0.1 to 120"),
    (["--fps", "nan"], "--fps must be 0.1 to 120"),
    (["--fps", "121"], "--fps must be 0.1 to 120"),
    (["--frames", "0"], "--frames must be 1 to 10000"),
])
def test_animation_settings_out_of_range_are_clear_errors(tmp_path, capsys, argv, message):
    code = main(["run", "--preset", "bowl", "--animation", str(tmp_path / "a.gif"), *argv])
    assert code == 2 and capsys.readouterr().err.strip() == f"gdviz: error: {message}"
    assert os.listdir(tmp_path) == []


# --- Ctrl-C ---------------------------------------------------------------------------------

def _interrupt(argv, when, timeout=60):
    """Start gdviz, wait until ``when()`` says so, press Ctrl-C; (exit code, seconds it
    took to exit, stderr)."""
    proc = subprocess.Popen(GDVIZ + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    deadline = time.monotonic() + timeout
    while not when() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, time.monotonic() - sent, err.decode("utf-8", "replace")


def test_ctrl_c_during_an_animation_exits_130_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.gif"
    target.write_text("OLD")
    # once the temporary file exists, frames are being written
    code, seconds, err = _interrupt(["run", "--preset", "bowl", "--animation", str(target),
                                     "--frames", "400"], lambda: bool(temporaries(tmp_path)))
    assert code == 130 and "gdviz: interrupted" in err and "Traceback" not in err, err
    assert seconds < 3
    assert target.read_text() == "OLD" and temporaries(tmp_path) == []


def test_ctrl_c_while_gdviz_is_still_loading_exits_130(tmp_path):
    start = time.monotonic()
    code, seconds, err = _interrupt(["run", "--preset", "bowl", "--animation",
                                     str(tmp_path / "a.gif")],
                                    lambda: time.monotonic() - start > 0.4)
    assert code == 130 and err.strip() == "gdviz: interrupted", err
    assert seconds < 2 and os.listdir(tmp_path) == []


def test_ctrl_c_on_a_long_run_writes_what_was_done_and_says_where_it_stopped(tmp_path):
    out, saved = tmp_path / "h.csv", tmp_path / "s.gdviz.json"
    argv = ["run", "--preset", "seed-linear", "--steps", "100000000", "--out", str(out),
            "--save-session", str(saved)]
    for wait in (3, 6, 12):  # on a slow machine, loading torch may take longer than the wait
        start = time.monotonic()
        code, seconds, err = _interrupt(argv, lambda: time.monotonic() - start > wait)
        if out.exists():
            break
    assert code == 130 and "Traceback" not in err, err
    assert seconds < 5
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert step > 0 and f"kept in {out} and {saved}" in err
    rows = out.read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == step + 1
    session = json.loads(saved.read_text())
    assert session["runs"][0]["state"]["step"] == step
    assert temporaries(tmp_path) == []


def test_ctrl_c_stops_a_simulation_between_batches_with_everything_consistent():
    sim = Simulation(load_preset("seed-linear").with_changes(steps=10**8), max_batch_s=0.01)
    batches = []

    def on_batch(batch):
        batches.append(batch)
        if len(batches) == 3:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C were pressed now

    sim.run(on_batch=on_batch)
    run = sim.runset.runs[0]
    assert sim.interrupted and len(batches) == 3
    assert run.step == len(run.history) == run.history.steps[-1] + 1
    assert run.optimizer_state is None or run.optimizer_state.step <= run.step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_interrupt_scopes_nest_without_losing_a_request():
    # the command line defers Ctrl-C around all figures, the animation again inside;
    # a Ctrl-C between the two used to be forgotten by the inner scope
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred_interrupt():
            signal.raise_signal(signal.SIGINT)
            with interrupt.deferred_interrupt():
                interrupt.check()
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred_interrupt():
            with interrupt.deferred_interrupt():
                pass
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupt.deferred_interrupt():
        pass  # nothing pending


# --- file names -----------------------------------------------------------------------------

def test_a_250_character_file_name_works_everywhere(tmp_path, capsys, qapp):
    stem = str(tmp_path / ("n" * 240))
    paths = {"out": stem + ".csv", "session": stem + ".gdviz.json", "gif": stem + ".gif",
             "png": stem + ".png"}
    assert all(len(Path(p).name) <= 251 for p in paths.values())
    code = main(["run", "--preset", "bowl", "--steps", "5", "--out", paths["out"],
                 "--save-session", paths["session"], "--animation", paths["gif"],
                 "--frames", "2", "--plot", f"loss={paths['png']}"])
    assert code == 0, capsys.readouterr().err
    assert all(Path(p).stat().st_size > 0 for p in paths.values())
    assert temporaries(tmp_path) == []
    code = main(["run", "--preset", "bowl", "--out", stem + "x" * 20 + ".csv"])
    assert code == 2 and "longer than 255 bytes" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="file names as bytes")
def test_file_names_that_are_not_utf8_are_written_and_printed(tmp_path, monkeypatch):
    # On an ASCII terminal, the hardest case: the escaped name must still print.
    name = os.fsencode(tmp_path) + b"/bad\xff\xfename"
    env = dict(ENV, PYTHONIOENCODING="ascii", LC_ALL="C")
    graph = [os.fsencode(a) for a in GDVIZ] + [b"graph", b"-f", b"x**2", b"--out",
                                               name + b".json"]
    proc = subprocess.run(graph, capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    shown = os.fsencode(tmp_path) + b"/bad\\udcff\\udcfename.json"
    assert proc.stdout.startswith(b"wrote " + shown) and os.path.exists(name + b".json")
    # the same in this process: names arrive as surrogate-escaped text
    for stream in ("stdout", "stderr"):
        monkeypatch.setattr(sys, stream, io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    text = os.fsdecode(name)
    assert main(["run", "--preset", "bowl", "--steps", "3", "--out", text + ".csv",
                 "--save-session", text + ".gdviz.json"]) == 0
    assert os.path.exists(name + b".csv") and os.path.exists(name + b".gdviz.json")
    missing = os.fsdecode(tmp_path) + "/no\udcff/h.csv"
    assert main(["run", "--preset", "bowl", "--out", missing]) == 2
    sys.stderr.flush()
    err = sys.stderr.buffer.getvalue().decode("ascii")
    assert err.startswith("gdviz: error: cannot write ") and "no\\udcff" in err


# --- a huge bad value is not echoed whole ------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["run", "-f", "x", "--steps", "9" * 100_000],
    ["run", "-f", "x", "--optimizer", "q" * 100_000],
    ["run", "-f", "x", "--device", "q" * 100_000],
    ["run", "-f", "x", "--param", "q" * 100_000],
    ["run", "-f", "x", "--param", "x=" + "q" * 90_000],
    ["run", "-f", "x" * 100_000],
    ["run", "--preset", "q" * 100_000],
    ["run", "--session", "q" * 100_000],
    ["run", "-f", "x", "--out", "q" * 100_000 + ".csv"],
    ["run", "-f", "x", "--animation", "q" * 100_000],
    ["race", "-f", "x", "--run", "sgd " + "lr=x " * 20_000],
    ["race", "-f", "x", "--run", "q" * 100_000],
    ["race", "-f", "x", "--sweep", "sgd lr=" + "9" * 100_000 + "..1"],
])
def test_a_huge_bad_value_is_not_echoed_whole(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("gdviz: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert len(lines[0]) <= 420
