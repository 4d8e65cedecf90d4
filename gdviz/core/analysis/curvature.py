"""Curvature at a point: the Hessian of the loss with respect to the trainable elements, its
eigenvalues, condition number and the learning rates beyond which descent is unstable.

Up to :data:`EXACT_LIMIT` trainable elements the Hessian is computed exactly (one batched
double backward per element, in float64) and fully decomposed. Beyond that only the top few
eigenvalues are estimated, by Lanczos iteration on Hessian-vector products, as PyHessian
does. Both work on many points at once (the history rows of a run): the rows of a batched
loss are independent, so one backward of their sum gives every row's own product.

On a quadratic with largest eigenvalue lambda_max, gradient descent converges for learning
rates below 2 / lambda_max, heavy-ball momentum beta below 2 (1 + beta) / lambda_max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..errors import GdvizError

if TYPE_CHECKING:
    from ..problem import Problem

#: up to this many trainable elements the Hessian is computed and decomposed exactly
EXACT_LIMIT = 500
#: eigenvalues estimated beyond that
DEFAULT_TOP = 6
#: numbers of the Hessians held at once when many points are done together
_BATCH_VALUES = 4_000_000


@dataclass
class Curvature:
    """The Hessian's eigenvalues at one point (ascending). With ``exact`` False only the
    top few are known (Lanczos), and there is no condition number."""

    columns: list[str]              # the trainable elements, in the Hessian's order
    eigenvalues: np.ndarray         # ascending
    eigenvectors: np.ndarray | None  # (elements, len(eigenvalues)), columns
    hessian: np.ndarray | None      # (elements, elements) when exact
    exact: bool

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def condition_number(self) -> float | None:
        """max |lambda| / min |lambda| (inf when the Hessian is singular); None when only
        the top eigenvalues are known."""
        if not self.exact:
            return None
        magnitude = np.abs(self.eigenvalues)
        low = float(magnitude.min())
        return float(magnitude.max()) / low if low > 0 else math.inf

    def summary(self, momentum: float = 0.9) -> dict[str, Any]:
        """The keys of ``gdviz curvature --json``."""
        return {"eigenvalues": self.eigenvalues.tolist(),
                "condition_number": self.condition_number,
                **stability_limits(self.eigenvalues, momentum)}


def stability_limits(eigenvalues: Sequence[float] | np.ndarray,
                     momentum: float = 0.9) -> dict[str, float]:
    """The largest stable learning rates on the local quadratic: 2 / lambda_max for plain
    gradient descent, 2 (1 + momentum) / lambda_max for heavy-ball momentum; infinite when
    no eigenvalue is positive (no direction curves up)."""
    if not 0 <= momentum < 1:
        raise GdvizError(f"momentum must be at least 0 and below 1, got {momentum:g}")
    top = float(np.max(eigenvalues))
    if not top > 0:
        return {"lr_limit_sgd": math.inf, "lr_limit_momentum": math.inf}
    return {"lr_limit_sgd": 2.0 / top, "lr_limit_momentum": 2.0 * (1.0 + momentum) / top}


# --- Hessians ------------------------------------------------------------------------------

class _Second:
    """The loss of many points and its first and second derivatives, in float64, with
    respect to the trainable elements (held elements are constants)."""

    def __init__(self, problem: "Problem", points: np.ndarray):
        points = np.atleast_2d(np.asarray(points, dtype=np.float64))
        layout = problem.layout
        if points.shape[1] != layout.n_params:
            raise ValueError(f"points must have {layout.n_params} columns")
        self.columns = [name for name, _ in layout.trainable_axes()]
        self.index = [i for _, i in layout.trainable_axes()]
        if not self.index:
            raise GdvizError("every parameter is frozen, so the loss has no Hessian")
        full = torch.as_tensor(points, dtype=torch.float64)
        self.x = full[:, self.index].clone().requires_grad_()
        rows = len(points)
        env, position = {}, {c: i for i, c in enumerate(self.index)}
        for name, sl in layout.param_slices.items():
            shape = (rows,) + tuple(layout.shapes[name])
            cols = range(sl.start, sl.stop)
            if name in problem.trainable:
                env[name] = self.x[:, [position[c] for c in cols]].reshape(shape)
            else:
                env[name] = full[:, sl].reshape(shape)
        with torch.enable_grad():
            self.loss = problem.batched_loss()(env)
            if not self.loss.requires_grad:
                self.grad = torch.zeros_like(self.x)
            else:
                self.grad, = torch.autograd.grad(self.loss.sum(), self.x, create_graph=True,
                                                 allow_unused=True)
                if self.grad is None:
                    self.grad = torch.zeros_like(self.x)
        self.check_finite(self.loss.detach(), "value")
        self.check_finite(self.grad.detach(), "gradient")

    def check_finite(self, values: torch.Tensor, what: str) -> None:
        bad = ~torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
        if bool(bad.any()):
            r = int(bad.nonzero()[0, 0])
            where = ", ".join(f"{c} = {float(self.x.detach()[r, k]):g}"
                              for k, c in enumerate(self.columns[:6]))
            raise GdvizError(f"the {what} of the loss is not finite at this point ({where}"
                             f"{', ...' if len(self.columns) > 6 else ''}); curvature needs a "
                             "point where the loss is twice differentiable")

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """Each row's Hessian times its row of ``v``."""
        if not self.grad.requires_grad:
            return torch.zeros_like(v)
        with torch.enable_grad():
            out, = torch.autograd.grad(self.grad, self.x, v, retain_graph=True,
                                       allow_unused=True)
        return torch.zeros_like(v) if out is None else out

    def hessians(self) -> torch.Tensor:
        """(rows, elements, elements), symmetrized."""
        n = self.x.shape[1]
        eye = torch.eye(n, dtype=torch.float64)
        h = torch.stack([self.hvp(eye[j].expand_as(self.x)) for j in range(n)], dim=1)
        return (h + h.transpose(1, 2)) / 2


def hessian_matrix(problem: "Problem", point: np.ndarray) -> np.ndarray:
    """The exact Hessian at one point (a full flat parameter row) over the trainable
    elements, in float64. Raises a GdvizError where it is not finite."""
    second = _Second(problem, point)
    h = second.hessians()
    second.check_finite(h, "Hessian")
    return h[0].numpy()


def hessian_at(problem: "Problem", point: np.ndarray | None = None, top: int = DEFAULT_TOP,
               exact_limit: int = EXACT_LIMIT) -> Curvature:
    """The curvature at ``point`` (a full flat parameter row; default the initial values):
    every eigenvalue and eigenvector up to ``exact_limit`` trainable elements, the ``top``
    largest (Lanczos) beyond."""
    point = problem.initial_flat() if point is None else np.asarray(point, dtype=np.float64)
    second = _Second(problem, point)
    n = second.x.shape[1]
    if n <= exact_limit:
        h = second.hessians()
        second.check_finite(h, "Hessian")
        values, vectors = torch.linalg.eigh(h[0])
        return Curvature(second.columns, values.numpy(), vectors.numpy(), h[0].numpy(), True)
    values, vectors = _lanczos(second, max(1, int(top)), vectors=True)
    return Curvature(second.columns, values[0], vectors[0], None, False)


def lambda_max_at(problem: "Problem", points: np.ndarray, exact_limit: int = 64) -> np.ndarray:
    """The largest Hessian eigenvalue at each row of ``points`` (full flat parameter rows):
    exactly up to ``exact_limit`` trainable elements, by Lanczos beyond; NaN where the loss
    is not twice differentiable."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    out = np.full(len(points), np.nan)
    n = len(problem.layout.trainable_axes())
    if not n:
        return out
    per = max(1, _BATCH_VALUES // (n * n if n <= exact_limit else n * 64))
    for start in range(0, len(points), per):
        part = points[start:start + per]
        try:
            out[start:start + len(part)] = _lambda_max(_Second(problem, part), n, exact_limit)
        except GdvizError:  # some row is not finite there: do the rows one by one
            for k, row in enumerate(part):
                try:
                    out[start + k] = _lambda_max(_Second(problem, row), n, exact_limit)[0]
                except GdvizError:
                    pass
    return out


def _lambda_max(second: _Second, n: int, exact_limit: int) -> np.ndarray:
    if n <= exact_limit:
        h = second.hessians()
        values = torch.linalg.eigvalsh(torch.nan_to_num(h, nan=0.0))[:, -1].numpy()
        ok = torch.isfinite(h.reshape(len(h), -1)).all(dim=1).numpy()
        return np.where(ok, values, np.nan)
    return _lanczos(second, 1)[0][:, -1]


def _lanczos(second: _Second, top: int, vectors: bool = False, seed: int = 0):
    """The ``top`` largest eigenvalues (ascending, per row) by Lanczos iteration with full
    reorthogonalization, and their Ritz vectors when asked."""
    rows, n = second.x.shape
    steps = min(n, max(30, 3 * top + 10))
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, n, dtype=torch.float64, generator=generator)
    q = q / q.norm(dim=1, keepdim=True)
    basis = [q]
    alphas, betas = [], []
    size = np.full(rows, steps)  # where each row's Krylov space stopped growing
    for j in range(steps):
        w = second.hvp(basis[-1])
        second.check_finite(w, "Hessian")
        alpha = (w * basis[-1]).sum(dim=1)
        alphas.append(alpha)
        stacked = torch.stack(basis, dim=1)                      # (rows, j+1, n)
        w = w - torch.einsum("rk,rkn->rn", torch.einsum("rkn,rn->rk", stacked, w), stacked)
        w = w - torch.einsum("rk,rkn->rn", torch.einsum("rkn,rn->rk", stacked, w), stacked)
        if j == steps - 1:
            break
        beta = w.norm(dim=1)
        small = (beta <= 1e-10 * alpha.abs().clamp_min(1.0)).numpy()
        size = np.where(small & (size == steps), j + 1, size)
        betas.append(beta)
        basis.append(torch.where(beta[:, None] > 0, w / beta.clamp_min(1e-300)[:, None],
                                 torch.zeros_like(w)))
    values_out, vectors_out = [], []
    a = torch.stack(alphas, dim=1).numpy()
    b = torch.stack(betas, dim=1).numpy() if betas else np.zeros((rows, 0))
    stacked = torch.stack(basis, dim=1).numpy()
    for r in range(rows):
        m = int(size[r])
        t = np.diag(a[r, :m]) + np.diag(b[r, :m - 1], 1) + np.diag(b[r, :m - 1], -1)
        vals, vecs = np.linalg.eigh(t)
        k = min(top, m)
        values_out.append(vals[-k:])
        if vectors:
            ritz = stacked[r, :m].T @ vecs[:, -k:]
            vectors_out.append(ritz / np.linalg.norm(ritz, axis=0, keepdims=True))
    if not vectors:
        return np.array([v[-1:] if len(v) else [np.nan] for v in values_out]), None
    return values_out, vectors_out
