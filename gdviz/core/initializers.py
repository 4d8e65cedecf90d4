"""Initial values of parameters, written the way the seed notebooks write them.

Accepted: a number (``0.5``), a nested list (``[1, 2]``), ``rand``, ``rand(SHAPE)``,
``randn(SHAPE)``, ``zeros(SHAPE)``, ``ones(SHAPE)`` and ``full(SHAPE, VALUE)``, where SHAPE is
``3``, ``2, 3`` or ``(2, 3)``. Parsed with :mod:`ast`, never evaluated as code.
"""

from __future__ import annotations

import ast

import torch

from .errors import ExpressionError

DEFAULT_INIT = "rand(1)"
_MAX_ELEMENTS = 10_000_000
_RANDOM = {"rand": torch.rand, "randn": torch.randn}
_FILLED = {"zeros": 0.0, "ones": 1.0}


def make_initial_value(spec: str, generator: torch.Generator, field: str = "init") -> torch.Tensor:
    """Build the float32 CPU tensor that ``spec`` describes, drawing randomness from
    ``generator`` so a seed makes it reproducible."""
    text = (spec or "").strip() or DEFAULT_INIT
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", field, exc.offset) from None
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[], col_offset=node.col_offset)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call(node, generator, field)
    value = _literal(node, field)
    return torch.tensor(value, dtype=torch.float32)


def _call(node: ast.Call, generator: torch.Generator, field: str) -> torch.Tensor:
    name = node.func.id
    if node.keywords:
        raise ExpressionError(f"{name}() takes no named arguments", field, node.col_offset + 1)
    args = list(node.args)
    if name == "full":
        if len(args) < 2:
            raise ExpressionError("full needs a shape and a value, as in full((2,3), 4)",
                                  field, node.col_offset + 1)
        shape = _shape(args[:-1], field, name)
        value = _literal(args[-1], field)
        if not isinstance(value, (int, float)):
            raise ExpressionError("full's value must be a number", field, args[-1].col_offset + 1)
        return torch.full(shape, float(value), dtype=torch.float32)
    if name in _RANDOM:
        shape = _shape(args, field, name) if args else (1,)
        return _RANDOM[name](shape, generator=generator, dtype=torch.float32)
    if name in _FILLED:
        return torch.full(_shape(args, field, name), _FILLED[name], dtype=torch.float32)
    raise ExpressionError(f"unknown initializer '{name}'; use a number, a list, rand(SHAPE), "
                          "randn(SHAPE), zeros(SHAPE), ones(SHAPE) or full(SHAPE, VALUE)",
                          field, node.col_offset + 1)


def _shape(args: list[ast.AST], field: str, name: str) -> tuple[int, ...]:
    if len(args) == 1 and isinstance(args[0], ast.Tuple):
        args = list(args[0].elts)
    if not args:
        raise ExpressionError(f"{name} needs a shape, as in {name}(3) or {name}((2, 3))", field)
    dims = []
    for arg in args:
        if not (isinstance(arg, ast.Constant) and type(arg.value) is int and arg.value >= 0):
            raise ExpressionError(f"shape sizes must be whole numbers >= 0 in {name}(...)",
                                  field, getattr(arg, "col_offset", 0) + 1)
        dims.append(arg.value)
    count = 1
    for d in dims:
        count *= d
    if count > _MAX_ELEMENTS:
        raise ExpressionError(f"{name}{tuple(dims)} has {count} elements; the limit is "
                              f"{_MAX_ELEMENTS}", field)
    return tuple(dims)


def _literal(node: ast.AST, field: str):
    """A number or a nested list of numbers."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))):
        value = _literal(node.operand, field)
        if isinstance(value, (int, float)):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(el, field) for el in node.elts]
        kinds = {isinstance(i, list) for i in items}
        lengths = {len(i) for i in items if isinstance(i, list)}
        if len(kinds) > 1 or len(lengths) > 1:
            raise ExpressionError("a nested list must be rectangular, like [[1, 2], [3, 4]]",
                                  field, node.col_offset + 1)
        return items
    raise ExpressionError("expected a number, a list of numbers or an initializer such as "
                          "rand(2)", field, getattr(node, "col_offset", 0) + 1)
