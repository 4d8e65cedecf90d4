"""The computation graph: structure, names and numbers against torch; drawing; export."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from gdviz.cli import main
from gdviz.core.graph import CONSTANT, FROZEN, PARAM, REPEAT, layout_graph
from gdviz.core.graph_capture import capture_graph
from gdviz.core.problem import ParamSpec, Problem


def graph_of(function, loss="y", **params):
    problem = Problem(function, loss, {k: ParamSpec(v) for k, v in params.items()})
    return problem, capture_graph(problem, {n: t.numpy() for n, t in problem.initial.items()})


def by_op(graph, op):
    return [n for n in graph.nodes if n.op == op]


def test_seed_autograd_graph():
    _, g = graph_of("2*x**2 + 3", x="full((2,3), 4)")
    x = next(n for n in g.nodes if n.kind == PARAM)
    assert x.label == "x" and np.all(x.value == 4) and np.all(x.grad == 16)
    (pow_,), (mul,), (add,) = by_op(g, "PowBackward0"), by_op(g, "MulBackward0"), by_op(g, "AddBackward0")
    assert pow_.label == "x**2" and mul.label == "2*x**2"
    assert add.role == "y" and np.all(add.value == 35)
    assert sorted(n.label for n in g.nodes if n.kind == CONSTANT) == ["2", "2", "3"]
    edges = {(e.source, e.target) for e in g.edges}
    assert (x.id, pow_.id) in edges and (pow_.id, mul.id) in edges and (mul.id, add.id) in edges


def test_seed_linear_chain_and_gradients_match_torch():
    problem, g = graph_of("X + 1", "(3 - y)**2 / 2", X="rand(1)")
    X = problem.initial["X"].clone().requires_grad_()
    Y = X + 1
    Y.retain_grad()
    d = 3 - Y
    d.retain_grad()
    sq = d**2
    sq.retain_grad()
    loss = (sq / 2).sum()
    loss.backward()
    node_x = next(n for n in g.nodes if n.kind == PARAM)
    y = next(n for n in g.nodes if n.role == "y")
    diff = next(n for n in g.nodes if n.label == "3 - y")
    square = next(n for n in g.nodes if n.label == "(3 - y)**2")
    assert node_x.grad == pytest.approx(X.grad.numpy())
    assert node_x.grad == pytest.approx(-(3 - Y.detach().numpy()))  # the seed's -(3 - Y)
    assert y.grad == pytest.approx(Y.grad.numpy()) and y.value == pytest.approx(Y.detach().numpy())
    assert diff.grad == pytest.approx(d.grad.numpy()) and square.grad == pytest.approx(sq.grad.numpy())
    assert next(n for n in g.nodes if n.role == "loss").op == "SumBackward0"
    # The gradient flowing along X -> y is X's gradient.
    edge = next(e for e in g.edges if e.source == node_x.id)
    assert edge.grad == pytest.approx(X.grad.numpy())


def test_frozen_parameter_is_a_constant_node():
    _, g = graph_of("w*t", w="1", t="3")
    problem = Problem("w*t", "y", {"w": ParamSpec("1"), "t": ParamSpec("3", frozen=True)})
    g = capture_graph(problem, {"w": np.array(1.0), "t": np.array(3.0)})
    t = next(n for n in g.nodes if n.label == "t")
    assert t.kind == FROZEN and t.grad is None and float(t.value) == 3
    assert next(n for n in g.nodes if n.kind == PARAM).grad == pytest.approx(3.0)


def test_long_sum_graph_is_walked_and_laid_out():
    text = " + ".join(f"sin({i}*x)" for i in range(1, 301))
    problem = Problem(text, "y", {"x": ParamSpec("0.5")})
    g = capture_graph(problem, {"x": np.array(0.5)})
    assert len(g.nodes) > 600
    x = next(n for n in g.nodes if n.kind == PARAM)
    assert float(x.grad) == pytest.approx(sum(i * np.cos(i * 0.5) for i in range(1, 301)), rel=1e-3)
    positions = layout_graph(g)
    assert len(positions) == len(g.nodes)


def test_structure_is_stable_across_steps():
    problem = Problem("(1 - a)**2 + 100*(b - a**2)**2", "y", {"a": ParamSpec("0"), "b": ParamSpec("0")})
    g1 = capture_graph(problem, {"a": np.array(0.0), "b": np.array(0.0)})
    g2 = capture_graph(problem, {"a": np.array(0.5), "b": np.array(1.0)})
    assert g1.structure_key() == g2.structure_key()
    assert [n.value for n in g1.nodes if n.kind == PARAM] != [n.value for n in g2.nodes if n.kind == PARAM]


def test_layout_puts_inputs_before_the_loss():
    _, g = graph_of("2*x**2 + 3", x="full((2,3), 4)")
    x = next(n for n in g.nodes if n.kind == PARAM)
    loss = next(n for n in g.nodes if n.role == "loss")
    pos = layout_graph(g)  # left to right
    assert pos[x.id][0] < pos[loss.id][0]
    pos = layout_graph(g, direction="TB")
    assert pos[x.id][1] < pos[loss.id][1]


def test_cli_graph_json_and_dot(capsys, tmp_path):
    out = tmp_path / "g.json"
    assert main(["graph", "-f", "2*x**2 + 3", "-p", "x=full((2,3), 4)", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"id", "kind", "label", "op", "value", "grad"} <= set(data["nodes"][0])
    assert {"source", "target"} <= set(data["edges"][0])
    x = next(n for n in data["nodes"] if n["kind"] == "param")
    assert x["grad"] == [[16.0] * 3] * 2
    dot = tmp_path / "g.dot"
    assert main(["graph", "--preset", "seed-linear", "--out", str(dot)]) == 0
    text = dot.read_text()
    assert text.startswith("digraph gdviz {") and text.rstrip().endswith("}") and "AccumulateGrad" in text


def test_cli_graph_svg_parses_and_png_has_content(capsys, tmp_path, qapp):
    svg = tmp_path / "g.svg"
    png = tmp_path / "g.png"
    assert main(["graph", "--preset", "seed-autograd", "--out", str(svg)]) == 0
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "AccumulateGrad" in svg.read_text()
    assert main(["graph", "--preset", "seed-autograd", "--out", str(png), "--scale", "1.5"]) == 0
    from PySide6.QtGui import QImage
    image = QImage(str(png))
    assert image.width() > 300 and image.height() > 100
    colors = {image.pixelColor(x, y).name() for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colors) > 5  # not a blank page


def test_cli_graph_unwritable_path(capsys, tmp_path):
    code = main(["graph", "--preset", "bowl", "--out", str(tmp_path / "missing" / "g.png")])
    assert code == 2 and "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_graph_panel_updates_live_without_relayout(qtbot, window):
    panel = window.graphArea
    window.redraw()
    panel.refresh_now()
    qtbot.waitUntil(lambda: panel.graph is not None and bool(panel.scene.node_items), timeout=10_000)
    items_before = dict(panel.scene.node_items)
    x_before = next(n for n in panel.graph.nodes if n.kind == PARAM).value.copy()
    window.controls.stepCountSpin.setValue(100)
    window.controls.stepButton.click()
    qtbot.waitUntil(lambda: window.controller.step == 100 and window.controller.state == "paused")
    window.redraw()
    panel.refresh_now()  # the capture is made on the training thread and arrives shortly

    def x_now():
        return next(n for n in panel.graph.nodes if n.kind == PARAM).value

    qtbot.waitUntil(lambda: not np.allclose(x_before, x_now()), timeout=10_000)
    assert panel.scene.node_items == items_before  # same items: values updated in place
    tip = panel.scene.node_items[next(n.id for n in panel.graph.nodes if n.kind == PARAM)].toolTip()
    assert "value" in tip and "d loss" in tip


def test_graph_panel_exports(qtbot, window, tmp_path):
    panel = window.graphArea
    window.redraw()
    panel.refresh_now()
    qtbot.waitUntil(lambda: panel.graph is not None and bool(panel.scene.node_items), timeout=10_000)
    panel.scene.render_svg(tmp_path / "view.svg")
    panel.scene.render_png(tmp_path / "view.png", scale=2.0)
    assert ET.parse(tmp_path / "view.svg").getroot().tag.endswith("svg")
    from PySide6.QtGui import QImage
    img = QImage(str(tmp_path / "view.png"))
    assert img.width() >= 2 * int(panel.scene.sceneRect().width()) - 2


def test_large_graph_layout_runs_off_the_gui_thread(qtbot, window, monkeypatch):
    import threading

    import gdviz.qt.graph_view as graph_view

    threads = []
    real_layout = graph_view.layout_graph

    def recording_layout(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_layout(*args, **kwargs)

    monkeypatch.setattr(graph_view, "layout_graph", recording_layout)
    # about 600 nodes, none folded (sin and cos alternate: no two neighbouring terms alike)
    text = " + ".join(f"{'sin' if k % 2 else 'cos'}({k}*x)" for k in range(1, 301))
    window.problemPanel.functionEdit.setText(text)
    window.problemPanel.lossEdit.setText("y")
    window.problemPanel._emit_problem()
    window.redraw()
    window.graphArea.refresh_now()
    assert window.graphArea.graph is None  # not laid out yet: the GUI thread moved on
    qtbot.waitUntil(lambda: window.graphArea.graph is not None, timeout=60_000)
    assert len(window.graphArea.graph.nodes) > 500
    assert threads and all(t is not threading.main_thread() for t in threads)


@pytest.mark.parametrize("function, loss", [("x*x", "y"), ("X + 1", "(3 - y)*(3 - y)")])
def test_repeated_inputs_keep_a_gradient_on_every_edge(function, loss):
    problem = Problem(function, loss, {n: ParamSpec("0.5") for n in ("x", "X") if n in function})
    g = capture_graph(problem, {n: t.numpy() for n, t in problem.initial.items()})
    mul = next(n for n in g.nodes if n.op == "MulBackward0")
    into = [e for e in g.edges if e.target == mul.id and g.node(e.source).kind != CONSTANT]
    assert len(into) == 2 and into[0].source == into[1].source
    assert all(e.grad is not None for e in into)
    # d(a*a)/da along each edge is the other factor; together they make the node's gradient
    source = g.node(into[0].source)
    assert float(into[0].grad + into[1].grad) == pytest.approx(float(source.grad))


def test_the_layout_thread_is_one_and_ends_with_the_panel(qtbot):
    from gdviz.qt.graph_view import GraphPanel

    panel = GraphPanel()
    qtbot.addWidget(panel)
    problem = Problem("sin(x) + x*x", "y", {"x": ParamSpec("1")})
    for k in range(5):  # five structures in a row: one thread, the latest wins
        g = capture_graph(problem, {"x": np.array(float(k))})
        g.token = panel._token
        panel._structure = None
        panel.show_graph(g)
    qtbot.waitUntil(lambda: panel.graph is not None, timeout=10_000)
    thread = panel._layout
    assert thread.isRunning()
    panel.shutdown()
    assert thread.isFinished()


# --- long sums, folded ----------------------------------------------------------------------

def long_sum(n, extra=""):
    text = " + ".join(f"(x - {k})**2" for k in range(1, n + 1)) + extra
    problem = Problem(text, "y", {"x": ParamSpec("0")})
    return capture_graph(problem, {"x": np.array(0.0)}).without_constants()


def test_alike_terms_of_a_long_sum_fold_into_one_box():
    g = long_sum(30)
    folded = g.collapsed()
    repeats = [n for n in folded.nodes if n.kind == REPEAT]
    assert len(repeats) == 1 and "25 more terms like (x - 5)**2" in repeats[0].label
    assert len(folded.nodes) < 20 < len(g.nodes)
    kept = {n.label for n in folded.nodes}
    assert {"(x - 1)**2", "(x - 2)**2", "(x - 30)**2"} <= kept and "(x - 17)**2" not in kept
    # the chain passes through the box: one link in, one out, carrying d loss = 1; x feeds it
    repeat = repeats[0].id
    x = next(n.id for n in folded.nodes if n.kind == PARAM)
    assert sorted((e.source == repeat, e.target == repeat) for e in folded.edges
                  if repeat in (e.source, e.target)) == [(False, True), (False, True), (True, False)]
    assert {float(e.grad) for e in folded.edges if e.target == repeat and e.source != x} == {1.0}
    # the nodes kept are the graph's own, values and gradients untouched
    node = next(n for n in folded.nodes if n.label == "(x - 30)**2")
    assert node is g.node(node.id) and float(node.grad) == 1.0
    layout_graph(folded)  # and it lays out


def test_short_sums_and_unlike_terms_stay_as_they_are():
    g = long_sum(6)
    assert g.collapsed() is g
    # a run of 7 alike terms broken by an unlike one: nothing reaches 8 alike in a row
    mixed = " + ".join([f"(x - {k})**2" for k in range(1, 8)] + ["sin(x)"] +
                       [f"(x - {k})**2" for k in range(8, 15)])
    problem = Problem(mixed, "y", {"x": ParamSpec("0")})
    g = capture_graph(problem, {"x": np.array(0.0)}).without_constants()
    assert g.collapsed() is g


def test_graph_cli_folds_what_it_draws_unless_asked(capsys, tmp_path, qapp):
    text = " + ".join(f"(x - {k})**2" for k in range(1, 21))
    assert main(["graph", "--function", text, "--param", "x=0", "--out", str(tmp_path / "g.svg")]) == 0
    assert "folded into 1 box" in capsys.readouterr().out
    assert "more terms like" in (tmp_path / "g.svg").read_text()
    assert main(["graph", "--function", text, "--param", "x=0", "--unfold", "--out",
                 str(tmp_path / "all.svg")]) == 0
    assert "folded" not in capsys.readouterr().out
    assert "more terms like" not in (tmp_path / "all.svg").read_text()
    assert "(x - 17)**2" in (tmp_path / "all.svg").read_text()


def test_the_graph_panel_folds_long_sums_and_unfolds_on_request(qtbot, window):
    from PySide6.QtCore import Qt

    panel = window.graphArea
    text = " + ".join(f"(x - {k})**2" for k in range(1, 21))
    edit = window.problemPanel.functionEdit
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, text)
    window.problemPanel.flush()
    window.redraw()
    panel.refresh_now()
    qtbot.waitUntil(lambda: panel.graph is not None and
                    any(n.kind == REPEAT for n in panel.graph.nodes), timeout=20_000)
    folded = len(panel.graph.nodes)
    qtbot.mouseClick(panel.foldCheck, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.graph is not None and len(panel.graph.nodes) > folded
                    and not any(n.kind == REPEAT for n in panel.graph.nodes), timeout=20_000)
