"""Safe compiler for the math users type.

Text is parsed with :mod:`ast`, every node is checked against an allow-list, and the tree
is turned into a flat post-order *program* of small instructions that call torch
functions. Nothing the user typed is ever handed to ``eval``/``exec``/``compile``.

Compiling is linear in the text's length and, apart from Python's own parser, iterative;
evaluating is iterative too. Limits, each refused with an :class:`ExpressionError` that
names it (and its column where one exists):

- at most ``MAX_LENGTH`` (10,000) characters, on one line, with no control characters;
- brackets nested at most 200 deep, and no chain Python's parser cannot hold (roughly
  6,000 signs or 3,000 ``**`` in a row): "nested too deeply";
- every number, typed or computed from numbers alone (``2*pi``, ``10.0**3``), is finite,
  real and at most ``FLOAT_MAX`` (float32's largest, about 3.4e38) in size.

One compiled :class:`Expression` evaluates at one point (:meth:`Expression.evaluate`) or,
through a plan made once (:meth:`Expression.plan`), for R runs at once: each batched value
has a leading run dimension and every operation is aligned ahead of time, so thousands of
runs (or a landscape grid) are one vectorized call.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Mapping, Sequence

import torch

from .errors import ExpressionError

MAX_LENGTH = 10_000
#: the largest size of a number: what a float32 tensor can hold
FLOAT_MAX = float(torch.finfo(torch.float32).max)

CONSTANTS = {"pi": math.pi, "e": math.e}

Env = Mapping[str, torch.Tensor]


def _t(value: Any) -> torch.Tensor:
    """A tensor for a value that may be a plain Python number (constants fold in Python)."""
    return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def _reduce_min(a, b=None):
    return torch.amin(_t(a)) if b is None else torch.minimum(_t(a), _t(b))


def _reduce_max(a, b=None):
    return torch.amax(_t(a)) if b is None else torch.maximum(_t(a), _t(b))


def _clamp(x, lo, hi=None):
    # torch.clamp has no derivative for a tensor bound; maximum/minimum send gradients to
    # x and to the bounds (and, like clamp, give hi when lo > hi).
    if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        out = torch.maximum(_t(x), _t(lo))
        return out if hi is None else torch.minimum(out, _t(hi))
    return torch.clamp(_t(x), lo, hi)


def _mod(a, b):
    # torch has no derivative of number % tensor (remainder.Scalar_Tensor); with the number as
    # a tensor, remainder's derivative (a - b*floor(a/b)) covers both sides. Python's sign rule.
    if not isinstance(a, torch.Tensor):
        a = torch.tensor(a, dtype=b.dtype)
    return torch.remainder(a, b)


def _squared(a, b):
    """(a - b)**2, as one kernel forward and one backward (torch's mse_loss): over a large
    data set, (a - b)**2 costs two temporaries forward and three backward, each as big as
    the data."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.is_floating_point():
        a, b = torch.broadcast_tensors(a, b)  # views: no copy, and no warning from torch
        return torch.nn.functional.mse_loss(a, b, reduction="none")
    return (a - b) ** 2


def _absolute(a, b):
    return torch.abs(_t(a - b))


def _huberish(a, b, delta=1.0):
    d = torch.abs(_t(a - b))
    return torch.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def _bce(p, t):
    """torch's binary_cross_entropy, elementwise: each log clamped at -100 so that p = 0 or
    1 stays finite. Written out so that it never raises: p outside [0, 1] gives NaN (the
    run stops, "outside the function's domain"), and the inner where()s keep the gradient
    finite where a log is clamped."""
    p = _t(p)
    inside_lo, inside_hi = p > 0, p < 1
    log_p = torch.where(inside_lo, torch.log(torch.where(inside_lo, p, 1.0)), -100.0)
    log_q = torch.where(inside_hi, torch.log1p(-torch.where(inside_hi, p, 0.0)), -100.0)
    outside = torch.where((p < 0) | (p > 1), torch.nan, 0.0)
    return -(t * log_p.clamp(min=-100.0) + (1 - t) * log_q.clamp(min=-100.0)) + outside


def _bce_logits(z, t):
    # binary_cross_entropy_with_logits, stably: log(1 + exp(z)) - t*z
    z = _t(z)
    return torch.nn.functional.softplus(z) - t * z


def _stack(*xs):
    """The arguments side by side along a new last dimension (broadcast to one shape)."""
    return torch.stack(torch.broadcast_tensors(*[_t(x) for x in xs]), dim=-1)


def _matmul(a, b):
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) \
            or a.dim() == 0 or b.dim() == 0:
        raise ValueError("@ multiplies vectors and matrices; use * for a number")
    return torch.matmul(a, b)


def _no_matmul_of_numbers(a, b):
    raise ValueError("@ multiplies vectors and matrices; use * for numbers")


def _mean_of(pointwise: Callable[..., Any]) -> Callable[..., torch.Tensor]:
    return lambda *args: torch.mean(_t(pointwise(*args)))


@dataclass(frozen=True)
class FunctionSpec:
    """A function users may call: its implementation, argument counts and a one-line help.

    For :meth:`Expression.plan`: ``reduce`` (sum, mean, 1-argument min/max) is the torch
    reduction taking ``dim``; ``pointwise`` (mse, mae, huber) is the elementwise part whose
    mean is the result. Any other function is elementwise.
    """

    impl: Callable[..., torch.Tensor]
    min_args: int
    max_args: int
    help: str
    reduce: Callable[..., torch.Tensor] | None = None
    pointwise: Callable[..., Any] | None = None


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
    "sum": FunctionSpec(lambda x: torch.sum(_t(x)), 1, 1, "sum of all elements", torch.sum),
    "mean": FunctionSpec(lambda x: torch.mean(_t(x)), 1, 1, "mean of all elements", torch.mean),
    "min": FunctionSpec(_reduce_min, 1, 2, "smallest element, or elementwise min(a, b)",
                        torch.amin),
    "max": FunctionSpec(_reduce_max, 1, 2, "largest element, or elementwise max(a, b)",
                        torch.amax),
    "clamp": FunctionSpec(_clamp, 2, 3, "clamp(x, lo, hi) limits x to [lo, hi]"),
    "mse": FunctionSpec(_mean_of(_squared), 2, 2, "mean squared error mse(a, b)",
                        pointwise=_squared),
    "mae": FunctionSpec(_mean_of(_absolute), 2, 2, "mean absolute error mae(a, b)",
                        pointwise=_absolute),
    "huber": FunctionSpec(_mean_of(_huberish), 2, 3,
                          "huber(a, b, delta): quadratic near 0, linear beyond",
                          pointwise=_huberish),
    "bce": FunctionSpec(_mean_of(_bce), 2, 2, "binary cross-entropy bce(p, t) of "
                        "probabilities p and targets t (mean)", pointwise=_bce),
    "bce_logits": FunctionSpec(_mean_of(_bce_logits), 2, 2, "binary cross-entropy of "
                               "logits: bce_logits(z, t) = bce(sigmoid(z), t), stably",
                               pointwise=_bce_logits),
    "stack": FunctionSpec(_stack, 1, 16, "stack(a, b, ...): side by side along a new last "
                          "dimension, e.g. stack(x1, x2) @ W"),
}

# symbol, the function on tensors, the function on plain numbers (constant folding)
_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any], Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add, operator.add),
    ast.Sub: ("-", operator.sub, operator.sub),
    ast.Mult: ("*", operator.mul, operator.mul),
    ast.Div: ("/", operator.truediv, operator.truediv),
    ast.Pow: ("**", operator.pow, operator.pow),
    ast.Mod: ("%", _mod, operator.mod),
    ast.MatMult: ("@", _matmul, _no_matmul_of_numbers),
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
# Characters Python's parser would choke on with a traceback or a baffling message
# (NUL, other control characters, lone surrogates that cannot be encoded).
_UNREADABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_DIGITS = re.compile(r"[0-9_]+")
_TOO_LARGE = "numbers must be at most 3.4e38 in size"


@dataclass(frozen=True)
class Instr:
    """One step of a compiled program: its kind, the source text it computes and where.

    kind is ``const`` (value holds the number), ``name`` (value holds the name),
    ``index`` (value holds the name, index the integer index), ``op`` (a binary or unary
    operator; value holds the symbol) or ``call`` (value holds the function name).
    ``args`` are the positions of earlier instructions whose results this one consumes.
    ``span`` is where the text lies in ``source`` (character offsets).
    """

    kind: str
    column: int
    args: tuple[int, ...]
    value: Any
    fn: Callable[..., Any] | None = None
    index: tuple[int, ...] = ()
    span: tuple[int, int] = (0, 0)
    source: str = field(default="", repr=False, compare=False)

    @property
    def text(self) -> str:
        # Sliced on demand: storing every node's text would make compiling quadratic.
        return self.source[self.span[0]:self.span[1]]


Op = tuple[int, Callable[..., Any], tuple[int, ...]]


def _runner(template: list[Any], loads: list[tuple[int, str]],
            indexed: list[tuple[int, str, tuple]], ops: list[Op]) -> Callable[[Env], list[Any]]:
    """The evaluation loop, split by kind so it does no dispatching: constants come filled
    in, names and indexed names are loaded, then the operations run in post-order (every
    argument's slot is filled before it is used)."""

    def run(env: Env) -> list[Any]:
        v = template.copy()
        for i, name in loads:
            v[i] = env[name]
        for i, name, index in indexed:
            v[i] = env[name][index]
        for i, fn, args in ops:
            if len(args) == 2:
                v[i] = fn(v[args[0]], v[args[1]])
            elif len(args) == 1:
                v[i] = fn(v[args[0]])
            else:
                v[i] = fn(*[v[a] for a in args])
        return v

    return run


class Expression:
    """A compiled expression: call it with ``{name: tensor}`` to get a tensor."""

    def __init__(self, text: str, field: str, program: list[Instr], names: list[str]):
        self.text = text
        self.field = field
        self.program = program
        #: free names in order of first appearance (parameters, and ``y`` in a loss)
        self.names = names
        self._run = _runner(
            [ins.value if ins.kind == "const" else None for ins in program],
            [(i, ins.value) for i, ins in enumerate(program) if ins.kind == "name"],
            [(i, ins.value, ins.index) for i, ins in enumerate(program) if ins.kind == "index"],
            [(i, ins.fn, ins.args) for i, ins in enumerate(program) if ins.kind in ("op", "call")])
        self._plans: dict[tuple, Callable[[Env], torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, field={self.field!r})"

    def evaluate(self, env: Env) -> torch.Tensor:
        """Evaluate at one point. Fast path: no error translation."""
        return _t(self._run(env)[-1])

    def evaluate_traced(self, env: Env) -> tuple[torch.Tensor, list[Any]]:
        """Evaluate and return every instruction's result too (for the computation graph)."""
        values = self._run(env)
        return _t(values[-1]), values

    def check(self, env: Env, backward: bool | Collection[str] = False) -> torch.Tensor:
        """Evaluate once, turning a failure (bad index, shape mismatch) into an ExpressionError
        that points at the sub-expression that failed.

        With ``backward`` (True: by every floating tensor in ``env``; or the names to
        differentiate by) also backpropagate once, on detached copies so ``env`` is untouched;
        an operation torch cannot differentiate becomes an ExpressionError at its column. The
        result is then detached.
        """
        if not backward:
            return _t(self._checked(env)[-1])
        wrt = set(env) if backward is True else set(backward)
        env = {k: v.detach().requires_grad_() if k in wrt and _is_float(v) else v
               for k, v in env.items()}
        values = self._checked(env)
        out = _t(values[-1])
        if out.requires_grad:
            leaves = [v for v in env.values() if isinstance(v, torch.Tensor) and v.requires_grad]
            try:
                torch.autograd.grad(out.sum(), leaves, allow_unused=True)
            except Exception as exc:  # a validation boundary: nothing raw may escape
                raise self._backward_error(values, exc) from None
        return out.detach()

    def _checked(self, env: Env) -> list[Any]:
        values: list[Any] = [None] * len(self.program)
        for i, ins in enumerate(self.program):
            if ins.kind == "const":
                values[i] = ins.value
                continue
            if ins.kind in ("name", "index"):
                values[i] = env[ins.value]  # a missing name is the caller's bug: KeyError
                if ins.kind == "name":
                    continue
            try:
                if ins.kind == "index":
                    values[i] = self._checked_index(ins, values[i])
                else:
                    values[i] = ins.fn(*[values[a] for a in ins.args])
            except ExpressionError:
                raise
            except Exception as exc:  # a validation boundary: nothing raw may escape
                raise ExpressionError(f"cannot compute '{_clip(ins.text)}': {_short(exc)}",
                                      self.field, ins.column) from None
        return values

    def _checked_index(self, ins: Instr, tensor: torch.Tensor) -> torch.Tensor:
        if len(ins.index) > tensor.dim():
            raise ExpressionError(
                f"'{_clip(ins.text)}' uses {len(ins.index)} indices but {ins.value} has "
                f"shape {_shape_text(tensor.shape)}", self.field, ins.column)
        for k, size in zip(ins.index, tensor.shape):
            if not -size <= k < size:
                raise ExpressionError(
                    f"index {_clip(str(k))} is out of range in '{_clip(ins.text)}': {ins.value} "
                    f"has shape {_shape_text(tensor.shape)}", self.field, ins.column)
        return tensor[ins.index]

    def _backward_error(self, values: list[Any], exc: BaseException) -> ExpressionError:
        # Rerun each operation alone on detached copies of its inputs: the first whose own
        # backward fails is the culprit. Linear, and only paid on failure.
        for ins in self.program:
            if ins.kind not in ("op", "call"):
                continue
            args = [values[a].detach().requires_grad_() if _is_float(values[a]) else values[a]
                    for a in ins.args]
            inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
            try:
                out = _t(ins.fn(*args))
                if inputs and out.requires_grad:
                    torch.autograd.grad(out.sum(), inputs, allow_unused=True)
            except Exception as local:
                return ExpressionError(f"cannot compute the gradient of '{_clip(ins.text)}'; "
                                       f"{_short(local)}", self.field, ins.column)
        return ExpressionError(f"cannot compute the gradient of the {self.field}; "
                               f"{_short(exc)}", self.field)

    def plan(self, shapes: Mapping[str, tuple[int, ...]],
             batched: Collection[str]) -> Callable[[Env], torch.Tensor]:
        """A function env -> tensor that evaluates this expression for R runs at once.

        For names in ``batched``, env[name] has shape (R, *shapes[name]); other names (data
        columns, shared by all runs) have exactly shapes[name]. The result has shape
        (R, *out_shape) and equals the stack of per-run :meth:`evaluate` results. A result
        that depends on no batched name is expanded to (R, ...), R taken from any batched
        tensor in env. Shape errors are raised here, as ExpressionErrors.

        Everything is decided now, from one unbatched evaluation on zeros: each value's event
        shape (its shape without the run dim) and whether it depends on a batched name. Every
        batched value is then carried at one event rank K, the largest any batched operation
        meets, with singleton dims inserted right after the run dim (broadcasting from the right
        would misalign R). So elementwise operations need no alignment and run exactly as in
        :meth:`evaluate`, and each batched name is padded once, when it is loaded. Reductions
        reduce dims 1..K, never the run dim, keeping them as singletons; the result's padding
        is dropped at the end.
        """
        batched = frozenset(batched)
        with torch.no_grad():
            probe = self._checked({n: torch.zeros(shapes[n]) for n in self.names})
        event = [tuple(v.shape) if isinstance(v, torch.Tensor) else () for v in probe]
        dep = [False] * len(self.program)
        for i, ins in enumerate(self.program):
            dep[i] = (ins.value in batched if ins.kind in ("name", "index")
                      else any(dep[a] for a in ins.args))
        # K: the largest event rank a batched value has, inside mse/huber's broadcast too
        rank = max((len(event[j]) for i, ins in enumerate(self.program) if dep[i]
                    for j in (i, *ins.args)), default=0)
        dims = tuple(range(1, rank + 1))
        loads, indexed, ops = [], [], []
        for i, ins in enumerate(self.program):
            pad = (slice(None),) + (None,) * (rank - len(event[i]))
            if ins.kind == "name" and dep[i] and len(pad) > 1:
                indexed.append((i, ins.value, pad))
            elif ins.kind == "name":
                loads.append((i, ins.value))
            elif ins.kind == "index":  # w[0] becomes w[:, None, ..., 0]: one indexing call
                indexed.append((i, ins.value, pad + ins.index if dep[i] else ins.index))
            elif ins.kind in ("op", "call"):
                # the last reduction may drop its dims itself, saving a reshape per call
                last = i == len(self.program) - 1
                if dep[i] and ins.value in ("@", "stack"):
                    shaped = [(event[a], dep[a]) for a in ins.args]
                    fn = (_batched_matmul if ins.value == "@" else _batched_stack)(
                        shaped, event[i], rank)
                else:
                    fn = _batched_fn(ins, dims, not last) if dep[i] else ins.fn
                ops.append((i, fn, ins.args))
        run = _runner([ins.value if ins.kind == "const" else None for ins in self.program],
                      loads, indexed, ops)
        if dep[-1]:
            extra = rank - len(event[-1]) if reduction_spec(self.program[-1]) is None else 0
            return (lambda env: run(env)[-1].flatten(0, extra)) if extra else (
                lambda env: run(env)[-1])
        refs = sorted(batched)

        def expanded(env: Env) -> torch.Tensor:
            ref = next((env[n] for n in refs if n in env), None)
            if ref is None:
                raise ValueError("a plan needs a batched tensor in env to know the run count")
            out = torch.as_tensor(run(env)[-1], device=ref.device)  # a number, or from data
            return out.expand(ref.shape[0], *out.shape)

        return expanded

    def evaluate_batch(self, batched: Env, fixed: Env | None = None) -> torch.Tensor:
        """Evaluate on many points at once: each tensor in ``batched`` has a leading batch
        dimension; ``fixed`` values are shared by every point. Plans are cached by shape."""
        env = {**(fixed or {}), **batched}
        shapes = {n: tuple(env[n].shape[1:] if n in batched else env[n].shape)
                  for n in self.names}
        key = (tuple(shapes.items()), frozenset(batched))
        fn = self._plans.get(key)
        if fn is None:
            if len(self._plans) >= 16:  # a few landscapes' worth; shapes rarely change
                self._plans.clear()
            fn = self._plans[key] = self.plan(shapes, batched)
        return fn(env)


def reduction_spec(ins: Instr) -> FunctionSpec | None:
    """The spec of a call that reduces its arguments to one number, else None."""
    spec = FUNCTIONS.get(ins.value) if ins.kind == "call" else None
    if spec is not None and (spec.pointwise or (spec.reduce and len(ins.args) == 1)):
        return spec
    return None


def _batched_fn(ins: Instr, dims: tuple[int, ...], keepdim: bool) -> Callable[..., Any]:
    """The instruction's function on values laid out (R, 1, ..., *event), the event dims
    being ``dims``: elementwise functions are unchanged; reductions keep the run dim."""
    spec = reduction_spec(ins)
    if spec is None:
        return ins.fn
    if spec.pointwise is not None:
        pointwise = spec.pointwise
        if not dims:
            return pointwise
        return lambda *xs: torch.mean(pointwise(*xs), dims, keepdim=keepdim)
    reduce = spec.reduce
    # no event dims: the unbatched reduction of one number is that number
    return (lambda v: reduce(v, dims, keepdim=keepdim)) if dims else (lambda v: v)


def _unpadded(x: torch.Tensor, event: tuple[int, ...], batched: bool, rank: int
              ) -> torch.Tensor:
    """A batched value (R, 1, ..., *event) as (R, 1 x rank, *event): padded to ``rank``
    event dims (0: just (R, *event)). Unbatched values are left as they are."""
    if not batched:
        return _t(x)
    return x.reshape((x.shape[0],) + (1,) * max(0, rank - len(event)) + event)


def _batched_matmul(args: list[tuple[tuple[int, ...], bool]], out_event: tuple[int, ...],
                    rank: int) -> Callable[..., torch.Tensor]:
    """``a @ b`` on values laid out (R, 1, ..., *event): matmul needs each operand's own
    dims, so the padding is taken off, the run dim is kept out of matmul's way (a vector
    becomes a one-row or one-column matrix, a lower-rank matrix gets singleton batch dims)
    and the result is padded back to ``rank`` event dims."""
    (ea, da), (eb, db) = args
    na, nb = len(ea), len(eb)

    def matmul(a, b):
        n = (a if da else b).shape[0]
        if na == 1 and nb == 1:
            out = (_unpadded(a, ea, da, 0) * _unpadded(b, eb, db, 0)).sum(-1)
        elif nb == 1:   # (..., m, n) @ (n,)
            col = _unpadded(b, eb, db, na - 1).unsqueeze(-1) if db else b.unsqueeze(-1)
            out = torch.matmul(_unpadded(a, ea, da, na), col).squeeze(-1)
        elif na == 1:   # (n,) @ (..., n, k)
            row = _unpadded(a, ea, da, nb - 1).unsqueeze(-2) if da else a.unsqueeze(-2)
            out = torch.matmul(row, _unpadded(b, eb, db, nb)).squeeze(-2)
        else:
            top = max(na, nb)
            out = torch.matmul(_unpadded(a, ea, da, top), _unpadded(b, eb, db, top))
        return out.reshape((n,) + (1,) * (rank - len(out_event)) + out_event)

    return matmul


def _batched_stack(args: list[tuple[tuple[int, ...], bool]], out_event: tuple[int, ...],
                   rank: int) -> Callable[..., torch.Tensor]:
    """``stack(...)`` on batched values: stacked along a new last dim, the inputs padded to
    one dim less than the result so that it comes out at ``rank`` event dims."""
    inner = len(out_event) - 1

    def stack(*xs):
        n = next(x.shape[0] for x, (_, d) in zip(xs, args) if d)
        parts = [_unpadded(x, e, d, inner) for x, (e, d) in zip(xs, args)]
        out = torch.stack(torch.broadcast_tensors(*parts), dim=-1)
        return out.reshape((n,) + (1,) * (rank - len(out_event)) + out_event)

    return stack


def vmap_call(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
              batched: dict[str, torch.Tensor], fixed: dict[str, torch.Tensor]) -> torch.Tensor:
    """Call ``fn(env)`` for every point of a batch in one vectorized ``torch.vmap`` call."""
    names = list(batched)
    fixed = dict(fixed)

    def one(*vals: torch.Tensor) -> torch.Tensor:
        return fn({**fixed, **dict(zip(names, vals))})

    return torch.vmap(one)(*[batched[n] for n in names])


def _is_float(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _clip(text: str, limit: int = 40) -> str:
    """Quote at most ``limit`` characters of source in a message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
    """Compile user text into an :class:`Expression`; anything wrong is an ExpressionError.

    With ``variables=None`` every free name is a parameter (the function). Otherwise only
    the listed names may appear (the loss: the parameters and ``y``). ``reserved`` names may
    not be used as parameters.
    """
    if not isinstance(text, str):
        raise ExpressionError("expected text", field)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"this text is too long ({len(text):,} characters); the limit "
                              f"is {MAX_LENGTH:,}", field)
    if "\n" in text or "\r" in text:
        raise ExpressionError("the expression must be on one line", field)
    bad = _UNREADABLE.search(text)
    if bad:
        raise ExpressionError(f"the character {ascii(bad.group())} cannot be used", field,
                              bad.start() + 1)
    body, offset = strip_prefix(text, field)
    stripped = body.lstrip()
    offset += len(body) - len(stripped)
    if not stripped.strip():
        raise ExpressionError(f"the {field} is empty", field)
    tree = _parse(stripped, field, offset)
    try:
        return _Compiler(stripped, field, offset, variables, reserved).run(tree)
    except (RecursionError, MemoryError):  # pragma: no cover - the compiler is iterative
        raise ExpressionError(f"the {field} is too complex to compile", field) from None


_PARSE_LOCK = threading.Lock()


def _parse(source: str, field: str, offset: int) -> ast.Expression:
    """``ast.parse``, with every way it fails turned into a student's message."""
    # CPython turns its parse tree into ast objects recursively, bounded by three times the
    # recursion limit: a sum of 3,000 terms fails at the default. The limit is raised only
    # around the call (the lock keeps two threads from restoring each other's value); the
    # parser's own stack (about 6,000 levels) stays the real bound on nesting.
    with _PARSE_LOCK:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(old + MAX_LENGTH)
        try:
            return ast.parse(source, mode="eval")
        except SyntaxError as exc:
            msg = _clip(exc.msg or "invalid syntax", 200)
            if msg.startswith("Exceeds the limit"):  # an int of more than 4,300 digits
                digits = max(_DIGITS.finditer(source), key=lambda m: len(m.group()))
                raise ExpressionError(f"this number is too large; {_TOO_LARGE}", field,
                                      digits.start() + 1 + offset) from None
            ending = re.search(r"(\*\*|//|[-+*/%@,(])\s*$", source)
            if "too many nested parentheses" in msg:
                msg = "brackets are nested too deeply (the limit is 200)"
            elif msg == "invalid syntax" and ending:
                # Python points at the start; what is missing is after the last operator
                raise ExpressionError(f"syntax error: something is missing after "
                                      f"'{ending.group(1)}' at the end", field,
                                      ending.start(1) + 1 + offset) from None
            else:
                msg = f"syntax error: {msg}"
            raise ExpressionError(msg, field, (exc.offset or 1) + offset) from None
        except (MemoryError, RecursionError):
            raise ExpressionError("the expression is nested too deeply to read (for example "
                                  "thousands of signs or '**' in a row); simplify it",
                                  field) from None
        except ValueError as exc:  # pragma: no cover - unreadable characters are refused first
            raise ExpressionError(f"cannot read the {field}: {_short(exc)}", field) from None
        finally:
            sys.setrecursionlimit(old)


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
        # ast positions are UTF-8 byte offsets; map them to characters once, not per node.
        self.char_at: list[int] | None = None
        if not source.isascii():
            self.char_at = [i for i, ch in enumerate(source) for _ in ch.encode()]
            self.char_at.append(len(source))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start, end = node.col_offset, node.end_col_offset or node.col_offset
        if self.char_at is not None:
            start, end = self.char_at[start], self.char_at[end]
        return start, end

    def column(self, node: ast.AST) -> int:
        return self.span(node)[0] + 1 + self.offset

    def error(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, self.field, self.column(node))

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return _clip(self.source[start:end])

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
        root = slots[id(tree.body)]
        if root != len(self.program) - 1:
            # The result is always the last instruction, but a text that folds to a number
            # met before (-(-2) is 2) was merged into that earlier one: give it its own slot.
            self.program.append(replace(self.program[root], column=self.column(tree.body),
                                        span=self.span(tree.body)))
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
                                 "+ - * / ** % @", node)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise self.error("only unary minus and plus are allowed", node)
            return [node.operand]
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                what = "text in quotes" if isinstance(node.value, str) else repr(node.value)
                raise self.error(f"{_clip(what)} is not allowed; only numbers", node)
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
            raise self.error(f"names with double underscores ('{_clip(name)}') are not allowed",
                             node)

    def check_call(self, node: ast.Call) -> list[ast.AST]:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.error("attribute access (a dot after a name) is not allowed", node.func)
            raise self.error("only named functions such as sin(x) can be called", node)
        name = node.func.id
        self.check_name(name, node.func)
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise self.error(f"unknown function '{_clip(name)}'; the functions are "
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

    def number(self, node: ast.Constant) -> float:
        value = node.value
        # Compare before converting: float() of a 400-digit int raises OverflowError.
        if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > FLOAT_MAX:
            raise self.error(f"this number is too large; {_TOO_LARGE}", node)
        return float(value)

    def fold(self, node: ast.AST, fn: Callable[..., Any], args: tuple[int, ...]) -> Any:
        """Compute an operation on numbers alone now, so a bad one is refused here and not at
        the first training step."""
        try:
            value = fn(*[self.program[a].value for a in args])
        except ZeroDivisionError:
            raise self.error(f"'{self.text(node)}' divides by zero", node) from None
        except ValueError as exc:
            raise self.error(f"'{self.text(node)}': {exc}", node) from None
        except OverflowError:
            value = math.inf
        if isinstance(value, complex):  # Python gives (-8)**(1/3) as a complex number
            raise self.error(f"'{self.text(node)}' is not a real number (a negative number to a "
                             "fractional power)", node)
        if not math.isfinite(value) or abs(value) > FLOAT_MAX:
            raise self.error(f"'{self.text(node)}' is too large; {_TOO_LARGE}", node)
        return float(value)

    def resolve_name(self, name: str, node: ast.AST) -> float | None:
        """Register a free name; return the value of the constants pi and e."""
        if name in CONSTANTS:
            return CONSTANTS[name]
        if self.variables is None:
            if name in self.reserved:
                raise self.error(f"'{name}' is reserved (it names the "
                                 f"{'function value' if name == 'y' else name}); choose another "
                                 "parameter name", node)
        elif name not in self.variables:
            raise self.error(f"unknown name '{_clip(name)}'; "
                             f"{_describe_variables(self.variables)}", node)
        if name not in self.names:
            self.names.append(name)
        return None

    def emit(self, node: ast.AST, slots: dict[int, int]) -> int:
        where = {"column": self.column(node), "span": self.span(node), "source": self.source}

        def const(value: float) -> Instr:
            return Instr("const", args=(), value=value, **where)

        if isinstance(node, ast.Constant):
            ins = const(self.number(node))
        elif isinstance(node, ast.Name):
            value = self.resolve_name(node.id, node)
            ins = const(value) if value is not None else Instr("name", args=(), value=node.id,
                                                               **where)
        elif isinstance(node, ast.Subscript):
            name = node.value.id
            if self.resolve_name(name, node.value) is not None:
                raise self.error(f"'{name}' is a number and cannot be indexed", node)
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            index = tuple(_int_literal(el) for el in elements)
            ins = Instr("index", args=(), value=name, index=index, **where)
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            if isinstance(node, ast.BinOp):
                symbol, fn, fold = _BINOPS[type(node.op)]
                args = (slots[id(node.left)], slots[id(node.right)])
            else:
                fn = fold = operator.neg if isinstance(node.op, ast.USub) else operator.pos
                symbol = "-" if isinstance(node.op, ast.USub) else "+"
                args = (slots[id(node.operand)],)
            if all(self.program[a].kind == "const" for a in args):
                ins = const(self.fold(node, fold, args))
            else:
                ins = Instr("op", args=args, value=symbol, fn=fn, **where)
        elif isinstance(node, ast.Call):
            name = node.func.id
            ins = Instr("call", args=tuple(slots[id(a)] for a in node.args), value=name,
                        fn=FUNCTIONS[name].impl, **where)
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
