"""Drawing the computation graph: a zoomable, pannable scene of boxes and arrows.

The graph model and its layout come from :mod:`gdviz.core.graph`. :class:`GraphScene`
draws one; :class:`GraphPanel` keeps it live: it recaptures the graph at the current
parameters (throttled), updates values in place when only they changed, and lays out a
new structure on a worker thread so big graphs never freeze the window.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QThread, QTimer, Signal
from PySide6.QtGui import (QBrush, QColor, QFont, QFontMetricsF, QImage, QLinearGradient, QPainter,
                           QPainterPath, QPen, QPolygonF)
from PySide6.QtWidgets import (QCheckBox, QGraphicsItem, QGraphicsPathItem, QGraphicsScene,
                               QGraphicsView, QHBoxLayout, QLabel, QMenu,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from ..core.graph import (CONSTANT, FROZEN, PARAM, REPEAT, ComputationGraph, layout_graph,
                          node_lines, save_graph_text, summarize)
from .plot_style import GUI_CLOCK
from .rendering import paint_image, paint_svg, save_image, save_svg

FONT = QFont("DejaVu Sans", 9)          # 9 pt at 100% zoom: readable on a projector
EDGE_FONT = QFont("DejaVu Sans", 8)
LINE_H = 16.0
PAD = 10.0
LAYER_GAP = 96.0  # room between layers for an edge's gradient label
LIVE_INTERVAL_MS = 200  # the graph recaptures at most five times a second
READABLE_SCALE = 1.0    # Fit never shrinks text below its 9 pt size: it scrolls instead


def grad_color(t: float | None) -> QColor:
    """Fill for a node: ``t`` in [0, 1] is its |gradient| on the graph's log scale."""
    if t is None:
        return QColor("#eeeeee")
    t = min(max(t, 0.0), 1.0)
    stops = [(0.0, (255, 250, 225)), (0.5, (253, 190, 120)), (1.0, (244, 120, 90))]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return QColor(*(round(a + (b - a) * f) for a, b in zip(c0, c1)))
    return QColor(*stops[-1][1])


def grad_scale(graph: ComputationGraph) -> tuple[float, float]:
    """log10 range of the nodes' largest |gradient| elements."""
    mags = [float(np.nanmax(np.abs(n.grad))) for n in graph.nodes
            if n.grad is not None and np.asarray(n.grad).size and np.isfinite(n.grad).any()]
    logs = [math.log10(m) for m in mags if m > 0]
    if not logs:
        return (0.0, 1.0)
    lo, hi = min(logs), max(logs)
    return (lo, hi if hi > lo else lo + 1)


def _fonts() -> list[QFont]:
    bold, italic = QFont(FONT), QFont(FONT)
    bold.setBold(True)
    italic.setItalic(True)
    return [bold, italic, FONT]


def node_size(node) -> tuple[float, float]:
    """The box a node needs, measured with the fonts it is drawn in, wide enough for any
    value its lines can show as the run goes on (so the box never has to grow)."""
    lines = node_lines(node)
    bold, italic, plain = (QFontMetricsF(f) for f in _fonts())
    widths = [bold.horizontalAdvance(lines[0])]
    for k, text in enumerate(lines[1:], start=1):
        metrics = italic if (k == 1 and node.op) else plain
        widths.append(metrics.horizontalAdvance(text))
        if text.startswith(("value ", "grad ")):
            widths.append(plain.horizontalAdvance(_widest(text)))
    return (max(widths) + 2 * PAD, len(lines) * LINE_H + PAD)


def _widest(text: str) -> str:
    """The longest text a value line of this kind can take: shape kept, numbers at their
    widest (summarize shows 4 significant digits)."""
    head, _, rest = text.partition(" ")
    if "," in rest:
        return f"{head} {rest.split(',')[0]}, -8.88e-88…-8.88e-88"
    return f"{head} -8.888e-88"


class NodeItem(QGraphicsItem):
    """A rounded box with the node's lines of text; hover shows the full tensors. Cached as
    a pixmap: only a node whose values changed is painted again."""

    def __init__(self, node, size: tuple[float, float]):
        super().__init__()
        self.node = node
        self.w, self.h = size
        self.fill = QColor("#eeeeee")
        self.setAcceptHoverEvents(True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.lines: list[str] = []
        self.update_node(node, None)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-self.w / 2 - 2, -self.h / 2 - 2, self.w + 4, self.h + 4)

    def update_node(self, node, t: float | None) -> None:
        lines = node_lines(node)
        fill = QColor("#f5f5f5") if node.kind in (CONSTANT, FROZEN, REPEAT) else grad_color(t)
        self.node = node
        if lines == self.lines and fill == self.fill:
            return
        self.lines, self.fill = lines, fill
        self.setToolTip(_tooltip(node))
        self.update()

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        rect = QRectF(-self.w / 2, -self.h / 2, self.w, self.h)
        kind = self.node.kind
        pen = QPen(QColor("#1565c0" if kind == PARAM else "#333333"),
                   2.2 if kind == PARAM or self.node.role else 1.0)
        if kind in (CONSTANT, FROZEN, REPEAT):
            pen.setStyle(Qt.PenStyle.DashLine if kind in (FROZEN, REPEAT) else Qt.PenStyle.SolidLine)
            pen.setColor(QColor("#888888"))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(QBrush(self.fill))
        radius = min(self.h / 2, 12) if kind == CONSTANT else 6
        painter.drawRoundedRect(rect, radius, radius)
        fonts = _fonts()
        y = rect.top() + PAD / 2
        width = rect.width() - 2 * PAD + 4
        for i, text in enumerate(self.lines):
            font = fonts[0] if i == 0 else fonts[1] if (i == 1 and self.node.op) else fonts[2]
            painter.setFont(font)
            painter.setPen(QColor("#555555" if (i == 1 and self.node.op) else "#111111"))
            # never spill out of the box: a text that cannot fit is cut with an ellipsis
            shown = QFontMetricsF(font).elidedText(text, Qt.TextElideMode.ElideRight, width)
            painter.drawText(QRectF(rect.left() + PAD - 2, y, width, LINE_H),
                             Qt.AlignmentFlag.AlignCenter, shown)
            y += LINE_H


def _tooltip(node) -> str:
    def full(value) -> str:
        if value is None:
            return "—"
        return np.array2string(np.asarray(value), precision=6, threshold=200, max_line_width=100)

    parts = [f"<b>{node.label}</b>" + (f" ({node.role})" if node.role else "")]
    if node.op:
        parts.append(f"op: {node.op}")
    if node.kind == REPEAT:
        parts.append("Alike terms of a long sum, folded into one box: untick \"fold "
                     "repeats\" above the graph to see each of them.")
        return "".join(f"<p>{p}</p>" for p in parts)
    parts.append(f"<pre>value:\n{full(node.value)}</pre>")
    if node.kind not in (CONSTANT, FROZEN):
        parts.append(f"<pre>d loss / d {node.role or node.label}:\n{full(node.grad)}</pre>")
    return "".join(f"<p>{p}</p>" for p in parts)


class EdgeItem(QGraphicsPathItem):
    """An arrow from an input to the op that used it, through the points the layout kept
    free for it (``via``). ``bow`` bends parallel edges (x*x) apart so that both, and both
    their labels, can be seen. Its label sits just before the arrow, in the gap in front of
    the op, where no node can be."""

    def __init__(self, start: QPointF, end: QPointF, across: bool = True, bow: float = 0.0,
                 via: list[tuple[float, float]] = ()):
        super().__init__()
        self.setPen(QPen(QColor("#666666"), 1.3))
        self.setZValue(-1)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        points = [start, *(QPointF(x, y) for x, y in via), end]
        path = QPainterPath(start)
        for a, b in zip(points, points[1:]):
            if across:  # horizontal tangents: in and out of each layer sideways
                mid = (a.x() + b.x()) / 2
                path.cubicTo(QPointF(mid, a.y() + bow), QPointF(mid, b.y() + bow), b)
            else:
                mid = (a.y() + b.y()) / 2
                path.cubicTo(QPointF(a.x() + bow, mid), QPointF(b.x() + bow, mid), b)
        line_end = path.length()
        head = [end, end + QPointF(-9, -5), end + QPointF(-9, 5), end] if across else \
            [end, end + QPointF(-5, -9), end + QPointF(5, -9), end]
        path.addPolygon(QPolygonF(head))
        self.setPath(path)
        self.label_pos = path.pointAtPercent(path.percentAtLength(max(0.0, line_end - 42)))
        if bow:  # parallel edges meet at the arrow: keep their labels apart
            self.label_pos += QPointF(0, bow * 0.7) if across else QPointF(bow * 2.5, 0)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        super().paint(painter, option, widget)


class EdgeLabel(QGraphicsItem):
    """The gradient flowing back along an edge, on a white tab centred on the edge."""

    def __init__(self, center: QPointF):
        super().__init__()
        self.text = ""
        self.center = center
        self.setZValue(1)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setToolTip("∂: the gradient of the loss flowing back along this edge (what the "
                        "op passes to its input)")
        self._rect = QRectF()

    def set_text(self, text: str) -> None:
        if text == self.text:
            return
        self.prepareGeometryChange()
        self.text = text
        w = QFontMetricsF(EDGE_FONT).horizontalAdvance(text) + 6 if text else 0
        self._rect = QRectF(self.center.x() - w / 2, self.center.y() - 8, w, 16)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        if not self.text:
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 225))
        painter.drawRoundedRect(self._rect, 3, 3)
        painter.setFont(EDGE_FONT)
        painter.setPen(QColor("#7b1fa2"))
        painter.drawText(self._rect, Qt.AlignmentFlag.AlignCenter, self.text)


class GraphScene(QGraphicsScene):
    """The drawing of one :class:`ComputationGraph` (positions must be set)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.graph: ComputationGraph | None = None
        self.node_items: dict[int, NodeItem] = {}
        self.edge_labels: list[EdgeLabel] = []
        self.show_edge_grads = True
        self.setBackgroundBrush(QBrush(QColor("white")))

    def build(self, graph: ComputationGraph) -> None:
        self.clear()
        self.graph = graph
        self.node_items, self.edge_labels = {}, []
        lo, hi = grad_scale(graph)
        for node in graph.nodes:
            item = NodeItem(node, node_size(node))
            x, y = graph.positions.get(node.id, (0.0, 0.0))
            item.setPos(x, y)
            self.addItem(item)
            self.node_items[node.id] = item
        across = graph.direction == "LR"
        seen: dict[tuple[int, int], int] = {}
        for index, edge in enumerate(graph.edges):
            a, b = self.node_items[edge.source], self.node_items[edge.target]
            k = seen[(edge.source, edge.target)] = seen.get((edge.source, edge.target), -1) + 1
            bow = 0.0 if k == 0 else (18.0 if k % 2 else -18.0) * ((k + 1) // 2)
            if across:
                start, end = a.pos() + QPointF(a.w / 2, 0), b.pos() - QPointF(b.w / 2, 0)
            else:
                start, end = a.pos() + QPointF(0, a.h / 2), b.pos() - QPointF(0, b.h / 2)
            item = EdgeItem(start, end, across, bow, graph.routes.get(index, ()))
            self.addItem(item)
            label = EdgeLabel(item.label_pos)
            self.addItem(label)
            self.edge_labels.append(label)
        self.update_values(graph, (lo, hi))
        self.setSceneRect(self.itemsBoundingRect().adjusted(-20, -20, 20, 20))

    def update_values(self, graph: ComputationGraph, scale: tuple[float, float] | None = None) -> None:
        """New values and gradients on the same structure: no relayout."""
        self.graph = graph
        lo, hi = scale or grad_scale(graph)
        for node in graph.nodes:
            item = self.node_items.get(node.id)
            if item is None:
                continue
            t = None
            if node.grad is not None and np.isfinite(node.grad).any():
                m = float(np.nanmax(np.abs(node.grad)))
                t = (math.log10(m) - lo) / (hi - lo) if m > 0 else 0.0
            item.update_node(node, t)
        for edge, label in zip(graph.edges, self.edge_labels):
            label.set_text(f"∂ {summarize(edge.grad, 3)}"
                           if edge.grad is not None and self.show_edge_grads else "")

    def set_edge_grads_visible(self, on: bool) -> None:
        self.show_edge_grads = on
        if self.graph is not None:
            self.update_values(self.graph)

    # --- export -------------------------------------------------------------------------

    def _render(self, painter: QPainter, target: QRectF, rect: QRectF) -> None:
        # Cached items would come out as bitmaps: text an SVG cannot search, a blurry 2x PNG.
        items = [i for i in self.items() if i.cacheMode() != QGraphicsItem.CacheMode.NoCache]
        for item in items:
            item.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        try:
            self.render(painter, target, rect)
        finally:
            for item in items:
                item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def render_svg(self, path: str | Path) -> None:
        """Write the drawing as SVG (QSvgGenerator: pyqtgraph's exporter fails on plain items)."""
        rect = self.sceneRect()
        save_svg(paint_svg(rect.width(), rect.height(), "gdviz computation graph",
                           lambda painter, target: self._render(painter, target, rect)), path)

    def render_image(self, scale: float = 2.0) -> QImage:
        rect = self.sceneRect()
        return paint_image(rect.width(), rect.height(), scale,
                           lambda painter, target: self._render(painter, target, rect))

    def render_png(self, path: str | Path, scale: float = 2.0) -> None:
        save_image(self.render_image(scale), path)


def save_graph(graph: ComputationGraph, path: str | Path, scale: float = 2.0,
               constants: bool = False, fold: bool = True) -> None:
    """Write ``graph`` by suffix: .svg or .png (the window's drawing: long sums folded
    unless ``fold`` is off), .json or .dot (every node)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".svg", ".png"):
        shown = graph if constants else graph.without_constants()
        scene = draw_graph(shown.collapsed() if fold else shown)
        scene.render_svg(path) if suffix == ".svg" else scene.render_png(path, scale)
    else:
        save_graph_text(graph, path)


def lay_out(graph: ComputationGraph) -> dict[int, tuple[float, float]]:
    """The window's layout: measured boxes, layers spaced for the edge labels."""
    return layout_graph(graph, {n.id: node_size(n) for n in graph.nodes}, layer_gap=LAYER_GAP)


def draw_graph(graph: ComputationGraph) -> GraphScene:
    """A laid-out scene for ``graph`` (used headless by ``gdviz graph``)."""
    lay_out(graph)
    scene = GraphScene()
    scene.build(graph)
    return scene


class GraphView(QGraphicsView):
    """Wheel zooms (around the cursor), drag pans, fit_all fits."""

    def __init__(self, scene: GraphScene, parent: QWidget | None = None):
        super().__init__(scene, parent)
        self.setObjectName("graphView")
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setToolTip("")

    def wheelEvent(self, event) -> None:  # noqa: N802
        factor = 1.15 ** (event.angleDelta().y() / 120)
        scale = self.transform().m11()
        if 0.1 < scale * factor < 8:  # zooming out below 100% is the user's choice
            self.scale(factor, factor)

    def paintEvent(self, event) -> None:  # noqa: N802
        start = time.perf_counter()
        super().paintEvent(event)
        GUI_CLOCK.add(time.perf_counter() - start)

    def fit_all(self) -> None:
        """Fit what fits at a readable size: a graph larger than the view is shown at 100%
        from its inputs, and the rest is a scroll away (text is never shrunk below 9 pt)."""
        rect = self.scene().itemsBoundingRect()
        if not rect.isValid():
            return
        self.fitInView(rect.adjusted(-10, -10, 10, 10), Qt.AspectRatioMode.KeepAspectRatio)
        scale = self.transform().m11()
        if scale > 1.5 or scale < READABLE_SCALE:
            self.resetTransform()
            if scale > 1.5:  # a tiny graph: do not blow it up
                self.centerOn(rect.center())
            else:  # start where the data starts (the inputs), vertically centred
                self.centerOn(rect.left() + self.viewport().width() / 2 - 10, rect.center().y())


class GradientLegend(QWidget):
    """The color scale of |gradient|."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.range = (0.0, 1.0)
        self.setFixedSize(180, 22)
        self.setToolTip("Node color: the largest |gradient| in the node, on a log scale")

    def set_range(self, lo: float, hi: float) -> None:
        self.range = (lo, hi)
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        bar = QRectF(70, 5, 64, 12)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        for t in (0.0, 0.25, 0.5, 0.75, 1.0):
            grad.setColorAt(t, grad_color(t))
        p.fillRect(bar, grad)
        p.setPen(QColor("#444"))
        p.drawRect(bar)
        p.setFont(QFont("DejaVu Sans", 8))
        lo, hi = self.range
        p.drawText(QRectF(0, 3, 68, 16), Qt.AlignmentFlag.AlignRight, f"|grad| {_power(lo)}")
        p.drawText(QRectF(138, 3, 42, 16), Qt.AlignmentFlag.AlignLeft, _power(hi))
        p.end()


def _power(exponent: float) -> str:
    """10 to a whole power, written as 1e-3, 1, 1e2 (not 1e-0)."""
    k = round(exponent)
    return "1" if k == 0 else f"1e{k}"


class LayoutThread(QThread):
    """One thread that lays graphs out, off the GUI thread. Only the latest request is
    kept: a new structure arriving while one is laid out replaces the waiting one."""

    done = Signal(int, object)  # token, ComputationGraph with positions

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("gdviz-graph-layout")
        self._lock = threading.Condition()
        self._request: tuple[int, ComputationGraph, dict] | None = None
        self._stopping = False

    def submit(self, token: int, graph: ComputationGraph, sizes: dict) -> None:
        with self._lock:
            self._request = (token, graph, sizes)
            self._lock.notify()
        if not self.isRunning():
            self.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify()
        self.wait(5_000)

    def run(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                token, graph, sizes = self._request
                self._request = None
            start = time.perf_counter()
            layout_graph(graph, sizes, layer_gap=LAYER_GAP)
            graph.layout_seconds = time.perf_counter() - start
            self.done.emit(token, graph)


class GraphPanel(QWidget):
    """The live computation graph of the selected run, with zoom, fit and export.

    It asks for a capture at the run's current point (``captureRequested``, at most five
    times a second; the worker thread owns torch and answers through :meth:`show_graph`),
    updates values in place when only they changed, and lays out a new structure on its
    layout thread."""

    exportRequested = Signal(str)  # "svg", "png" or "json"
    captureRequested = Signal(object, int)  # flat parameters, token
    popOutRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("graphPanel")
        self.scene = GraphScene(self)
        self.view = GraphView(self.scene)
        self.graph: ComputationGraph | None = None      # as drawn (numbers folded or not)
        self.full_graph: ComputationGraph | None = None  # as captured, every node
        self._structure = None
        self._token = 0
        self._pending_point: np.ndarray | None = None
        self._in_flight = False  # one capture at a time: dragging the timeline never queues
        self._shown_point: np.ndarray | None = None
        self._latest: ComputationGraph | None = None
        self.last_layout_s = 0.0
        self._layout = LayoutThread(self)
        self._layout.done.connect(self._on_layout_done)
        self._throttle = QTimer(self, singleShot=True, interval=LIVE_INTERVAL_MS)
        self._throttle.timeout.connect(self._on_throttle_timeout)
        self.destroyed.connect(self._layout.stop)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Computation graph</b>"))
        self.status = QLabel()
        self.status.setStyleSheet("color: #666;")
        self.status.setMinimumWidth(40)  # cut short, never widening the window
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        header.addWidget(self.status, 1)
        self.legend = GradientLegend()
        header.addWidget(self.legend)
        self.edgeGradCheck = QCheckBox("∂ on edges", objectName="edgeGradCheck")
        self.edgeGradCheck.setChecked(True)
        self.edgeGradCheck.setToolTip("∂ on an edge: the gradient of the loss flowing back "
                                      "along it, from the op to its input")
        self.edgeGradCheck.toggled.connect(self.scene.set_edge_grads_visible)
        header.addWidget(self.edgeGradCheck)
        self.numbersCheck = QCheckBox("numbers", objectName="graphNumbersCheck")
        self.numbersCheck.setToolTip("Show the numbers typed in the expression as nodes of "
                                     "their own (otherwise they are part of the op's label)")
        self.numbersCheck.toggled.connect(self._on_numbers_check_toggled)
        header.addWidget(self.numbersCheck)
        self.foldCheck = QCheckBox("fold repeats", objectName="graphFoldCheck")
        self.foldCheck.setChecked(True)
        self.foldCheck.setToolTip("Fold the alike terms of a long sum (8 or more) into one "
                                  "box, keeping the first two and the last")
        self.foldCheck.toggled.connect(self._on_numbers_check_toggled)
        header.addWidget(self.foldCheck)
        self.fitButton = QToolButton(objectName="graphFitButton")
        self.fitButton.setText("Fit")
        self.fitButton.setToolTip("Fit the whole graph in view (wheel zooms, drag pans)")
        self.fitButton.clicked.connect(self.view.fit_all)
        header.addWidget(self.fitButton)
        # one Export button with a menu: the header must fit a 1366-pixel screen
        self.exportButton = QToolButton(objectName="graphExportButton")
        self.exportButton.setText("Export")
        self.exportButton.setToolTip("Save the graph as SVG or PNG, as drawn here")
        self.exportButton.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.exportButton)
        for kind in ("svg", "png"):
            menu.addAction(f"{kind.upper()}…", lambda k=kind: self.exportRequested.emit(k))
        self.exportButton.setMenu(menu)
        header.addWidget(self.exportButton)
        self.popButton = QToolButton(objectName="graphPopButton")
        self.popButton.setText("Pop out")
        self.popButton.setToolTip("Show the graph in a window of its own (make it as large as "
                                  "the screen); close that window to put it back")
        self.popButton.clicked.connect(self.popOutRequested.emit)
        header.addWidget(self.popButton)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)

    def shutdown(self) -> None:
        """Stop the layout thread (the window calls this when it closes)."""
        self._layout.stop()

    def set_problem(self) -> None:
        """A new problem: forget the drawn graph."""
        self.graph, self.full_graph, self._structure, self._latest = None, None, None, None
        self._token += 1  # a capture or layout still on its way for the old problem is dropped
        self._shown_point = None
        self._pending_point = None  # a point of the old problem must not be asked for
        self._in_flight = False  # its answer (if any) is dropped by its token
        self._throttle.stop()
        self.scene.clear()
        self.scene.graph = None
        self.status.setText("")  # the old graph's size is no longer true

    def show_point(self, flat: np.ndarray) -> None:
        """Ask for the graph at these parameter values (at most every LIVE_INTERVAL_MS)."""
        if not len(flat) or (self._shown_point is not None and np.array_equal(self._shown_point, flat)):
            return
        self._pending_point = np.array(flat, copy=True)
        if not self._throttle.isActive():
            self._throttle.start()

    def refresh_now(self) -> None:
        if self._throttle.isActive():
            self._throttle.stop()
        self._on_throttle_timeout()

    def _on_throttle_timeout(self) -> None:
        if self._pending_point is None:
            return
        if self._in_flight:
            return  # asked again when the capture in flight is answered: the latest wins
        self._shown_point = self._pending_point
        self._pending_point = None
        self._in_flight = True
        self.captureRequested.emit(self._shown_point, self._token)

    def show_graph(self, graph: ComputationGraph | None) -> None:
        """A captured graph (None: the capture was dropped): new values on the same
        structure, or a new layout."""
        self._in_flight = False
        if self._pending_point is not None and not self._throttle.isActive():
            self._on_throttle_timeout()
        if graph is None or getattr(graph, "token", self._token) != self._token:
            return
        self.full_graph = graph
        key = (graph.structure_key(), self.numbersCheck.isChecked(), self.foldCheck.isChecked())
        shown = graph if self.numbersCheck.isChecked() else graph.without_constants()
        if self.foldCheck.isChecked():
            shown = shown.collapsed()
        if key == self._structure:
            if self.graph is None:  # its layout is still running: show these values after
                self._latest = shown
                return
            self._show_values(shown)
            return
        self._structure = key
        self._latest = None
        self.status.setText(f"{len(shown.nodes)} nodes: laying out…")
        self._layout.submit(self._token, shown, {n.id: node_size(n) for n in shown.nodes})

    def _on_numbers_check_toggled(self, _on: bool) -> None:
        self._structure = None
        if self.full_graph is not None:
            self.show_graph(self.full_graph)

    def _show_values(self, graph: ComputationGraph) -> None:
        graph.positions = self.graph.positions
        self.graph = graph
        self.scene.update_values(graph)
        self.legend.set_range(*grad_scale(graph))

    def _on_layout_done(self, token: int, graph: ComputationGraph) -> None:
        if token != self._token:
            return
        self.last_layout_s = getattr(graph, "layout_seconds", 0.0)
        self.graph = graph
        self.scene.build(graph)
        self.legend.set_range(*grad_scale(graph))
        self.status.setText(f"{len(graph.nodes)} nodes, {len(graph.edges)} edges "
                            f"(layout {self.last_layout_s * 1000:.0f} ms)")
        self.view.fit_all()
        if self._latest is not None:
            self._show_values(self._latest)
            self._latest = None
