"""A problem: a compiled function and loss, and the initial values of their parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from .errors import GdvizError
from .expressions import Expression, compile_expression, vmap_call
from .initializers import DEFAULT_INIT, make_initial_value

DEFAULT_LOSS = "y"


@dataclass
class ParamSpec:
    """How one parameter starts: an initializer text and whether it is frozen."""

    init: str = DEFAULT_INIT
    frozen: bool = False


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
        y = self.function.check(self.initial)
        raw = self.loss.check({**self.initial, "y": y})
        #: True when the loss expression is not a single number and is summed (as
        #: ``backward(torch.ones_like(y))`` does in the seed notebook)
        self.loss_summed = raw.dim() > 0
        if raw.numel() == 0:
            raise GdvizError("the loss has no elements (a parameter has a zero size)")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(v.shape) for n, v in self.initial.items()}

    def initial_flat(self) -> np.ndarray:
        """The initial values of every parameter, flattened in order (a history row)."""
        return np.concatenate([self.initial[n].reshape(-1).double().numpy() for n in self.names])

    def forward(self, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The function's value y and the scalar loss at ``values``."""
        y = self.function.evaluate(values)
        raw = self.loss.evaluate({**values, "y": y})
        return y, (raw.sum() if self.loss_summed else raw)

    def loss_value(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The scalar loss at ``values`` (the training loop's forward pass)."""
        raw = self.loss.evaluate({**values, "y": self.function.evaluate(values)})
        return raw.sum() if self.loss_summed else raw

    def loss_on_batch(self, batched: Mapping[str, torch.Tensor],
                      fixed: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss at many points in one vectorized call: every tensor in ``batched`` has a
        leading batch dimension, ``fixed`` are shared. Returns shape (batch,)."""
        with torch.no_grad():
            return vmap_call(self.loss_value, dict(batched), dict(fixed))
