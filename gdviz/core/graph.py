"""The computation graph of one step: nodes, edges, their texts and the layout.

The graph is taken from the real autograd graph by :func:`gdviz.core.graph_capture.capture_graph`
(the only part that needs torch), which evaluates the problem at given parameter values, recording every
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

PARAM, FROZEN, CONSTANT, OP = "param", "frozen", "constant", "op"
#: a node standing for many alike terms of a long sum (see :func:`collapse_repeats`)
REPEAT = "repeat"


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
    #: per edge (by index), the points its drawing passes through between its two nodes
    routes: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def node(self, node_id: int) -> GraphNode:
        node = self.nodes[node_id] if node_id < len(self.nodes) else None
        if node is None or node.id != node_id:  # a folded graph keeps the original ids
            node = next(n for n in self.nodes if n.id == node_id)
        return node

    def without_constants(self) -> "ComputationGraph":
        """The graph as the window draws it by default: literal numbers folded away (the op
        that uses a number already says it, as in 2*x**2), ids unchanged."""
        keep = [n for n in self.nodes if n.kind != CONSTANT]
        ids = {n.id for n in keep}
        graph = ComputationGraph(keep, [e for e in self.edges if e.source in ids and e.target in ids],
                                 {i: p for i, p in self.positions.items() if i in ids}, self.direction)
        graph.full_key = self.structure_key()
        return graph

    def collapsed(self) -> "ComputationGraph":
        """The graph with long runs of alike terms folded into one node each (see
        :func:`collapse_repeats`); ids of the nodes kept unchanged."""
        return collapse_repeats(self)

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
    if node.kind in (CONSTANT, REPEAT):
        return lines
    lines.append(f"value {summarize(node.value)}")
    if node.kind != FROZEN:
        lines.append(f"grad {summarize(node.grad)}")
    return lines


# --- folding long sums ------------------------------------------------------------------

def collapse_repeats(graph: ComputationGraph, min_terms: int = 8, head: int = 2,
                     tail: int = 1) -> ComputationGraph:
    """A long chain of one operation whose other inputs are alike sub-graphs (the terms of
    ``(x - 1)**2 + (x - 2)**2 + ... + (x - 50)**2``) keeps its first ``head`` and last
    ``tail`` terms; the terms between, with their links of the chain, become one REPEAT
    node ("⋯ 47 more terms like (x - 3)**2") that the chain passes through and that every
    shared input of the hidden terms (x) feeds. Runs of fewer than ``min_terms`` alike
    terms are left as they are. Terms are alike when the nodes that only they use have the
    same operations in the same order."""
    nodes = {n.id: n for n in graph.nodes}
    ins: dict[int, list[int]] = {i: [] for i in nodes}
    outs: dict[int, list[int]] = {i: [] for i in nodes}
    for e in graph.edges:
        ins[e.target].append(e.source)
        outs[e.source].append(e.target)

    def link(n: int) -> int | None:
        """The chain's previous link into ``n``: the one input with n's operation that
        feeds n alone."""
        if nodes[n].kind != OP:
            return None
        found = [i for i in dict.fromkeys(ins[n]) if nodes[i].kind == OP
                 and nodes[i].op == nodes[n].op and outs[i] == [n]]
        return found[0] if len(found) == 1 else None

    def own(root: int) -> list[int]:
        """``root`` and the nodes above it that feed nothing else (a term's own nodes)."""
        mine, queue = [root], [root]
        seen = {root}
        while queue:
            for i in dict.fromkeys(ins[queue.pop(0)]):
                if i not in seen and outs[i] and all(o in seen for o in outs[i]):
                    seen.add(i)
                    mine.append(i)
                    queue.append(i)
        return mine

    previous = {n: link(n) for n in nodes}
    has_next = {p for p in previous.values() if p is not None}
    hidden: set[int] = set()
    extra_nodes: list[GraphNode] = []
    extra_edges: list[GraphEdge] = []
    next_id = max(nodes, default=-1) + 1
    for end in nodes:
        if previous[end] is None or end in has_next:
            continue
        chain = [end]
        while previous[chain[-1]] is not None and len(chain) <= len(nodes):
            chain.append(previous[chain[-1]])
        chain.reverse()   # chain[k] = chain[k-1] (op) term[k]
        terms = [[i for i in ins[c] if i != chain[k - 1]] for k, c in enumerate(chain) if k]
        if len(terms) < min_terms or any(len(t) != 1 for t in terms):
            continue
        owned = [own(t[0]) for t in terms]
        kinds = [tuple((nodes[i].kind, nodes[i].op) for i in o) for o in owned]
        k = 0
        while k < len(terms):
            j = k
            while j < len(terms) and kinds[j] == kinds[k]:
                j += 1
            first, last = k + head, j - tail    # terms[first:last] are folded
            if j - k >= min_terms and last - first >= 2:
                gone = {i for o in owned[first:last] for i in o} | set(chain[first + 1:last + 1])
                hidden |= gone
                repeat = GraphNode(next_id, REPEAT, _clip_label(
                    f"⋯ {last - first} more terms like {nodes[terms[first][0]].label}"),
                    f"{last - first} alike terms folded")
                next_id += 1
                extra_nodes.append(repeat)
                into = _edge(graph, chain[first], chain[first + 1])
                out = _edge(graph, chain[last], chain[last + 1]) if last + 1 < len(chain) else None
                extra_edges.append(GraphEdge(chain[first], repeat.id, into.grad if into else None))
                if last + 1 < len(chain):
                    extra_edges.append(GraphEdge(repeat.id, chain[last + 1],
                                                 out.grad if out else None))
                shared = {i for o in owned[first:last] for n in o for i in ins[n]} - gone
                extra_edges += [GraphEdge(i, repeat.id) for i in sorted(shared)]
            k = j
    if not hidden:
        return graph
    kept = [n for n in graph.nodes if n.id not in hidden] + extra_nodes
    # the chain's links into and out of a folded stretch now pass through its REPEAT node
    edges = [e for e in graph.edges if e.source not in hidden and e.target not in hidden]
    return ComputationGraph(kept, edges + extra_edges, {}, graph.direction)


def _edge(graph: ComputationGraph, source: int, target: int) -> GraphEdge | None:
    return next((e for e in graph.edges if e.source == source and e.target == target), None)


def _clip_label(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
                 gap: float = 30.0, direction: str = "LR",
                 layer_gap: float | None = None) -> dict[int, tuple[float, float]]:
    """Layered (Sugiyama) positions of node centers: inputs first, the loss last, in layers
    from left to right (``LR``, suits a wide panel) or top to bottom (``TB``). ``gap`` lies
    between nodes of a layer, ``layer_gap`` between layers (room for edge labels).
    Stores them in ``graph.positions`` and returns them."""
    across = direction == "LR"
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    class _View:
        def __init__(self, w: float, h: float):
            self.w, self.h = w, h
            self.xy = (0.0, 0.0)

    class _Route:
        """Where grandalf routes an edge: through the points it keeps free for an edge that
        spans several layers, so that it passes between nodes, not through them."""

        def __init__(self) -> None:
            self.points: list[tuple[float, float]] = []

        def setpath(self, points) -> None:
            self.points = [tuple(p) for p in points]

    sizes = dict(sizes or {})
    vertices = {}
    for node in graph.nodes:
        v = Vertex(node.id)
        w, h = sizes.get(node.id) or estimate_size(node)
        # grandalf stacks layers vertically; for left-to-right, lay out the transpose.
        v.view = _View(h, w) if across else _View(w, h)
        vertices[node.id] = v
    edges = []
    for e in graph.edges:
        if e.source != e.target:
            edge = Edge(vertices[e.source], vertices[e.target])
            edge.view = _Route()
            edges.append((e, edge))
    g = Graph(list(vertices.values()), [edge for _, edge in edges])
    positions: dict[int, tuple[float, float]] = {}
    moves: dict[int, tuple[float, float]] = {}  # component shift of each vertex
    offset = 0.0
    for component in g.C:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = gap, (gap * 1.6 if layer_gap is None else layer_gap)
        roots = [v for v in component.sV if not v.e_in()]
        layout.init_all(roots=roots or None)
        layout.draw()
        xs = [v.view.xy[0] - v.view.w / 2 for v in component.sV]
        right = max(v.view.xy[0] + v.view.w / 2 for v in component.sV)
        left = min(xs)
        for v in component.sV:
            x, y = v.view.xy[0] - left + offset, v.view.xy[1]
            positions[v.data] = (y, x) if across else (x, y)
            moves[v.data] = (offset - left, 0.0)
        offset += right - left + gap * 2
    graph.positions = positions
    graph.direction = direction
    # The inner points of each edge's route (the ends are the nodes themselves).
    graph.routes = {}
    for k, (e, edge) in enumerate(edges):
        dx, _ = moves.get(e.source, (0.0, 0.0))
        inner = [(x + dx, y) for x, y in edge.view.points[1:-1]]
        graph.routes[k] = [(y, x) for x, y in inner] if across else inner
    return positions
