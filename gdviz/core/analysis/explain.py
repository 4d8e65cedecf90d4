"""One optimizer update written out: the rule torch.optim applies, with this step's numbers.

:func:`explain_update` takes the state before an update (as torch keeps it), the gradient
and the parameters, and returns every intermediate quantity of the rule (for Adam: m, v,
m-hat, v-hat, the step) as a list of :class:`Line`, with the state and parameters after
the update. It is plain double-precision numpy, written to be read; the tests hold it to
torch.optim's own state and parameters after the same step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..optimizers import OPTIMIZERS, normalize_hypers
from ..updates import rule_of, state_keys


@dataclass(frozen=True)
class Line:
    symbol: str          # e.g. "m"
    formula: str         # e.g. "β1·m + (1 − β1)·g"
    values: np.ndarray   # one per parameter element
    note: str = ""


@dataclass
class Explanation:
    optimizer: str
    rule: str
    step: int                        # the optimizer's update count after this update (t)
    lr: float                        # the rate this step used (after any schedule)
    lines: list[Line]
    state: dict[str, np.ndarray]     # the state after the update, flat per key
    params: np.ndarray               # the parameters after the update
    constants: dict[str, float] = field(default_factory=dict)

    @property
    def update(self) -> np.ndarray:
        return next(line.values for line in self.lines if line.symbol == "Δθ")

    def title(self) -> str:
        return f"{OPTIMIZERS[self.optimizer].title}, update {self.step} (lr {self.lr:.4g})"


def explain_update(optimizer: str, hypers: Mapping, state: Mapping[str, np.ndarray] | None,
                   updates_before: int, grad: np.ndarray, params: np.ndarray, lr: float,
                   clip_norm: float | None = None) -> Explanation:
    """The update that takes ``params`` (flat, trainable elements) with gradient ``grad``
    from a state after ``updates_before`` updates (None or empty: fresh) to the next."""
    h = normalize_hypers(optimizer, hypers)
    rule = rule_of(optimizer, h)
    keys = state_keys(rule)
    g0 = np.asarray(grad, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    s = {k: np.asarray(state[k], dtype=np.float64) for k in keys} if state else {}
    t = updates_before + 1
    lines = [Line("g", "∇L(θ)", g0)]
    g = g0
    if clip_norm is not None:
        norm = float(np.sqrt(np.sum(g0 * g0)))
        coef = min(clip_norm / (norm + 1e-6), 1.0)
        g = g0 * coef
        lines.append(Line("g", f"g · min(1, {clip_norm:g} / (‖g‖ + 1e-6))", g,
                          f"‖g‖ = {norm:.4g}" + (", clipped" if coef < 1 else ", under the limit")))
    wd = float(h.get("weight_decay", 0.0))
    constants = {**{k: float(v) for k, v in h.items() if not isinstance(v, bool)}, "lr": lr}
    if wd and optimizer != "adamw":
        g = g + wd * p
        lines.append(Line("g", f"g + {wd:g}·θ", g, "weight decay"))
    new: dict[str, np.ndarray] = {}
    if rule in ("sgd", "momentum"):
        d = g
        if rule == "momentum":
            mu, damp = float(h["momentum"]), float(h["dampening"])
            if "momentum_buffer" not in s:
                buf = g.copy()
                lines.append(Line("b", "g", buf, "the buffer starts as the first gradient"))
            else:
                buf = mu * s["momentum_buffer"] + (1 - damp) * g
                lines.append(Line("b", f"{mu:g}·b + {1 - damp:g}·g", buf, "momentum buffer"))
            new["momentum_buffer"] = buf
            if h["nesterov"]:
                d = g + mu * buf
                lines.append(Line("d", f"g + {mu:g}·b", d, "Nesterov"))
            else:
                d = buf
        lines.append(Line("Δθ", f"−{lr:.4g}·{'d' if rule == 'momentum' else 'g'}", -lr * d))
        out = p - lr * d
    elif rule.startswith("adam"):
        b1, b2, eps = float(h["beta1"]), float(h["beta2"]), float(h["eps"])
        if optimizer == "adamw" and wd:
            p = p * (1 - lr * wd)
            lines.append(Line("θ", f"θ·(1 − {lr:.4g}·{wd:g})", p, "decoupled weight decay"))
        m = b1 * s.get("exp_avg", 0.0) + (1 - b1) * g
        v = b2 * s.get("exp_avg_sq", 0.0) + (1 - b2) * g * g
        new.update(exp_avg=m, exp_avg_sq=v)
        lines += [Line("m", f"{b1:g}·m + {1 - b1:g}·g", m, "exp_avg"),
                  Line("v", f"{b2:g}·v + {1 - b2:g}·g²", v, "exp_avg_sq")]
        if "max_exp_avg_sq" in keys:
            v = np.maximum(s.get("max_exp_avg_sq", 0.0), v)
            new["max_exp_avg_sq"] = v
            lines.append(Line("v", "max(v_max, v)", v, "AMSGrad"))
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        m_hat, v_hat = m / bc1, v / bc2
        lines += [Line("m̂", f"m / (1 − {b1:g}^{t})", m_hat, "bias-corrected"),
                  Line("v̂", f"v / (1 − {b2:g}^{t})", v_hat, "bias-corrected"),
                  Line("η", f"{lr:.4g} / (√v̂ + {eps:g})", lr / (np.sqrt(v_hat) + eps),
                       "the effective rate of each element")]
        step = -lr * m_hat / (np.sqrt(v_hat) + eps)
        lines.append(Line("Δθ", f"−{lr:.4g}·m̂ / (√v̂ + {eps:g})", step))
        out = p + step
    elif rule.startswith("rmsprop"):
        alpha, eps = float(h["alpha"]), float(h["eps"])
        sq = alpha * s.get("square_avg", 0.0) + (1 - alpha) * g * g
        new["square_avg"] = sq
        lines.append(Line("s", f"{alpha:g}·s + {1 - alpha:g}·g²", sq, "square_avg"))
        if "grad_avg" in keys:
            ga = alpha * s.get("grad_avg", 0.0) + (1 - alpha) * g
            new["grad_avg"] = ga
            lines.append(Line("ḡ", f"{alpha:g}·ḡ + {1 - alpha:g}·g", ga, "grad_avg (centered)"))
            avg = np.sqrt(sq - ga * ga) + eps
            lines.append(Line("a", f"√(s − ḡ²) + {eps:g}", avg))
        else:
            avg = np.sqrt(sq) + eps
            lines.append(Line("a", f"√s + {eps:g}", avg))
        if "momentum_buffer" in keys:
            mu = float(h["momentum"])
            buf = mu * s.get("momentum_buffer", 0.0) + g / avg
            new["momentum_buffer"] = buf
            lines.append(Line("b", f"{mu:g}·b + g / a", buf, "momentum buffer"))
            step = -lr * buf
            lines.append(Line("Δθ", f"−{lr:.4g}·b", step))
        else:
            lines.append(Line("η", f"{lr:.4g} / a", lr / avg, "the effective rate of each element"))
            step = -lr * g / avg
            lines.append(Line("Δθ", f"−{lr:.4g}·g / a", step))
        out = p + step
    else:  # adagrad
        eps, decay = float(h["eps"]), float(h["lr_decay"])
        clr = lr / (1 + (t - 1) * decay)
        total = (s["sum"] if "sum" in s else np.full_like(g, float(h["initial_accumulator_value"]))) + g * g
        new["sum"] = total
        lines += [Line("Σ", "Σ + g²", total, "sum of squared gradients")]
        if decay:
            lines.append(Line("lr_t", f"{lr:.4g} / (1 + {t - 1}·{decay:g})", np.full_like(g, clr)))
        lines.append(Line("η", f"{clr:.4g} / (√Σ + {eps:g})", clr / (np.sqrt(total) + eps),
                          "the effective rate of each element"))
        step = -clr * g / (np.sqrt(total) + eps)
        lines.append(Line("Δθ", f"−{clr:.4g}·g / (√Σ + {eps:g})", step))
        out = p + step
    lines.append(Line("θ", "θ + Δθ", out, "the parameters after the update"))
    return Explanation(optimizer, rule, t, lr, lines, new, out, constants)
