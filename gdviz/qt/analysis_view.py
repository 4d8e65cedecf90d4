"""The analyses' tabs: the learning-rate range test and the curvature.

Views: they announce what the user asks for (``runRequested``, ``lrChosen``,
``computeRequested``) and draw the plain answers they are given (the core's ``LrRange`` and
``Curvature`` results, and arrays); the analysis controller (:mod:`.analysis`) computes them on
the worker.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox,
                               QVBoxLayout, QWidget)

from .plot_style import legend_style, new_plot
from .problem_panel import LogSpinBox

EDGE_COLOR = "#c62828"
SUGGEST_COLOR = "#2e7d32"
CHOSEN_COLOR = "#ef6c00"


def _vline(color: str, text: str, movable: bool = False, position: float = 0.9) -> pg.InfiniteLine:
    line = pg.InfiniteLine(angle=90, movable=movable,
                           pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine),
                           label=text, labelOpts={"position": position, "color": color,
                                                  "fill": pg.mkBrush(255, 255, 255, 210),
                                                  "movable": False, "anchors": [(0, 0.5), (0, 0.5)]})
    line.setZValue(10)
    return line


class LrRangeView(QWidget):
    """The learning-rate range test: the final loss of a short run at each of many learning
    rates from the same start, the divergence edge, a suggested learning rate, and a chosen
    one (drag the orange line or click the plot) to use for the selected run."""

    runRequested = Signal(float, float, int, int)   # lowest lr, highest lr, how many, steps
    lrChosen = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lrRangeView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.lrMinSpin = LogSpinBox(1e-8, 100.0, objectName="lrRangeMin")
        self.lrMinSpin.setValue(1e-6)
        self.lrMinSpin.setToolTip("The smallest learning rate tried")
        self.lrMaxSpin = LogSpinBox(1e-8, 100.0, objectName="lrRangeMax")
        self.lrMaxSpin.setValue(10.0)
        self.lrMaxSpin.setToolTip("The largest learning rate tried")
        self.countSpin = QSpinBox(objectName="lrRangeCount")
        self.countSpin.setRange(2, 10_000)
        self.countSpin.setValue(200)
        self.countSpin.setToolTip("How many learning rates, spaced evenly on a log scale")
        self.stepsSpin = QSpinBox(objectName="lrRangeSteps")
        self.stepsSpin.setRange(1, 100_000)
        self.stepsSpin.setValue(100)
        self.stepsSpin.setToolTip("Steps of each short run")
        self.runButton = QPushButton("Run test", objectName="lrRangeRun")
        self.runButton.setToolTip("Run the selected run's optimizer from where it stands at "
                                  "every learning rate at once (one batched sweep)")
        self.runButton.clicked.connect(self._on_run_clicked)
        self.useButton = QPushButton("Use this lr", objectName="lrRangeUse")
        self.useButton.setToolTip("Set the selected run's learning rate to the chosen one "
                                  "(the orange line: drag it, or click the plot)")
        self.useButton.setEnabled(False)
        self.useButton.clicked.connect(self._on_use_clicked)
        for text, widget in (("lr from", self.lrMinSpin), ("to", self.lrMaxSpin),
                             ("", self.countSpin), ("rates,", self.stepsSpin)):
            if text:
                row.addWidget(QLabel(text))
            row.addWidget(widget)
        row.addWidget(QLabel("steps each"))
        row.addWidget(self.runButton)
        row.addStretch(1)
        row.addWidget(self.useButton)
        layout.addLayout(row)
        self.summary = QLabel("Press Run test: the final loss of a short run at each learning "
                              "rate shows where learning starts and where it breaks.",
                              objectName="lrRangeSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.summary)

        self.plot, item = new_plot()
        self.item = item
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "learning rate")
        item.setLabel("left", "final loss")
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#0072B2", width=2), symbol="o", symbolSize=4,
                                     symbolBrush="#0072B2", symbolPen=None, connect="finite")
        self.diverged = pg.PlotDataItem(pen=None, symbol="x", symbolSize=8, symbolBrush=EDGE_COLOR,
                                        symbolPen=pg.mkPen(EDGE_COLOR))
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(198, 40, 40, 28),
                                          pen=pg.mkPen(None))
        self.edge = _vline(EDGE_COLOR, "edge", position=0.5)
        self.suggested = _vline(SUGGEST_COLOR, "suggested", position=0.82)
        self.chosen = _vline(CHOSEN_COLOR, "chosen", movable=True, position=0.66)
        self.chosen.sigPositionChanged.connect(self._on_chosen_moved)
        self.start = pg.InfiniteLine(angle=0, pen=pg.mkPen("#777", width=1,
                                                          style=Qt.PenStyle.DotLine),
                                     label="start loss", labelOpts={"position": 0.03,
                                                                    "color": "#555"})
        self.legend = item.addLegend(offset=(10, 10), **legend_style())
        item.addItem(self.region)
        for thing in (self.curve, self.diverged):
            item.addItem(thing)
        for line in (self.start, self.edge, self.suggested, self.chosen):
            item.addItem(line, ignoreBounds=True)
        self.legend.addItem(self.curve, "final loss")
        self.legend.addItem(self.diverged, "diverged")
        self._show_lines(False)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        layout.addWidget(self.plot, 1)
        self.result = None
        self.info: dict = {}

    # --- answers --------------------------------------------------------------------------

    def clear(self) -> None:
        """A new problem: no result."""
        self.result, self.info = None, {}
        self.curve.setData([], [])
        self.diverged.setData([], [])
        self._show_lines(False)
        self.useButton.setEnabled(False)
        self.useButton.setText("Use this lr")
        self.runButton.setEnabled(True)
        self.summary.setText("Press Run test: the final loss of a short run at each learning "
                             "rate shows where learning starts and where it breaks.")
        self._show_lr_span()

    def _show_lr_span(self) -> None:
        """The axis over the rates to test, before there are any results (its decades
        labelled, not the 2 ... 9 of an empty log axis)."""
        lo, hi = self.lrMinSpin.value(), self.lrMaxSpin.value()
        if 0 < lo < hi:
            self.item.setXRange(math.log10(lo), math.log10(hi), padding=0.02)

    def show_running(self, text: str) -> None:
        self.summary.setText(html.escape(text))
        self.runButton.setEnabled(False)
        if self.result is None:
            self._show_lr_span()

    def show_error(self, text: str) -> None:
        self.summary.setText(f"<span style='color:{EDGE_COLOR}'>{html.escape(text)}</span>")
        self.runButton.setEnabled(True)

    def show_result(self, result, info: dict) -> None:
        """Draw an ``LrRange`` (see gdviz.core.analysis.lr_range) made for the run ``info``
        describes."""
        self.result, self.info = result, info
        self.runButton.setEnabled(True)
        lrs, loss = np.asarray(result.lrs), np.asarray(result.final_loss, dtype=np.float64)
        finite = loss[np.isfinite(loss)]
        positive = len(finite) > 0 and finite.min() > 0 and result.initial_loss > 0
        spread = positive and max(finite.max(), result.initial_loss) / finite.min() > 100
        self.item.setLogMode(x=True, y=bool(spread))
        self.item.setLabel("left", "final loss" + (" (log)" if spread else ""))
        self.curve.setData(lrs, loss)
        bad = np.asarray(result.diverged, dtype=bool)
        # the view ends a little above the start's loss: what blows up past the edge leaves
        # it (the diverged runs are marked at its top), what learns keeps the room
        start = result.initial_loss
        low = float(finite.min()) if len(finite) else start
        top = start * 1e3 if spread else start + max(0.5 * (start - low), 0.1 * abs(start), 1e-3)
        if len(finite):
            top = min(top, max(float(finite.max()), start))
        self.diverged.setData(lrs[bad], np.full(int(bad.sum()), top))
        y = math.log10(result.initial_loss) if spread else result.initial_loss
        self.start.setValue(y)
        lo, hi = math.log10(lrs[0]), math.log10(lrs[-1])
        self.chosen.setBounds((lo, hi))
        edge, suggested = result.max_stable_lr, result.suggested_lr
        self.edge.setVisible(edge is not None)
        self.region.setVisible(edge is not None)
        if edge is not None:
            self.edge.setValue(math.log10(edge))
            self.edge.label.setFormat(f"edge {edge:.3g}")
            self.region.setRegion((math.log10(edge), hi))
        self.suggested.setVisible(suggested is not None)
        if suggested is not None:
            self.suggested.setValue(math.log10(suggested))
            self.suggested.label.setFormat(f"suggested {suggested:.3g}")
        pick = suggested if suggested is not None else edge
        self.start.show()
        self.chosen.setVisible(pick is not None)
        self.useButton.setEnabled(pick is not None)
        if pick is not None:
            self.chosen.setValue(math.log10(pick))
            self._on_chosen_moved()
        # ranges set here, not by autorange (which waits for the next paint): what is drawn
        # and where a click lands agree at once
        ys = np.array([low, top])
        ys = np.log10(ys) if spread else ys
        y0, y1 = float(ys.min()), float(ys.max())
        pad = 0.06 * (y1 - y0) or 1.0
        self.item.setRange(xRange=(lo, hi), yRange=(y0 - pad, y1 + pad), padding=0.02)
        self.summary.setText(self._summary_html(result, info))

    def _summary_html(self, result, info: dict) -> str:
        where = f"from step {info.get('step')}" if info.get("step") else "from its start"
        head = (f"<b>{html.escape(str(info.get('label', '')))}</b>, {len(result.lrs)} learning "
                f"rates, {result.steps} steps each, {where} (loss {result.initial_loss:.4g}), "
                f"in {result.seconds:.2f} s.")
        if result.max_stable_lr is None:
            return head + (f" <span style='color:{EDGE_COLOR}'>No learning rate lowered the "
                           "loss: try more steps or another start.</span>")
        parts = [head, f"<span style='color:{EDGE_COLOR}'>Edge: from "
                       f"{_next_lr(result):s} on the runs end above their start or diverge; "
                       f"{result.max_stable_lr:.3g} is the largest that lowers the loss.</span>"]
        if result.suggested_lr is not None:
            parts.append(f"<span style='color:{SUGGEST_COLOR}'>Suggested: "
                         f"{result.suggested_lr:.3g}, where the loss falls fastest as the lr "
                         "grows.</span>")
        return " ".join(parts)

    @property
    def chosen_lr(self) -> float | None:
        if self.result is None or not self.chosen.isVisible():
            return None
        return float(f"{10 ** self.chosen.value():.3g}")

    # --- the user's choices -----------------------------------------------------------------

    def _on_run_clicked(self) -> None:
        low, high = self.lrMinSpin.value(), self.lrMaxSpin.value()
        if not low < high:
            self.show_error(f"The lowest learning rate ({low:g}) must be below the highest "
                            f"({high:g}).")
            return
        self.runRequested.emit(low, high, self.countSpin.value(), self.stepsSpin.value())

    def _on_chosen_moved(self, *_args) -> None:
        lr = self.chosen_lr
        if lr is not None:
            self.chosen.label.setFormat(f"chosen {lr:.3g}")
            self.useButton.setText(f"Use lr {lr:.3g}")

    def _on_use_clicked(self) -> None:
        lr = self.chosen_lr
        if lr is not None:
            self.lrChosen.emit(lr)

    def _on_scene_mouse_clicked(self, event) -> None:
        if self.result is None or event.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.item.getViewBox()
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        x = vb.mapSceneToView(event.scenePos()).x()
        lo, hi = math.log10(self.result.lrs[0]), math.log10(self.result.lrs[-1])
        self.chosen.setValue(min(max(x, lo), hi))
        self.chosen.show()
        self.useButton.setEnabled(True)
        event.accept()

    def _show_lines(self, on: bool) -> None:
        for item in (self.edge, self.suggested, self.chosen, self.start, self.region):
            item.setVisible(on)


def _next_lr(result) -> str:
    """The first learning rate above the largest stable one."""
    above = np.asarray(result.lrs)[np.asarray(result.lrs) > result.max_stable_lr]
    return f"{above[0]:.3g}" if len(above) else f"{result.max_stable_lr:.3g}"


def _numbers(values, limit: int = 6) -> str:
    values = list(values)
    shown = ", ".join(f"{v:.4g}" for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


class CurvatureView(QWidget):
    """The Hessian at the selected run's point (eigenvalues, condition number, the learning
    rates beyond which descent is unstable there) and lambda_max at each step of the run
    against the edge of stability 2/lr (Cohen et al., 2021: gradient descent's sharpness
    rises to 2/lr and hovers there)."""

    computeRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("curvatureView")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        left = QVBoxLayout()
        self.summary = QLabel("The curvature at the selected run's point shows here.",
                              objectName="curvatureSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary.setMinimumWidth(260)
        self.computeButton = QPushButton("Compute now", objectName="curvatureCompute")
        self.computeButton.setToolTip("The Hessian at the selected run's point now (large "
                                      "problems are not followed on their own)")
        self.computeButton.clicked.connect(self.computeRequested.emit)
        left.addWidget(self.summary, 1)
        left.addWidget(self.computeButton, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addLayout(left, 2)

        self.plot, item = new_plot()
        self.item = item
        item.setLabel("bottom", "step")
        item.setLabel("left", "λmax (sharpness)")
        self.legend = item.addLegend(offset=(-10, -10), **legend_style())
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#0072B2", width=2), connect="finite")
        self.edge = pg.InfiniteLine(angle=0, pen=pg.mkPen(EDGE_COLOR, width=2,
                                                          style=Qt.PenStyle.DashLine),
                                    label="2/lr", labelOpts={"position": 0.02, "color": EDGE_COLOR,
                                                             "fill": pg.mkBrush(255, 255, 255, 210),
                                                             "anchors": [(0, 1), (0, 1)]})
        self.edge.hide()
        item.addItem(self.curve)
        item.addItem(self.edge)
        self.legend.addItem(self.curve, "λmax at each step")
        self.note = pg.TextItem(color="#666", anchor=(0, 0))
        self.note.setParentItem(item.getViewBox())
        self.note.setPos(8, 4)
        layout.addWidget(self.plot, 3)
        self.info: dict = {}

    def clear(self) -> None:
        self.summary.setText("The curvature at the selected run's point shows here.")
        self.curve.setData([], [])
        self.edge.hide()
        self.note.setText("")

    def show_point(self, curvature, info: dict) -> None:
        """The Hessian's eigenvalues at one point (a ``Curvature`` of
        gdviz.core.analysis.curvature) and what they mean for the run ``info`` describes."""
        self.info = info
        values = np.asarray(curvature.eigenvalues, dtype=np.float64)
        point = info.get("point_text", "")
        lines = [f"<b>At step {info.get('step', 0)} of {html.escape(str(info.get('label', '')))}"
                 f"</b>" + (f" ({html.escape(point)})" if point else "")]
        which = "eigenvalues" if curvature.exact else f"top {len(values)} eigenvalues (Lanczos)"
        lines.append(f"Hessian {which}: {_numbers(values[::-1])}")
        cond = curvature.condition_number
        if cond is not None:
            lines.append("condition number: " + (f"{cond:.4g}" if math.isfinite(cond)
                                                 else "infinite (singular)"))
        lam = float(values.max())
        if lam > 0:
            beta = info.get("momentum", 0.9)
            lines.append(f"stable learning rates here: below <b>{2 / lam:.4g}</b> for plain "
                         f"gradient descent (2/λmax), below <b>{2 * (1 + beta) / lam:.4g}</b> "
                         f"with momentum {beta:g} (2(1+β)/λmax)")
        else:
            lines.append("no direction curves up here: no learning rate is too large")
        limit = info.get("limit")
        lr = info.get("lr")
        if limit is not None and limit.limit is not None and lr is not None:
            past = lr > limit.limit
            color = EDGE_COLOR if past else SUGGEST_COLOR
            verdict = "past the limit: steps will grow" if past else "below the limit"
            lines.append(f"<span style='color:{color}'>this run's lr {lr:.4g} is {verdict}"
                         "</span>")
        elif limit is not None:
            lines.append(f"{html.escape(str(info.get('optimizer_title', 'this optimizer')))} "
                         "scales its steps per element: no 2/λ limit applies to it")
        self.summary.setText("<br>".join(lines))

    def show_error(self, text: str) -> None:
        self.summary.setText(f"<span style='color:{EDGE_COLOR}'>{html.escape(text)}</span>")

    def show_sharpness(self, data: dict) -> None:
        """lambda_max at steps of the selected run (``data``: steps, lambda_max, the edge of
        stability for its settings as (value, name) or None, a note)."""
        steps, values = data["steps"], data["lambda_max"]
        self.curve.setData(steps, values)
        color = data.get("color") or "#0072B2"
        self.curve.setPen(pg.mkPen(color, width=2))
        edge = data.get("edge")
        finite = np.asarray(values)[np.isfinite(values)]
        if edge is not None and math.isfinite(edge[0]):
            self.edge.setValue(edge[0])
            self.edge.label.setFormat(f"{edge[1]} = {edge[0]:.4g}")
            self.edge.show()
        else:
            self.edge.hide()
        note = data.get("note", "")
        if not note and not len(steps):
            note = "Step or play the run: λmax at each of its steps shows here"
        elif not note and edge is None and len(finite):
            note = "an adaptive method: its own steps set no 2/lr edge"
        self.note.setText(note)
        # the edge in view as well as the curve
        lo = min([*finite.tolist(), *([edge[0]] if edge is not None and self.edge.isVisible() else [])],
                 default=0.0)
        hi = max([*finite.tolist(), *([edge[0]] if edge is not None and self.edge.isVisible() else [])],
                 default=1.0)
        pad = 0.08 * (hi - lo) or 1.0
        self.item.setYRange(min(lo, 0.0) - pad if lo >= 0 else lo - pad, hi + pad, padding=0)
        if len(steps):
            self.item.setXRange(0, max(10, int(steps[-1])), padding=0.02)
