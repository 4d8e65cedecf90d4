"""The controller and its worker thread, without the window."""

import pytest

from gdviz.core.presets import load_preset


@pytest.fixture
def controller(qtbot):
    from gdviz.qt.controller import TrainingController

    c = TrainingController()
    yield c
    c.shutdown()


def test_settings_changed_right_after_loading_reach_the_new_trainer(qtbot, controller):
    # The worker adopts a new trainer through a queued call that runs after the GUI thread
    # has already submitted changes for it; those changes must not be dropped.
    for _ in range(5):
        controller.load_session(load_preset("bowl"))
        controller.load_session(load_preset("seed-linear").with_changes(steps=200))
        controller.set_steps(250)
        with qtbot.waitSignal(controller.runFinished, timeout=30_000) as blocker:
            controller.play()
        assert blocker.args[0]["steps"] == 250


def test_batches_from_a_reset_run_are_dropped(qtbot, controller):
    controller.load_session(load_preset("seed-linear").with_changes(steps=10_000_000))
    controller.play()
    qtbot.waitUntil(lambda: controller.step > 100, timeout=30_000)
    controller.reset()
    qtbot.waitUntil(lambda: controller.state == "idle" and controller.step == 0, timeout=10_000)
    qtbot.wait(300)  # batches still in flight from the old run arrive now
    assert controller.step == 0 and len(controller.history) == 0


def test_pause_before_the_run_starts_still_ends_it(qtbot, controller):
    controller.load_session(load_preset("seed-linear").with_changes(steps=10_000_000))
    controller.play()
    controller.pause()  # before the worker has picked the run up
    qtbot.waitUntil(lambda: controller.state == "paused", timeout=10_000)
