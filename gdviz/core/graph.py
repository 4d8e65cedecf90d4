"""The computation graph of one step, taken from the real autograd graph.

:func:`capture_graph` evaluates the problem at given parameter values, recording every
sub-expression's value, then walks the autograd graph from the loss's ``grad_fn``
(iteratively, with a seen set) and runs backward with a hook on every node, so each node
carries its forward value and the gradient of the loss with respect to it, and each edge
the gradient flowing along it.

Nodes are named after what the user typed: leaves by parameter name (through
``AccumulateGrad.variable``), intermediates by the sub-expression they compute (``2*x**2``,
``y``, ``loss``) together with torch's op name (``MulBackward0``). Constants typed in the
expression and frozen parameters, which autograd does not track, are added as small nodes.

:func:`layout_graph` places the nodes in layers (Sugiyama, by grandalf): inputs at the
top, the loss at the bottom. Nothing here imports Qt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from .problem import Problem

PARAM, FROZEN, CONSTANT, OP = "param", "frozen", "constant", "op"


@dataclass
class GraphNode:
    """One node: ``kind`` is param, frozen, constant or op; ``role`` is y, loss or empty."""

    id: int
    kind: str
    label: str
    op: str = ""
    value: np.ndarray | None = None
    grad: np.ndarray | None = None
    role: str = ""


@dataclass
class GraphEdge:
    """Data flows from ``source`` into ``target``; ``grad`` flows back along it."""

    source: int
    target: int
    grad: np.ndarray | None = None


@dataclass
class ComputationGraph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    positions: dict[int, tuple[float, float]] = field(default_factory=dict)
    direction: str = "LR"

    def node(self, node_id: int) -> GraphNode:
        return self.nodes[node_id]

    def structure_key(self) -> tuple:
        """Equal for two graphs that differ only in values and gradients."""
        return (tuple((n.kind, n.label, n.op, n.role) for n in self.nodes),
                tuple((e.source, e.target) for e in self.edges))

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "op": n.op, "role": n.role,
                       "value": _json_array(n.value), "grad": _json_array(n.grad),
                       **({"x": self.positions[n.id][0], "y": self.positions[n.id][1]}
                          if n.id in self.positions else {})}
                      for n in self.nodes],
            "edges": [{"source": e.source, "target": e.target, "grad": _json_array(e.grad)}
                      for e in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_dot(self) -> str:
        """Graphviz DOT text, for people who draw with dot."""
        lines = ["digraph gdviz {", '  node [fontname="Helvetica", fontsize=10];']
        for n in self.nodes:
            shape = {"op": "box", "param": "box", "frozen": "box", "constant": "ellipse"}[n.kind]
            style = ', style="rounded,filled", fillcolor="#d6eaf8"' if n.kind == PARAM else ""
            text = "\\n".join(_escape(t) for t in node_lines(n))
            lines.append(f'  n{n.id} [label="{text}", shape={shape}{style}];')
        for e in self.edges:
            attr = f' [label="{_escape(summarize(e.grad))}"]' if e.grad is not None else ""
            lines.append(f"  n{e.source} -> n{e.target}{attr};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _json_array(value: np.ndarray | None) -> Any:
    if value is None:
        return None
    data = np.asarray(value, dtype=np.float64)
    clean = np.where(np.isfinite(data), data, np.nan)
    out = clean.tolist()

    def fix(v):
        if isinstance(v, list):
            return [fix(x) for x in v]
        return None if v != v else v

    return fix(out)


def summarize(value: np.ndarray | None, digits: int = 4) -> str:
    """A short text for a value: the number for a scalar, else shape and a range."""
    if value is None:
        return "—"
    arr = np.asarray(value)
    if arr.size == 1:
        return f"{float(arr.reshape(-1)[0]):.{digits}g}"
    shape = "×".join(str(s) for s in arr.shape)
    finite = arr[np.isfinite(arr)]
    if finite.size and np.all(finite == finite.reshape(-1)[0]) and finite.size == arr.size:
        return f"{shape}, all {float(finite.reshape(-1)[0]):.{digits}g}"
    if not finite.size:
        return f"{shape}, not finite"
    return f"{shape}, {float(finite.min()):.{digits - 1}g}…{float(finite.max()):.{digits - 1}g}"


def node_lines(node: GraphNode) -> list[str]:
    """The lines a drawing shows in a node's box."""
    title = node.label if not node.role or node.role == node.label else f"{node.role} = {node.label}"
    if len(title) > 40:
        title = title[:37] + "…"
    lines = [title]
    if node.op:
        lines.append(node.op)
    if node.kind == CONSTANT:
        return lines
    lines.append(f"value {summarize(node.value)}")
    if node.kind != FROZEN:
        lines.append(f"grad {summarize(node.grad)}")
    return lines


def _numpy(t: Any) -> np.ndarray | None:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy().copy()
    if isinstance(t, (int, float)):
        return np.asarray(float(t))
    return None


def capture_graph(problem: Problem, values: Mapping[str, Any]) -> ComputationGraph:
    """Evaluate ``problem`` at ``values`` ({name: array}), run backward, return the graph."""
    env: dict[str, torch.Tensor] = {}
    for name in problem.names:
        t = torch.as_tensor(np.asarray(values[name], dtype=np.float32)).reshape(problem.shapes[name])
        env[name] = t.clone().requires_grad_(name not in problem.frozen)
    y, fvals = problem.function.evaluate_traced(env)
    raw, lvals = problem.loss.evaluate_traced({**env, "y": y})
    loss = raw.sum() if problem.loss_summed else raw

    # Which sub-expression produced each autograd node (the outermost text wins).
    labels: dict[Any, tuple[str, torch.Tensor]] = {}
    for program, vals in ((problem.function.program, fvals), (problem.loss.program, lvals)):
        for ins, v in zip(program, vals):
            if ins.kind in ("op", "call", "index") and isinstance(v, torch.Tensor) and v.grad_fn is not None:
                labels[v.grad_fn] = (ins.text, v)
    roles: dict[Any, str] = {}
    if y.grad_fn is not None:
        roles[y.grad_fn] = "y"
        labels.setdefault(y.grad_fn, (problem.function.text, y))
    if loss.grad_fn is not None:
        roles[loss.grad_fn] = "loss"
        if loss.grad_fn not in labels:
            labels[loss.grad_fn] = (f"sum({problem.loss.text})" if problem.loss_summed
                                    else problem.loss.text, loss)

    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    index: dict[Any, int] = {}
    order: list[Any] = []
    if loss.grad_fn is not None:
        # Iterative walk with a seen set: deep graphs cannot overflow the stack, and the
        # order (hence every node's id) is the same at every step.
        stack = [loss.grad_fn]
        index[loss.grad_fn] = 0
        order.append(loss.grad_fn)
        while stack:
            fn = stack.pop()
            for child, _ in fn.next_functions:
                if child is not None and child not in index:
                    index[child] = len(order)
                    order.append(child)
                    stack.append(child)
    for i, fn in enumerate(order):
        op = type(fn).__name__
        if op == "AccumulateGrad":
            param = fn.variable
            name = next((n for n, t in env.items() if t is param), "?")
            nodes.append(GraphNode(i, PARAM, name, op, _numpy(param)))
        else:
            text, tensor = labels.get(fn, ("", None))
            nodes.append(GraphNode(i, OP, text or op.removesuffix("Backward0").lower(),
                                   op, _numpy(tensor) if tensor is not None else None,
                                   role=roles.get(fn, "")))
    edge_slot: dict[tuple[int, int], int] = {}
    for fn in order:
        for k, (child, _) in enumerate(fn.next_functions):
            if child is not None:
                edge_slot[(index[child], index[fn])] = len(edges)
                edges.append(GraphEdge(index[child], index[fn]))

    # Gradients: a hook per node records d loss / d output and what flows to each input.
    grads_out: dict[int, Any] = {}
    grads_in: dict[int, tuple] = {}
    handles = []
    for fn in order:
        if type(fn).__name__ == "AccumulateGrad":
            continue

        def hook(grad_inputs, grad_outputs, i=index[fn]):
            grads_out[i] = grad_outputs[0]
            grads_in[i] = grad_inputs
            return None  # a node hook must not replace gradients

        handles.append(fn.register_hook(hook))
    try:
        if loss.requires_grad:
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    for node in nodes:
        if node.kind == PARAM:
            param = env.get(node.label)
            node.grad = _numpy(param.grad) if param is not None and param.grad is not None else None
        else:
            node.grad = _numpy(grads_out.get(node.id))
    for fn in order:
        target = index[fn]
        for k, (child, _) in enumerate(fn.next_functions):
            if child is not None and target in grads_in and k < len(grads_in[target]):
                edges[edge_slot[(index[child], target)]].grad = _numpy(grads_in[target][k])

    _add_untracked_inputs(problem, env, fvals, lvals, nodes, edges, index)
    if loss.grad_fn is None:  # nothing requires grad: show the loss value alone
        nodes.append(GraphNode(len(nodes), CONSTANT, f"loss = {summarize(_numpy(loss))}"))
    return ComputationGraph(nodes, edges)


def _add_untracked_inputs(problem, env, fvals, lvals, nodes, edges, index) -> None:
    """Constants typed in the expression and frozen parameters, which autograd does not
    record, as small nodes feeding the op that used them."""
    made: dict[tuple, int] = {}
    for program, vals in ((problem.function.program, fvals), (problem.loss.program, lvals)):
        for slot, (ins, v) in enumerate(zip(program, vals)):
            if ins.kind not in ("op", "call") or not isinstance(v, torch.Tensor) or v.grad_fn not in index:
                continue
            consumer = index[v.grad_fn]
            for position, a in enumerate(ins.args):
                arg = program[a]
                if arg.kind == "const":
                    # one small node per use: the 2 in 2*x and the 2 in x**2 are different roles
                    key = ("const", id(program), slot, position)
                    label = arg.text or f"{arg.value:g}"
                    kind, value = CONSTANT, np.asarray(arg.value)
                elif arg.kind == "name" and arg.value in problem.frozen:
                    key = ("frozen", arg.value)
                    label, kind, value = arg.value, FROZEN, _numpy(env[arg.value])
                else:
                    continue
                if key not in made:
                    made[key] = len(nodes)
                    nodes.append(GraphNode(len(nodes), kind, label, "", value))
                pair = (made[key], consumer)
                if not any(e.source == pair[0] and e.target == pair[1] for e in edges):
                    edges.append(GraphEdge(*pair))


# --- layout ---------------------------------------------------------------------------

def save_graph_text(graph: ComputationGraph, path) -> None:
    """Write ``graph`` laid out, as JSON or Graphviz DOT (by suffix), atomically."""
    from pathlib import Path

    from .atomic import atomic_write
    from .errors import GdvizError

    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".dot"):
        raise GdvizError(f"cannot tell the format from '{Path(path).name}'; use .svg, .png, "
                         ".json or .dot")
    if not graph.positions:
        layout_graph(graph)
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(graph.to_json() if suffix == ".json" else graph.to_dot())


def estimate_size(node: GraphNode, char_w: float = 7.0, line_h: float = 15.0) -> tuple[float, float]:
    lines = node_lines(node)
    return (max(len(t) for t in lines) * char_w + 18, len(lines) * line_h + 10)


def layout_graph(graph: ComputationGraph,
                 sizes: Mapping[int, tuple[float, float]] | None = None,
                 gap: float = 30.0, direction: str = "LR") -> dict[int, tuple[float, float]]:
    """Layered (Sugiyama) positions of node centers: inputs first, the loss last, in layers
    from left to right (``LR``, suits a wide panel) or top to bottom (``TB``).
    Stores them in ``graph.positions`` and returns them."""
    across = direction == "LR"
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    class _View:
        def __init__(self, w: float, h: float):
            self.w, self.h = w, h
            self.xy = (0.0, 0.0)

    sizes = dict(sizes or {})
    vertices = {}
    for node in graph.nodes:
        v = Vertex(node.id)
        w, h = sizes.get(node.id) or estimate_size(node)
        # grandalf stacks layers vertically; for left-to-right, lay out the transpose.
        v.view = _View(h, w) if across else _View(w, h)
        vertices[node.id] = v
    g = Graph(list(vertices.values()),
              [Edge(vertices[e.source], vertices[e.target]) for e in graph.edges
               if e.source != e.target])
    positions: dict[int, tuple[float, float]] = {}
    offset = 0.0
    for component in g.C:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = gap, gap * 1.6
        roots = [v for v in component.sV if not v.e_in()]
        layout.init_all(roots=roots or None)
        layout.draw()
        xs = [v.view.xy[0] - v.view.w / 2 for v in component.sV]
        right = max(v.view.xy[0] + v.view.w / 2 for v in component.sV)
        left = min(xs)
        for v in component.sV:
            x, y = v.view.xy[0] - left + offset, v.view.xy[1]
            positions[v.data] = (y, x) if across else (x, y)
        offset += right - left + gap * 2
    graph.positions = positions
    graph.direction = direction
    return positions
