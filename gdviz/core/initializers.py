"""Initial values of parameters, written the way the seed notebooks write them.

Accepted: a number (``0.5``), a nested list (``[1, 2]``), ``rand``, ``rand(SHAPE)``,
``randn(SHAPE)``, ``zeros(SHAPE)``, ``ones(SHAPE)`` and ``full(SHAPE, VALUE)``, where SHAPE is
``3``, ``2, 3`` or ``(2, 3)``. Parsed with :mod:`ast`, never evaluated as code.

Limits, each refused with an ExpressionError that names it, before any memory is allocated:

- the text: at most ``MAX_TEXT`` (100,000) characters, no control characters except tab and
  line breaks;
- at most ``MAX_DIMS`` (8) dimensions, every size a whole number from 1 up;
- at most ``MAX_ELEMENTS`` (10,000,000) elements;
- lists nested at most ``MAX_DIMS`` deep, rectangular, never empty;
- numbers finite and at most ``FLOAT_MAX`` (float32's largest, about 3.4e38) in size.
"""

from __future__ import annotations

import ast
import math
import re

import torch

from .errors import ExpressionError

DEFAULT_INIT = "rand(1)"
MAX_TEXT = 100_000
MAX_DIMS = 8
MAX_ELEMENTS = 10_000_000
_MAX_ELEMENTS = MAX_ELEMENTS  # the old private name
FLOAT_MAX = float(torch.finfo(torch.float32).max)

_RANDOM = {"rand": torch.rand, "randn": torch.randn}
_FILLED = {"zeros": 0.0, "ones": 1.0}
_UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9_]+")
_FORMS = ("use a number, a list, rand(SHAPE), randn(SHAPE), zeros(SHAPE), ones(SHAPE) or "
          "full(SHAPE, VALUE)")


def make_initial_value(spec: str, generator: torch.Generator, field: str = "init") -> torch.Tensor:
    """Build the float32 CPU tensor that ``spec`` describes, drawing randomness from
    ``generator`` so a seed makes it reproducible."""
    raw = spec if isinstance(spec, str) else ""
    if len(raw) > MAX_TEXT:
        raise ExpressionError(f"this text is too long ({len(raw):,} characters); the limit is "
                              f"{MAX_TEXT:,}", field)
    text = raw.strip() or DEFAULT_INIT
    offset = len(raw) - len(raw.lstrip()) if raw.strip() else 0
    bad = _UNREADABLE.search(text)
    if bad:
        raise ExpressionError(f"the character {ascii(bad.group())} cannot be used", field,
                              bad.start() + 1 + offset)
    return _Reader(text, field, offset).read(generator)


class _Reader:
    """Reads one initial value; errors carry the field and the column in the original text."""

    def __init__(self, text: str, field: str, offset: int):
        self.text = text
        self.field = field
        self.offset = offset

    def error(self, message: str, node: ast.AST | None = None) -> ExpressionError:
        if node is None or not hasattr(node, "col_offset"):
            return ExpressionError(message, self.field)
        # ast columns count UTF-8 bytes; report characters
        chars = len(self.text.encode()[:node.col_offset].decode(errors="ignore"))
        return ExpressionError(message, self.field, chars + 1 + self.offset)

    def read(self, generator: torch.Generator) -> torch.Tensor:
        try:
            node = ast.parse(self.text, mode="eval").body
        except SyntaxError as exc:
            msg = exc.msg or "invalid syntax"
            if msg.startswith("Exceeds the limit"):  # an int of more than 4,300 digits
                digits = max(_DIGITS.finditer(self.text), key=lambda m: len(m.group()))
                raise ExpressionError("this number is too large; numbers must be at most "
                                      "3.4e38 in size", self.field,
                                      digits.start() + 1 + self.offset) from None
            msg = ("brackets are nested too deeply (the limit is 200)"
                   if "too many nested parentheses" in msg else f"syntax error: {msg[:200]}")
            column = None if exc.offset is None else exc.offset + self.offset
            raise ExpressionError(msg, self.field, column) from None
        except (MemoryError, RecursionError):
            # thousands of signs in a row overflow Python's parser; nothing sensible is that deep
            raise self.error("the initial value is nested too deeply (for example thousands of "
                             "'-' in a row)") from None
        except ValueError as exc:  # pragma: no cover - unreadable characters are refused first
            raise self.error(f"cannot read the initial value: {str(exc)[:100]}") from None
        if isinstance(node, ast.Name):
            node = ast.Call(func=node, args=[], keywords=[], col_offset=node.col_offset)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node, generator)
        value, _ = self.literal(node, 0)
        return torch.tensor(value, dtype=torch.float32)

    def call(self, node: ast.Call, generator: torch.Generator) -> torch.Tensor:
        name = node.func.id
        if node.keywords:
            raise self.error(f"{name}() takes no named arguments", node)
        args = list(node.args)
        if name == "full":
            if len(args) < 2:
                raise self.error("full needs a shape and a value, as in full((2,3), 4)", node)
            shape = self.shape(args[:-1], name, node)
            value, dims = self.literal(args[-1], 0)
            if dims:
                raise self.error("full's value must be a number", args[-1])
            return torch.full(shape, value, dtype=torch.float32)
        if name in _RANDOM:
            shape = self.shape(args, name, node) if args else (1,)
            return _RANDOM[name](shape, generator=generator, dtype=torch.float32)
        if name in _FILLED:
            return torch.full(self.shape(args, name, node), _FILLED[name], dtype=torch.float32)
        raise self.error(f"unknown initializer '{name[:40]}'; {_FORMS}", node)

    def shape(self, args: list[ast.AST], name: str, node: ast.AST) -> tuple[int, ...]:
        if len(args) == 1 and isinstance(args[0], ast.Tuple):
            args = list(args[0].elts)
        if not args:
            raise self.error(f"{name} needs a shape, as in {name}(3) or {name}((2, 3))", node)
        if len(args) > MAX_DIMS:
            raise self.error(f"{name}(...) has {len(args)} dimensions; the limit is {MAX_DIMS}",
                             node)
        dims = []
        for arg in args:
            if not (isinstance(arg, ast.Constant) and type(arg.value) is int and arg.value >= 1):
                raise self.error(f"shape sizes must be whole numbers >= 1 in {name}(...)", arg)
            if arg.value > MAX_ELEMENTS:
                raise self.error(f"a size of {_count(arg.value)} is too large; a value has at "
                                 f"most {MAX_ELEMENTS:,} elements", arg)
            dims.append(arg.value)
        count = math.prod(dims)  # exact: at most 8 sizes of at most 10**7
        if count > MAX_ELEMENTS:
            raise self.error(f"{name}{tuple(dims)} has {count:,} elements; the limit is "
                             f"{MAX_ELEMENTS:,}", node)
        return tuple(dims)

    def literal(self, node: ast.AST, depth: int) -> tuple[float | list, tuple[int, ...]]:
        """A number or a rectangular nested list of numbers, and its shape. ``depth`` is how
        deeply the list holding ``node`` is nested: at MAX_DIMS no further list is allowed."""
        sign = 1.0
        start = node
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -sign if isinstance(node.op, ast.USub) else sign
            node = node.operand
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            # compare before converting: float() of a 400-digit int raises OverflowError
            if not (type(node.value) is int or math.isfinite(node.value)) \
                    or abs(node.value) > FLOAT_MAX:
                raise self.error("this number is too large; numbers must be at most 3.4e38 in "
                                 "size", start)
            return sign * float(node.value), ()
        if isinstance(node, (ast.List, ast.Tuple)) and node is start:
            if depth >= MAX_DIMS:
                raise self.error(f"lists are nested too deeply; the limit is {MAX_DIMS} levels",
                                 node)
            if not node.elts:
                raise self.error("a list needs at least one number", node)
            items = [self.literal(el, depth + 1) for el in node.elts]
            shapes = {shape for _, shape in items}
            if len(shapes) > 1:
                raise self.error("a nested list must be rectangular, like [[1, 2], [3, 4]]", node)
            shape = (len(items),) + shapes.pop()
            if math.prod(shape) > MAX_ELEMENTS:
                raise self.error(f"the list has more than {MAX_ELEMENTS:,} elements", node)
            return [value for value, _ in items], shape
        raise self.error("expected a number, a list of numbers or an initializer such as "
                         "rand(2)", start)


def _count(n: int) -> str:
    text = f"{n:,}"
    return text if len(text) <= 20 else f"about 10^{len(str(n)) - 1}"
