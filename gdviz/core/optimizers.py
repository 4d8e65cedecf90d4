"""The optimizers gdviz offers and their hyperparameters (names, defaults, ranges, help).

The updates themselves, batched over runs and checked against torch.optim, are in
:mod:`gdviz.core.updates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import GdvizError


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: default, kind ('float' or 'bool'), range and help text."""

    name: str
    default: float | bool
    help: str
    kind: str = "float"
    minimum: float = 0.0
    maximum: float = 1e6
    log: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer's name, a one-line description and its hyperparameters."""

    name: str
    title: str
    description: str
    hypers: tuple[Hyper, ...]

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hypers}

    def hyper(self, name: str) -> Hyper:
        for h in self.hypers:
            if h.name == name:
                return h
        raise KeyError(name)


def _lr(default: float) -> Hyper:
    return Hyper("lr", default, "learning rate: the size of each step", minimum=1e-8,
                 maximum=100.0, log=True)


_WD = Hyper("weight_decay", 0.0, "L2 penalty pulling parameters towards 0")
_EPS = Hyper("eps", 1e-8, "small number added to denominators for stability", minimum=1e-12,
             maximum=1.0, log=True)
_BETA1 = Hyper("beta1", 0.9, "decay of the running mean of gradients", maximum=0.999999)
_BETA2 = Hyper("beta2", 0.999, "decay of the running mean of squared gradients", maximum=0.999999)
_AMSGRAD = Hyper("amsgrad", False, "use the maximum of past squared gradients", kind="bool")

OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in [
    OptimizerSpec("sgd", "SGD", "gradient descent: x -= lr * grad (optionally with momentum)", (
        _lr(0.01),
        Hyper("momentum", 0.0, "fraction of the previous step carried into the next", maximum=0.999999),
        Hyper("dampening", 0.0, "damps the gradient's share of the momentum", maximum=1.0),
        _WD,
        Hyper("nesterov", False, "Nesterov momentum (needs momentum > 0, dampening 0)", kind="bool"),
    )),
    OptimizerSpec("adam", "Adam", "adaptive moments (Kingma & Ba)", (
        _lr(0.01), _BETA1, _BETA2, _EPS, _WD, _AMSGRAD)),
    OptimizerSpec("adamw", "AdamW", "Adam with decoupled weight decay", (
        _lr(0.01), _BETA1, _BETA2, _EPS,
        Hyper("weight_decay", 0.01, "decoupled weight decay"), _AMSGRAD)),
    OptimizerSpec("rmsprop", "RMSprop", "divides by a running root mean square of gradients", (
        _lr(0.01),
        Hyper("alpha", 0.99, "decay of the running mean of squared gradients", maximum=0.999999),
        _EPS, _WD,
        Hyper("momentum", 0.0, "momentum", maximum=0.999999),
        Hyper("centered", False, "normalize by the variance instead of the raw second moment",
              kind="bool"),
    )),
    OptimizerSpec("adagrad", "Adagrad", "per-element steps shrinking with accumulated squared gradients", (
        _lr(0.01),
        Hyper("lr_decay", 0.0, "learning rate decay"),
        _WD,
        Hyper("initial_accumulator_value", 0.0, "starting value of the accumulator"),
        Hyper("eps", 1e-10, "small number added to the denominator", minimum=1e-12, maximum=1.0,
              log=True),
    )),
]}


def normalize_hypers(name: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in, types and ranges checked; unknown names are errors."""
    spec = OPTIMIZERS.get(name)
    if spec is None:
        raise GdvizError(f"unknown optimizer '{name}'; choose from {', '.join(OPTIMIZERS)}")
    result = spec.defaults()
    for key, value in (values or {}).items():
        try:
            hyper = spec.hyper(key)
        except KeyError:
            raise GdvizError(f"{name} has no option '{key}'; its options are "
                             f"{', '.join(h.name for h in spec.hypers)}") from None
        if hyper.kind == "bool":
            if not isinstance(value, bool):
                raise GdvizError(f"{key} must be true or false")
            result[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise GdvizError(f"{key} must be a number, got {type(value).__name__}")
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise GdvizError(f"{key} must be a number, got {str(value)[:40]!r}") from None
        if number != number or not hyper.minimum <= number <= hyper.maximum:
            raise GdvizError(f"{key} must be between {hyper.minimum:g} and {hyper.maximum:g}, "
                             f"got {number:g}")
        result[key] = number
    return result
