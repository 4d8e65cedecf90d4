"""Taking the computation graph from the real autograd graph (see :mod:`.graph`).

The one part of the graph code that needs torch; the window's worker thread runs it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .graph import CONSTANT, FROZEN, OP, PARAM, ComputationGraph, GraphEdge, GraphNode, summarize
from .problem import Problem


def _numpy(t: Any) -> np.ndarray | None:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy().copy()
    if isinstance(t, (int, float)):
        return np.asarray(float(t))
    return None


def capture_graph(problem: Problem, values: Mapping[str, Any]) -> ComputationGraph:
    """Evaluate ``problem`` at ``values`` ({name: array}), run backward, return the graph."""
    env: dict[str, torch.Tensor] = dict(problem.data_columns)  # the full data, no gradient
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
    # One edge per input slot: x*x has two edges from x, each with its own gradient.
    edge_slot: dict[tuple[int, int], int] = {}
    for fn in order:
        for k, (child, _) in enumerate(fn.next_functions):
            if child is not None:
                edge_slot[(index[fn], k)] = len(edges)
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
                edges[edge_slot[(target, k)]].grad = _numpy(grads_in[target][k])

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
