"""The 3-D surface with real OpenGL. Skipped under the offscreen platform the suite uses;
run it on a screen (or Xvfb with Mesa) with, e.g.:

    QT_QPA_PLATFORM=xcb DISPLAY=:99 python -m pytest tests/test_surface_gl.py
"""

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

from gdviz.core.model import RunSettings
from gdviz.core.presets import load_preset


@pytest.fixture
def gl_window(window):
    from gdviz.qt.surface_view import opengl_unavailable_reason

    reason = opengl_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no OpenGL here: {reason}")
    return window


def test_two_racing_paths_are_drawn_on_the_surface_and_exported(qtbot, gl_window, tmp_path):
    window = gl_window
    c = window.controller
    window.load_session(load_preset("himmelblau"))
    c.add_run(RunSettings("adam", {"lr": 0.1}, color="#d62728", start=np.array([-0.5, -1.5])))
    window.controls.stepCountSpin.setValue(60)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: all(r.step == 60 for r in c.runset) and not c.running,
                    timeout=30_000)
    window.landscapeTabs.setCurrentWidget(window.surfaceView)
    surface = window.surfaceView
    qtbot.waitUntil(lambda: surface._frame is not None, timeout=10_000)
    window.redraw()
    assert surface.gl is not None and surface.stack.currentWidget() is surface.gl
    for run in c.runset:
        line, dot, key = surface._paths[run.id]
        assert key is not None and line.pos.shape[0] >= 2 and line.visible()
    before = {i: line.pos.copy() for i, (line, _d, _k) in surface._paths.items()}
    surface.logCheck.click()  # paused: the paths follow the new heights at once
    for run_id, (line, _dot, _key) in surface._paths.items():
        assert not np.allclose(line.pos[:, 2], before[run_id][:, 2])
        np.testing.assert_allclose(line.pos[:, :2], before[run_id][:, :2])
    path = tmp_path / "surface.png"
    assert window.export("surface", path)
    image = QImage(str(path))
    assert image.width() == surface.gl.grabFramebuffer().width()
    reds = sum(1 for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)
               if (lambda q: q.red() > 180 and q.green() < 80 and q.blue() < 80)(
                   QColor(image.pixel(x, y))))
    assert reds > 5  # the red run's path and dot are on the picture


def test_another_problem_replaces_the_surface_without_a_crash(qtbot, gl_window):
    window = gl_window
    surface = window.surfaceView
    window.load_session(load_preset("rosenbrock"))
    window.landscapeTabs.setCurrentWidget(surface)
    qtbot.waitUntil(lambda: surface._frame is not None, timeout=10_000)
    window.open_example("seed-linear")  # one parameter: no surface
    window.redraw()
    assert surface.stack.currentWidget() is surface.message
    assert "two parameters" in surface.message.text()
    window.controls.stepCountSpin.setValue(5)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 5 and not window.controller.running,
                    timeout=30_000)
    window.redraw()  # the paths of a one-parameter run are not drawn (and do not fail)
    window.open_example("himmelblau")
    qtbot.waitUntil(lambda: surface._frame is not None, timeout=10_000)
    assert surface.stack.currentWidget() is surface.gl
    assert "over a, b" in surface.title.text()
