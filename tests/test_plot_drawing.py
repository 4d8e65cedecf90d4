"""The drawing helpers the live plots rest on: incremental peak decimation, the C++-painted
curve, and the stable thinning of paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt

from gdviz.qt.plot_style import FastCurve, PeakDecimator
from gdviz.qt.trajectory_view import thin

values = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf]))


def check_drawn_like_all(y: np.ndarray, keep: np.ndarray) -> None:
    assert keep[0] == 0 and keep[-1] == len(y) - 1
    assert np.all(np.diff(keep) > 0)
    finite, kept = y[np.isfinite(y)], y[keep][np.isfinite(y[keep])]
    if len(finite):
        assert kept.min() == finite.min() and kept.max() == finite.max()


@settings(max_examples=150, deadline=None)
@given(st.lists(values, min_size=1, max_size=600), st.lists(st.integers(1, 200), max_size=12),
       st.integers(4, 64))
def test_growing_series_decimate_as_if_drawn_at_once(data, growth, limit):
    y = np.array(data)
    decimator = PeakDecimator(limit)
    n = 0
    for g in growth + [len(y)]:
        n = min(len(y), n + g)
        keep = decimator.indices(y[:n])
        assert np.array_equal(keep, PeakDecimator(limit).indices(y[:n]))
        assert decimator.finite == bool(np.isfinite(y[:n]).all())
        check_drawn_like_all(y[:n], keep)
        assert len(keep) <= limit + 4


def test_a_series_changed_before_its_end_is_reduced_anew():
    decimator = PeakDecimator(8)
    first = np.linspace(1.0, 0.0, 100)
    decimator.indices(first)
    second = first.copy()
    second[30] = 50.0  # a different run's history, past the point last drawn
    second[0] = 2.0
    keep = decimator.indices(second)
    assert second[keep].max() == 50.0
    shorter = decimator.indices(first[:10])  # a reset
    assert np.array_equal(shorter, PeakDecimator(8).indices(first[:10]))
    # a history replaced between two frames, alike at every point kept before: its
    # revision says so
    smooth = np.linspace(1.0, 0.0, 1000)
    spiked = smooth.copy()
    spiked[701] = 9.0
    decimator = PeakDecimator(8)
    kept = decimator.indices(smooth, key=(1, 1))
    assert 701 not in kept and spiked[decimator.indices(spiked, key=(1, 1))].max() < 9.0
    assert spiked[decimator.indices(spiked, key=(1, 2))].max() == 9.0


def test_decimation_of_a_long_series_keeps_its_peaks():
    x = np.arange(100_000.0)
    y = np.sin(x / 500) + (x == 31_337) * 7.0 - (x == 77_777) * 9.0
    keep = PeakDecimator(2000).indices(y)
    dx, dy = x[keep], y[keep]
    assert len(dx) <= 2100 and dx[0] == 0 and dx[-1] == 99_999 and np.all(np.diff(dx) > 0)
    assert dy.max() == y.max() and dy.min() == y.min()


def test_thinning_keeps_the_same_points_as_a_path_grows():
    before, after = thin(np.zeros(3000), 500), thin(np.zeros(3050), 500)
    assert before[-1] == 2999 and after[-1] == 3049 and len(after) <= 502
    assert set(before[:-1]) <= set(after)  # only the end moved: no shimmer
    assert np.array_equal(thin(np.zeros(7), 500), np.arange(7))


def test_fast_curve_draws_its_points_and_breaks_at_gaps(qtbot):
    curve = FastCurve("#d62728")
    assert curve.pen().isCosmetic() and curve.sample.opts["pen"].color().name() == "#d62728"
    curve.setData([0, 1, 2, 3, 4], [1.0, 2.0, np.nan, 4.0, 5.0])
    x, y = curve.getData()
    assert list(x) == [0, 1, 2, 3, 4] and np.isnan(y[2])
    path = curve.path()
    # two pieces, each begun by a move (the NaN is a gap), and no point at the NaN
    elements = [path.elementAt(i) for i in range(path.elementCount())]
    assert [e.isMoveTo() for e in elements].count(True) == 2
    assert all(np.isfinite([e.x, e.y]).all() for e in elements)
    assert {(e.x, e.y) for e in elements} == {(0, 1), (1, 2), (3, 4), (4, 5)}
    assert curve.boundingRect().contains(4.0, 5.0)
    curve.setShadowPen("#202020")
    shadow = curve.childItems()[0]
    assert shadow.path() == path and shadow.isVisible()
    curve.setData([], [])
    assert curve.path().isEmpty() and shadow.path().isEmpty()
    curve.setShadowPen(None)
    assert not shadow.isVisible()


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_series(n):
    keep = PeakDecimator(4).indices(np.arange(float(n)))
    assert list(keep) == list(range(n))


def test_fast_curve_fits_a_view_and_answers_its_legend(qtbot):
    import pyqtgraph as pg

    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    curve = FastCurve("#1f77b4")
    plot.getPlotItem().addItem(curve)
    curve.setData(np.arange(10.0), np.linspace(0.0, 1e-3, 10))
    view = plot.getPlotItem().getViewBox()
    view.autoRange(padding=0)  # "View All": the data, not the pen's width in data units
    (x0, x1), (y0, y1) = view.viewRange()
    assert -0.1 < x0 <= 0 and 9 <= x1 < 9.1 and -1e-4 < y0 <= 0 and 1e-3 <= y1 < 1.1e-3
    legend = plot.getPlotItem().addLegend()
    legend.addItem(curve.sample, "run")
    sample = legend.items[0][0]

    class Click:
        def button(self):
            return Qt.MouseButton.LeftButton

        def accept(self):
            pass

    sample.mouseClickEvent(Click())  # a click on the entry hides the curve, as pyqtgraph's do
    assert not curve.isVisible()
    sample.mouseClickEvent(Click())
    assert curve.isVisible()


def test_a_falling_loss_is_shown_from_just_below_zero(qtbot):
    """Losses of 0 and up: the axis starts a sliver below 0, not at a band of negative
    losses no run can have (it went to -1 on a loss falling from 13)."""
    from gdviz.qt.loss_plot import LossPlotView

    view = LossPlotView()
    qtbot.addWidget(view)
    steps = np.arange(200, dtype=np.float64)
    loss = 13.0 * np.exp(-steps / 20)
    view.refresh_arrays([(1, steps, loss)])
    (y0, y1) = view.plot.getPlotItem().getViewBox().viewRange()[1]
    assert -0.03 * (y1 - y0) <= y0 <= loss.min() and y1 >= loss.max()
