"""A problem: a compiled function and loss, and the initial values of their parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from .errors import GdvizError
from .expressions import Expression, compile_expression
from .history import ColumnLayout
from .initializers import make_initial_value
from .params import DEFAULT_LOSS, ParamSpec
from .records import ProblemInfo



@dataclass
class Problem:
    """The function and loss compiled once, with seeded initial values (CPU tensors).

    ``names`` lists every parameter in the order it first appears in the function;
    ``trainable`` those that are not frozen.
    """

    function_text: str
    loss_text: str = DEFAULT_LOSS
    specs: Mapping[str, ParamSpec] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self.loss_text = (self.loss_text or "").strip() or DEFAULT_LOSS
        self.function: Expression = compile_expression(self.function_text, "function",
                                                       reserved=("y", "loss"))
        self.names: list[str] = list(self.function.names)
        unknown = [n for n in self.specs if n not in self.names]
        if unknown:
            raise GdvizError(f"parameter '{unknown[0]}' is not in the function; its parameters "
                             f"are {', '.join(self.names)}")
        self.loss: Expression = compile_expression(self.loss_text, "loss",
                                                   variables=self.names + ["y"])
        self.specs = {n: self.specs.get(n) or ParamSpec() for n in self.names}
        self.frozen = {n for n, s in self.specs.items() if s.frozen}
        self.trainable = [n for n in self.names if n not in self.frozen]
        generator = torch.Generator().manual_seed(int(self.seed))
        self.initial = {n: make_initial_value(self.specs[n].init, generator,
                                              field=f"the initial value of {n}")
                        for n in self.names}
        # What is accepted must train: one forward and backward of each expression, which
        # points at the column of an operation that has no gradient there.
        y = self.function.check(self.initial, backward=self.trainable or False)
        raw = self.loss.check({**self.initial, "y": y}, backward=[*self.trainable, "y"])
        #: True when the loss expression is not a single number and is summed (as
        #: ``backward(torch.ones_like(y))`` does in the seed notebook)
        self.loss_summed = raw.dim() > 0
        if raw.numel() == 0:
            raise GdvizError("the loss has no elements (a parameter has a zero size)")
        self._y_shape = tuple(y.shape)
        self._raw_dims = tuple(range(1, raw.dim() + 1))
        self.layout = ColumnLayout(self.shapes, tuple(self.trainable))
        self._batched = None
        self._check_backward()

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(v.shape) for n, v in self.initial.items()}

    def info(self) -> ProblemInfo:
        return ProblemInfo(self.function_text, self.loss_text, tuple(self.names),
                           tuple(self.trainable), self.layout, self.initial_flat(),
                           self.loss_summed)

    def initial_flat(self) -> np.ndarray:
        """The initial values of every parameter, flattened in order (a history row)."""
        return np.concatenate([self.initial[n].reshape(-1).double().numpy() for n in self.names])

    def forward(self, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The function's value y and the scalar loss at one point (tensors of the
        parameters' own shapes): what the computation graph and ``gdviz grad`` show."""
        y = self.function.evaluate(values)
        raw = self.loss.evaluate({**values, "y": y})
        return y, (raw.sum() if self.loss_summed else raw)

    def batched_loss(self) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """The loss of R runs at once: ``env[name]`` has shape (R, *shape); returns (R,).
        One compiled plan, no per-call dispatch: this is the training loop's forward pass."""
        if self._batched is None:
            function = self.function.plan(self.shapes, self.names)
            loss = self.loss.plan({**self.shapes, "y": self._y_shape}, [*self.names, "y"])
            dims, summed = self._raw_dims, self.loss_summed

            def losses(env: Mapping[str, torch.Tensor]) -> torch.Tensor:
                raw = loss({**env, "y": function(env)})
                return raw.sum(dim=dims) if summed else raw

            self._batched = losses
        return self._batched

    def losses_at(self, points: np.ndarray, chunk_values: int = 4_000_000) -> np.ndarray:
        """The loss at each row of ``points`` (flat parameter rows), in vectorized chunks that
        bound memory; non-finite values come back as NaN. For the landscape and analyses."""
        points = np.asarray(points, dtype=np.float64)
        out = np.empty(len(points))
        fn = self.batched_loss()
        chunk = max(1, chunk_values // max(1, points.shape[1]))
        slices = self.layout.param_slices
        with torch.no_grad():
            for start in range(0, len(points), chunk):
                part = torch.as_tensor(points[start:start + chunk], dtype=torch.float32)
                env = {n: part[:, sl].reshape((len(part),) + self.layout.shapes[n])
                       for n, sl in slices.items()}
                try:
                    out[start:start + len(part)] = fn(env).double().numpy()
                except (RuntimeError, ValueError):
                    out[start:start + len(part)] = np.nan
        out[~np.isfinite(out)] = np.nan
        return out

    def _check_backward(self) -> None:
        """What is accepted must train: one forward and backward at the initial values."""
        env = {n: t.unsqueeze(0).clone().requires_grad_(n not in self.frozen)
               for n, t in self.initial.items()}
        try:
            loss = self.batched_loss()(env)
            if loss.requires_grad:
                loss.sum().backward()
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GdvizError(f"cannot compute the gradient of the loss: "
                             f"{str(exc).splitlines()[0][:200]}") from None
