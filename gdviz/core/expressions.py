"""Safe compiler for the math users type.

Text is parsed with :mod:`ast`, every node is checked against an allow-list, and the tree
is turned into a flat post-order *program* of small instructions that call torch
functions. Nothing the user typed is ever handed to ``eval``/``exec``/``compile``.
Both compiling and evaluating are iterative, so a long sum of hundreds of terms cannot
overflow Python's recursion limit.

The same compiled :class:`Expression` evaluates on plain tensors (one point) and, through
``torch.vmap``, on a batch of parameter values with a leading batch dimension
(:meth:`Expression.evaluate_batch`), which is how the loss landscape is one vectorized call.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .errors import ExpressionError

MAX_LENGTH = 10_000

CONSTANTS = {"pi": math.pi, "e": math.e}


def _t(value: Any) -> torch.Tensor:
    """A tensor for a value that may be a plain Python number (constants fold in Python)."""
    return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def _reduce_min(a, b=None):
    return torch.amin(_t(a)) if b is None else torch.minimum(_t(a), _t(b))


def _reduce_max(a, b=None):
    return torch.amax(_t(a)) if b is None else torch.maximum(_t(a), _t(b))


def _clamp(x, lo=None, hi=None):
    return torch.clamp(_t(x), lo, hi)


def _mse(a, b):
    return torch.mean((_t(a) - _t(b)) ** 2)


def _mae(a, b):
    return torch.mean(torch.abs(_t(a) - _t(b)))


def _huber(a, b, delta=1.0):
    d = torch.abs(_t(a) - _t(b))
    return torch.mean(torch.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta)))


@dataclass(frozen=True)
class FunctionSpec:
    """A function users may call: its implementation, argument counts and a one-line help."""

    impl: Callable[..., torch.Tensor]
    min_args: int
    max_args: int
    help: str


def _unary(fn: Callable[[torch.Tensor], torch.Tensor], help_text: str) -> FunctionSpec:
    return FunctionSpec(lambda x: fn(_t(x)), 1, 1, help_text)


FUNCTIONS: dict[str, FunctionSpec] = {
    "sin": _unary(torch.sin, "sine"),
    "cos": _unary(torch.cos, "cosine"),
    "tan": _unary(torch.tan, "tangent"),
    "exp": _unary(torch.exp, "e to the power x"),
    "log": _unary(torch.log, "natural logarithm"),
    "log1p": _unary(torch.log1p, "log(1 + x), accurate for small x"),
    "sqrt": _unary(torch.sqrt, "square root"),
    "abs": _unary(torch.abs, "absolute value"),
    "tanh": _unary(torch.tanh, "hyperbolic tangent"),
    "sigmoid": _unary(torch.sigmoid, "1 / (1 + exp(-x))"),
    "relu": _unary(torch.relu, "max(x, 0)"),
    "softplus": _unary(torch.nn.functional.softplus, "log(1 + exp(x))"),
    "sum": _unary(torch.sum, "sum of all elements"),
    "mean": _unary(torch.mean, "mean of all elements"),
    "min": FunctionSpec(_reduce_min, 1, 2, "smallest element, or elementwise min(a, b)"),
    "max": FunctionSpec(_reduce_max, 1, 2, "largest element, or elementwise max(a, b)"),
    "clamp": FunctionSpec(_clamp, 2, 3, "clamp(x, lo, hi) limits x to [lo, hi]"),
    "mse": FunctionSpec(_mse, 2, 2, "mean squared error mse(a, b)"),
    "mae": FunctionSpec(_mae, 2, 2, "mean absolute error mae(a, b)"),
    "huber": FunctionSpec(_huber, 2, 3, "huber(a, b, delta): quadratic near 0, linear beyond"),
}

_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.Pow: ("**", operator.pow),
    ast.Mod: ("%", operator.mod),
}

# Friendly words for constructs people type by habit; anything else gets a generic message.
_FORBIDDEN = {
    ast.Attribute: "attribute access (a dot after a name) is not allowed",
    ast.Lambda: "'lambda' is not allowed; type a math expression",
    ast.Compare: "comparisons (<, >, ==) are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "'if ... else' is not allowed",
    ast.List: "lists are not allowed in an expression",
    ast.Tuple: "a comma is not allowed here; did you mean two expressions?",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.NamedExpr: "':=' is not allowed",
    ast.JoinedStr: "text in quotes is not allowed",
    ast.Await: "'await' is not allowed",
}

_PREFIX = re.compile(r"^\s*(y|loss)\s*=(?!=)")


@dataclass(frozen=True)
class Instr:
    """One step of a compiled program: its kind, the source text it computes and where.

    kind is ``const`` (value holds the number), ``name`` (value holds the name),
    ``index`` (value holds the name, index the integer index), ``op`` (a binary or unary
    operator; value holds the symbol) or ``call`` (value holds the function name).
    ``args`` are the positions of earlier instructions whose results this one consumes.
    """

    kind: str
    text: str
    column: int
    args: tuple[int, ...]
    value: Any
    fn: Callable[..., Any] | None = None
    index: tuple[int, ...] = ()


class Expression:
    """A compiled expression: call it with ``{name: tensor}`` to get a tensor."""

    def __init__(self, text: str, field: str, program: list[Instr], names: list[str]):
        self.text = text
        self.field = field
        self.program = program
        #: free names in order of first appearance (parameters, and ``y`` in a loss)
        self.names = names
        # The evaluation plan, split by kind so the hot loop does no dispatching: constants
        # are filled in once, names and indexed names are loaded, then the operations run in
        # post-order (every argument's slot is filled before it is used).
        self._template = [ins.value if ins.kind == "const" else None for ins in program]
        self._loads = [(i, ins.value) for i, ins in enumerate(program) if ins.kind == "name"]
        self._indexed = [(i, ins.value, ins.index) for i, ins in enumerate(program)
                         if ins.kind == "index"]
        self._ops = [(i, ins.fn, ins.args) for i, ins in enumerate(program)
                     if ins.kind in ("op", "call")]

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, field={self.field!r})"

    def evaluate(self, env: dict[str, torch.Tensor]) -> torch.Tensor:
        """Evaluate at one point. Fast path: no error translation."""
        return _t(self._run(env)[-1])

    def evaluate_traced(self, env: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[Any]]:
        """Evaluate and return every instruction's result too (for the computation graph)."""
        values = self._run(env)
        return _t(values[-1]), values

    def _run(self, env: dict[str, torch.Tensor]) -> list[Any]:
        v = self._template.copy()
        for i, name in self._loads:
            v[i] = env[name]
        for i, name, index in self._indexed:
            v[i] = env[name][index]
        for i, fn, args in self._ops:
            if len(args) == 2:
                v[i] = fn(v[args[0]], v[args[1]])
            elif len(args) == 1:
                v[i] = fn(v[args[0]])
            else:
                v[i] = fn(*[v[a] for a in args])
        return v

    def check(self, env: dict[str, torch.Tensor]) -> torch.Tensor:
        """Evaluate once, turning a failure (bad index, shape mismatch) into an ExpressionError
        that points at the sub-expression that failed."""
        values: list[Any] = [None] * len(self.program)
        for i, ins in enumerate(self.program):
            try:
                if ins.kind == "const":
                    values[i] = ins.value
                elif ins.kind == "name":
                    values[i] = env[ins.value]
                elif ins.kind == "index":
                    tensor = env[ins.value]
                    if len(ins.index) > tensor.dim():
                        raise ExpressionError(
                            f"'{ins.text}' uses {len(ins.index)} indices but {ins.value} has "
                            f"shape {_shape_text(tensor.shape)}", self.field, ins.column)
                    for axis, (k, size) in enumerate(zip(ins.index, tensor.shape)):
                        if not -size <= k < size:
                            raise ExpressionError(
                                f"index {k} is out of range in '{ins.text}': {ins.value} has "
                                f"shape {_shape_text(tensor.shape)}", self.field, ins.column)
                    values[i] = tensor[ins.index]
                else:
                    values[i] = ins.fn(*[values[a] for a in ins.args])
            except ExpressionError:
                raise
            except (ZeroDivisionError, OverflowError, ValueError, RuntimeError, TypeError, IndexError) as exc:
                raise ExpressionError(f"cannot compute '{ins.text}': {_short(exc)}",
                                      self.field, ins.column) from None
        return _t(values[-1])

    def evaluate_batch(self, batched: dict[str, torch.Tensor],
                       fixed: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Evaluate on many points at once: each tensor in ``batched`` has a leading batch
        dimension; ``fixed`` values are shared by every point."""
        return vmap_call(self.evaluate, batched, fixed or {})


def vmap_call(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
              batched: dict[str, torch.Tensor], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
    """Call ``fn(env)`` for every point of a batch in one vectorized ``torch.vmap`` call."""
    names = list(batched)
    fixed = dict(fixed)

    def one(*vals: torch.Tensor) -> torch.Tensor:
        return fn({**fixed, **dict(zip(names, vals))})

    return torch.vmap(one)(*[batched[n] for n in names])


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def strip_prefix(text: str, field: str) -> tuple[str, int]:
    """Drop an optional ``y =`` / ``loss =`` prefix; return the rest and its column offset."""
    m = _PREFIX.match(text)
    if m:
        expected = "y" if field == "function" else "loss"
        if m.group(1) != expected:
            raise ExpressionError(f"the {field} may start with '{expected} =', not "
                                  f"'{m.group(1)} ='", field, 1)
        return text[m.end():], m.end()
    return text, 0


def compile_expression(text: str, field: str = "function",
                       variables: Sequence[str] | None = None,
                       reserved: Sequence[str] = ()) -> Expression:
    """Compile user text into an :class:`Expression`.

    With ``variables=None`` every free name is a parameter (the function). Otherwise only
    the listed names may appear (the loss: the parameters and ``y``). ``reserved`` names may
    not be used as parameters.
    """
    if not isinstance(text, str):
        raise ExpressionError("expected text", field)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the {field} is too long ({len(text)} characters; the limit is "
                              f"{MAX_LENGTH})", field)
    if "\n" in text or "\r" in text:
        raise ExpressionError("the expression must be on one line", field)
    body, offset = strip_prefix(text, field)
    stripped = body.lstrip()
    offset += len(body) - len(stripped)
    if not stripped.strip():
        raise ExpressionError(f"the {field} is empty", field)
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1) + offset
        raise ExpressionError(f"syntax error: {exc.msg}", field, col) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ExpressionError(f"cannot read the expression: {_short(exc)}", field) from None
    return _Compiler(stripped, field, offset, variables, reserved).run(tree)


class _Compiler:
    def __init__(self, source: str, field: str, offset: int,
                 variables: Sequence[str] | None, reserved: Sequence[str]):
        self.source = source
        self.field = field
        self.offset = offset
        self.variables = None if variables is None else list(variables)
        self.reserved = set(reserved)
        self.names: list[str] = []
        self.program: list[Instr] = []
        # Common subexpressions are computed once: (3 - y)*(3 - y) evaluates 3 - y a single
        # time, as the notebook's diff * diff does, and the graph shows one shared node.
        self.seen: dict[tuple, int] = {}

    def error(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, self.field, getattr(node, "col_offset", 0) + 1 + self.offset)

    def text(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ""

    def run(self, tree: ast.Expression) -> Expression:
        slots: dict[int, int] = {}
        stack: list[tuple[ast.AST, bool]] = [(tree.body, False)]
        while stack:
            node, done = stack.pop()
            if done:
                slots[id(node)] = self.emit(node, slots)
                continue
            children = self.check(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
        if not self.names and self.variables is None:
            raise ExpressionError("the function has no parameters; use a name such as x",
                                  self.field)
        return Expression(self.source, self.field, self.program, self.names)

    def check(self, node: ast.AST) -> list[ast.AST]:
        """Validate one node and return the children to compile first, in order."""
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.BitXor):
                raise self.error("'^' is not a power here; write x**2 for x squared", node)
            if type(node.op) not in _BINOPS:
                raise self.error(f"the operator in '{self.text(node)}' is not allowed; use "
                                 "+ - * / ** %", node)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.error("only unary minus and plus are allowed", node)
            return [node.operand]
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                what = "text in quotes" if isinstance(node.value, str) else repr(node.value)
                raise self.error(f"{what} is not allowed; only numbers", node)
            return []
        if isinstance(node, ast.Name):
            self.check_name(node.id, node)
            if node.id in FUNCTIONS:
                raise self.error(f"'{node.id}' is a function; call it like {node.id}(x)", node)
            return []
        if isinstance(node, ast.Call):
            return self.check_call(node)
        if isinstance(node, ast.Subscript):
            self.check_subscript(node)
            return []
        for kind, message in _FORBIDDEN.items():
            if isinstance(node, kind):
                raise self.error(message, node)
        raise self.error(f"'{self.text(node) or type(node).__name__}' is not allowed in a math "
                         "expression", node)

    def check_name(self, name: str, node: ast.AST) -> None:
        if "__" in name:
            raise self.error(f"names with double underscores ('{name}') are not allowed", node)

    def check_call(self, node: ast.Call) -> list[ast.AST]:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.error("attribute access (a dot after a name) is not allowed", node.func)
            raise self.error("only named functions such as sin(x) can be called", node)
        name = node.func.id
        self.check_name(name, node.func)
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self.error(f"unknown function '{name}'; the functions are "
                             f"{', '.join(sorted(FUNCTIONS))}", node.func)
        if node.keywords:
            raise self.error(f"{name}() takes no named arguments", node)
        n = len(node.args)
        if not spec.min_args <= n <= spec.max_args:
            want = (str(spec.min_args) if spec.min_args == spec.max_args
                    else f"{spec.min_args} to {spec.max_args}")
            raise self.error(f"{name}() takes {want} argument{'s' if spec.max_args > 1 else ''}, "
                             f"got {n}", node)
        return list(node.args)

    def check_subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.value, ast.Name):
            raise self.error("only a parameter can be indexed, as in w[0]", node)
        self.check_name(node.value.id, node.value)
        elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        for el in elements:
            if _int_literal(el) is None:
                raise self.error(f"indices must be whole numbers, as in w[0] or x[1, 2]; got "
                                 f"'{self.text(el)}'", el)

    def resolve_name(self, name: str, node: ast.AST) -> Instr | None:
        """Register a free name; return a constant instruction for pi/e."""
        if name in CONSTANTS:
            return Instr("const", name, node.col_offset + 1 + self.offset, (), CONSTANTS[name])
        if self.variables is None:
            if name in self.reserved:
                raise self.error(f"'{name}' is reserved (it names the "
                                 f"{'function value' if name == 'y' else name}); choose another "
                                 "parameter name", node)
        elif name not in self.variables:
            raise self.error(f"unknown name '{name}'; {_describe_variables(self.variables)}", node)
        if name not in self.names:
            self.names.append(name)
        return None

    def emit(self, node: ast.AST, slots: dict[int, int]) -> int:
        col = getattr(node, "col_offset", 0) + 1 + self.offset
        text = self.text(node)
        if isinstance(node, ast.Constant):
            ins = Instr("const", text, col, (), float(node.value))
        elif isinstance(node, ast.Name):
            ins = self.resolve_name(node.id, node) or Instr("name", text, col, (), node.id)
        elif isinstance(node, ast.Subscript):
            name = node.value.id
            if self.resolve_name(name, node.value) is not None:
                raise self.error(f"'{name}' is a number and cannot be indexed", node)
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            index = tuple(_int_literal(el) for el in elements)
            ins = Instr("index", text, col, (), name, index=index)
        elif isinstance(node, ast.BinOp):
            symbol, fn = _BINOPS[type(node.op)]
            ins = Instr("op", text, col, (slots[id(node.left)], slots[id(node.right)]), symbol, fn)
        elif isinstance(node, ast.UnaryOp):
            fn = operator.neg if isinstance(node.op, ast.USub) else operator.pos
            symbol = "-" if isinstance(node.op, ast.USub) else "+"
            ins = Instr("op", text, col, (slots[id(node.operand)],), symbol, fn)
        elif isinstance(node, ast.Call):
            name = node.func.id
            ins = Instr("call", text, col, tuple(slots[id(a)] for a in node.args), name,
                        FUNCTIONS[name].impl)
        else:  # pragma: no cover - check() rejects everything else first
            raise self.error("not allowed", node)
        key = (ins.kind, ins.value, ins.args, ins.index)
        if key in self.seen:
            return self.seen[key]
        self.program.append(ins)
        self.seen[key] = len(self.program) - 1
        return len(self.program) - 1


def _int_literal(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int):
        return -node.operand.value
    return None


def _describe_variables(variables: Sequence[str]) -> str:
    params = [v for v in variables if v != "y"]
    text = "the parameters are " + (", ".join(params) if params else "(none)")
    if "y" in variables:
        text += ", and y is the function's value"
    return text
