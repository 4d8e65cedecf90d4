"""The optimizers gdviz offers, their hyperparameters, and a small uniform wrapper.

Plain gradient descent (SGD without momentum or weight decay) is the seed notebook's
``X -= lr * X.grad`` done as one in-place op per parameter: ``torch.optim.SGD`` costs
several times more Python per step on tiny problems. Everything else is ``torch.optim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

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
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise GdvizError(f"{key} must be a number, got {value!r}") from None
        if number != number or not hyper.minimum <= number <= hyper.maximum:
            raise GdvizError(f"{key} must be between {hyper.minimum:g} and {hyper.maximum:g}, "
                             f"got {number:g}")
        result[key] = number
    return result


class PlainSGD:
    """x -= lr * grad (the seed notebook's update), one op per parameter.

    The new values go into fresh storage rather than in place, so a snapshot taken with
    ``detach()`` before the step stays as it was: the trainer records each step's
    parameters without copying them (``keeps_old_storage``).
    """

    keeps_old_storage = True

    def __init__(self, params: Sequence[torch.Tensor], lr: float):
        self.params = list(params)
        self.lr = lr

    def step(self) -> None:
        lr = self.lr
        for p in self.params:
            p.data = torch.sub(p.detach(), p.grad, alpha=lr)

    def set(self, key: str, value: Any) -> None:
        setattr(self, key, value)


class TorchOptimizer:
    """A ``torch.optim`` optimizer behind the same two methods as :class:`PlainSGD`."""

    keeps_old_storage = False  # torch.optim updates in place: snapshots must be copies

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.step = optimizer.step

    def set(self, key: str, value: Any) -> None:
        for group in self.optimizer.param_groups:
            if key in ("beta1", "beta2"):
                b1, b2 = group["betas"]
                group["betas"] = (value, b2) if key == "beta1" else (b1, value)
            else:
                group[key] = value


def make_optimizer(name: str, params: Sequence[torch.Tensor], hypers: Mapping[str, Any]):
    """Build the optimizer ``name`` over ``params`` with already normalized ``hypers``."""
    h = dict(hypers)
    if name == "sgd" and not h["momentum"] and not h["weight_decay"] and not h["nesterov"]:
        return PlainSGD(params, h["lr"])
    if "beta1" in h:
        h["betas"] = (h.pop("beta1"), h.pop("beta2"))
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[name]
    try:
        return TorchOptimizer(cls(list(params), **h))
    except (ValueError, TypeError) as exc:
        raise GdvizError(f"{name}: {exc}") from None
