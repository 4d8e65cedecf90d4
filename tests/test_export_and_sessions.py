"""Exports (PNG, SVG, CSV, GIF, MP4), sessions that round-trip, examples, bad files."""

import csv
import json
import os
import xml.etree.ElementTree as ET

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from gdviz.cli import main
from gdviz.core.atomic import atomic_write
from gdviz.core.presets import load_preset, preset_names


def run_steps(qtbot, window, n):
    target = window.controller.step + n
    window.controls.stepCountSpin.setValue(n)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == target and window.controller.state == "paused",
                    timeout=30_000)
    window.redraw()


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_plot_exports_png_svg_csv(qtbot, window, tmp_path):
    run_steps(qtbot, window, 40)
    plot = window.lossView.plot
    size = (plot.width(), plot.height())  # the banner that follows an export resizes the plot
    assert window.export("loss", tmp_path / "loss.png")
    image = QImage(str(tmp_path / "loss.png"))
    # 2x by default, with a title line above the plot (a slide says what it shows)
    assert (image.width(), image.height()) == (2 * size[0], 2 * (size[1] + 24))
    assert window.export("trajectory", tmp_path / "traj.svg")
    assert ET.parse(tmp_path / "traj.svg").getroot().tag.endswith("svg")
    assert window.export("loss", tmp_path / "loss.csv")
    rows = read_csv(tmp_path / "loss.csv")
    history = window.controller.history
    assert rows[0] == ["step", "loss"] and len(rows) == len(history) + 1 == 41
    assert float(rows[1][1]) == pytest.approx(history.loss[0])
    assert window.export("trajectory", tmp_path / "traj.csv")
    rows = read_csv(tmp_path / "traj.csv")
    assert rows[0] == ["step", "loss", "X"] and float(rows[-1][2]) == pytest.approx(history.params[-1, 0])


def test_png_scale_choice(qtbot, window, tmp_path):
    window.png_scale = 3.0
    width = window.trajectoryView.plot.width()
    assert window.export("trajectory", tmp_path / "t.png")
    assert QImage(str(tmp_path / "t.png")).width() == 3 * width


def test_graph_window_and_history_exports(qtbot, window, tmp_path):
    run_steps(qtbot, window, 5)
    window.graphArea.refresh_now()
    qtbot.waitUntil(lambda: bool(window.graphArea.scene.node_items), timeout=10_000)
    assert window.export("graph", tmp_path / "g.svg") and window.export("graph", tmp_path / "g.png")
    assert window.export("graph", tmp_path / "g.json")
    assert ET.parse(tmp_path / "g.svg").getroot().tag.endswith("svg")
    assert {n["kind"] for n in json.loads((tmp_path / "g.json").read_text())["nodes"]} >= {"param", "op"}
    assert window.export("window", tmp_path / "w.png")
    assert QImage(str(tmp_path / "w.png")).width() >= window.width()
    assert window.export("history", tmp_path / "h.csv") and window.export("history", tmp_path / "h.json")
    rows = read_csv(tmp_path / "h.csv")
    assert rows[0] == window.controller.history.columns and len(rows) == 6
    assert len(json.loads((tmp_path / "h.json").read_text())["rows"]) == 5


def test_gif_and_mp4_animation(qtbot, window, tmp_path):
    window.load_session(load_preset("bowl"))
    run_steps(qtbot, window, 60)
    assert window.export_animation(tmp_path / "run.gif", frames=12, fps=10)
    frames = iio.imread(tmp_path / "run.gif")
    assert frames.shape[0] == 12 and frames.shape[1] % 16 == 0 and frames.shape[3] == 3
    assert not np.array_equal(frames[0], frames[-1])  # it grows
    assert window.export_animation(tmp_path / "run.mp4", frames=8, fps=10)
    reader = imageio.get_reader(tmp_path / "run.mp4")
    try:
        assert reader.count_frames() == 8
    finally:
        reader.close()


def test_cancelled_animation_leaves_nothing(qtbot, window, tmp_path):
    from gdviz.export.animation import animate
    from gdviz.export.figures import OffscreenFigures

    run_steps(qtbot, window, 20)
    c = window.controller
    figures = OffscreenFigures(c.session.build_problem(), c.runset)
    try:
        assert animate(figures, tmp_path / "a.gif", frames=10, progress=lambda done: done < 3) is False
    finally:
        figures.close()
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_file_and_reports(qtbot, window, tmp_path):
    target = tmp_path / "missing" / "loss.png"
    assert window.export("loss", target) is False
    assert "cannot write" in window.lastError and not target.parent.exists()
    existing = tmp_path / "keep.txt"
    existing.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(existing) as fh:
            fh.write("half")
            raise RuntimeError("disk full")
    assert existing.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_session_round_trips_exactly_and_continues(qtbot, window, tmp_path):
    run_steps(qtbot, window, 300)
    c = window.controller
    saved_current, saved_history = c.current.copy(), c.history.table().copy()
    path = tmp_path / "s.gdviz.json"
    assert window.save_session_to(path) and not window.has_unsaved_changes()
    assert "s.gdviz.json" in window.windowTitle()
    window.load_session(load_preset("bowl"))
    assert window.open_session(path)
    assert c.step == 300 and np.array_equal(c.current, saved_current)
    assert np.array_equal(c.history.table(), saved_history)
    assert window.problemPanel.functionEdit.text() == "X + 1"
    run_steps(qtbot, window, 100)
    # The same 400 steps without the save and reopen:
    from gdviz.core.simulation import Simulation
    straight = Simulation(load_preset("seed-linear").with_changes(steps=400))
    straight.run()
    assert c.current[0] == straight.runset.runs[0].values[0]
    assert list(c.history.steps) == list(range(400))


def test_session_file_matches_cli_schema(qtbot, window, tmp_path, capsys):
    run_steps(qtbot, window, 10)
    path = tmp_path / "s.gdviz.json"
    window.save_session_to(path)
    data = json.loads(path.read_text())
    assert data["format"] == "gdviz-session" and data["version"] == 2
    run = data["runs"][0]
    assert run["state"]["step"] == 10 and len(run["history"]["rows"]) == 10
    code = main(["run", "--session", str(path), "--steps", "20", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["steps"] == 20


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "gdviz-session", "version": 7, "function": "x"}), "version"),
    (json.dumps({"format": "gdviz-session", "version": 1, "function": "x", "steps": -3}), "steps"),
    (json.dumps({"format": "gdviz-session", "version": 1, "function": "x +"}), "syntax error"),
    (json.dumps({"format": "gdviz-session", "version": 1, "function": "x",
                 "state": {"step": 2, "values": {"x": [1, 2, 3]}}}), "shape"),
    (json.dumps({"something": "else"}), "format"),
])
def test_bad_session_files_leave_the_window_intact(qtbot, window, tmp_path, content, fragment):
    run_steps(qtbot, window, 7)
    before = (window.controller.session.function, window.controller.step, window.controller.current.copy())
    path = tmp_path / "bad.gdviz.json"
    path.write_text(content)
    assert window.open_session(path) is False
    assert fragment in window.lastError
    c = window.controller
    assert (c.session.function, c.step) == before[:2] and np.array_equal(c.current, before[2])
    assert window.problemPanel.functionEdit.text() == before[0]


def test_unsaved_changes_are_offered_for_saving(qtbot, window, tmp_path):
    run_steps(qtbot, window, 3)
    assert window.has_unsaved_changes()
    window.ask_unsaved = lambda: "cancel"
    assert window.open_example("bowl") is False and window.controller.session.function == "X + 1"
    path = tmp_path / "kept.gdviz.json"
    window.ask_unsaved = lambda: "save"
    window.ask_path = lambda *a, **k: str(path)
    assert window.open_example("bowl") is True
    assert path.exists() and json.loads(path.read_text())["runs"][0]["state"]["step"] == 3
    assert window.controller.session.name == "Quadratic bowl"


def test_examples_menu_lists_every_preset_with_its_description(qtbot, window):
    actions = window.examplesMenu.actions()
    assert len(actions) == len(preset_names()) >= 9
    assert all(a.toolTip() for a in actions)
    rosenbrock = next(a for a in actions if "Rosenbrock" in a.text())
    rosenbrock.trigger()
    assert window.controller.session.function.startswith("(1 - a)**2")
    assert window.trajectoryView.mode == "2d" and window.controls.playButton.isEnabled()


def test_recent_files_and_drop(qtbot, window, tmp_path):
    path = tmp_path / "r.gdviz.json"
    load_preset("himmelblau").save(path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.controller.session.name == "Himmelblau"
    assert window.recentMenu.actions()[0].text() == "r.gdviz.json"


def test_cli_plots_and_animation(tmp_path, capsys, qapp):
    out = {k: tmp_path / f for k, f in (("loss", "loss.png"), ("trajectory", "traj.svg"),
                                        ("graph", "graph.svg"), ("data", "loss.csv"))}
    gif = tmp_path / "run.gif"
    code = main(["run", "--preset", "bowl", "--plot", f"loss={out['loss']}",
                 "--plot", f"trajectory={out['trajectory']}", "--plot", f"graph={out['graph']}",
                 "--plot", f"loss={out['data']}", "--animation", str(gif), "--frames", "9"])
    assert code == 0
    assert QImage(str(out["loss"])).width() == 2 * 640
    for key in ("trajectory", "graph"):
        assert ET.parse(out[key]).getroot().tag.endswith("svg")
    assert len(read_csv(out["data"])) == 201
    assert iio.imread(gif).shape[0] == 9


def test_cli_rejects_bad_figure_requests_before_training(capsys, tmp_path):
    assert main(["run", "--preset", "bowl", "--plot", "loss=x.gif"]) == 2
    assert "must end in" in capsys.readouterr().err
    assert main(["run", "--preset", "bowl", "--animation", str(tmp_path / "no" / "a.gif")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_adam_session_continues_exactly(qtbot, window, tmp_path):
    window.load_session(load_preset("rosenbrock"))
    run_steps(qtbot, window, 150)
    path = tmp_path / "adam.gdviz.json"
    assert window.save_session_to(path)
    assert "exp_avg" in json.dumps(json.loads(path.read_text())["runs"][0]["state"]["optimizer"])
    window.load_session(load_preset("bowl"))
    assert window.open_session(path)
    run_steps(qtbot, window, 50)
    from gdviz.core.simulation import Simulation
    straight = Simulation(load_preset("rosenbrock").with_changes(steps=200))
    straight.run()
    assert np.array_equal(window.controller.current, straight.runset.runs[0].values)


def test_the_animation_menu_asks_frames_fps_and_size(qtbot, window, tmp_path):
    run_steps(qtbot, window, 30)
    target = tmp_path / "run.gif"
    window.ask_path = lambda *a, **k: str(target)
    window.ask_animation_options = lambda: (7, 5.0, (480, 360))
    action = next(a for a in window.exportMenu.actions() if a.text() == "Animation")
    gif = next(a for a in action.menu().actions() if a.text() == "GIF…")
    gif.trigger()
    frames = iio.imread(target)
    assert frames.shape[0] == 7 and frames.shape[2] == 960  # two plots of 480 side by side
