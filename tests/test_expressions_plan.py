"""Expression.plan: R runs in one call equal R separate evaluations, values and gradients."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from gdviz.core.errors import ExpressionError
from gdviz.core.expressions import FUNCTIONS, compile_expression

# Parameters of several ranks that all broadcast together, and a data column shared by runs.
SHAPES = {"a": (), "w": (3,), "c": (2, 1), "M": (2, 3), "X": (3,)}
BATCHED = {"a", "w", "c", "M"}
R = 4


def make_env(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(((R,) if n in BATCHED else ()) + s, generator=g, dtype=dtype)
            for n, s in SHAPES.items()}


def assert_plan_matches(text, env=None, batched=BATCHED, shapes=SHAPES):
    """plan == stack of per-run evaluate, for values and for gradients of every parameter."""
    expr = compile_expression(text, "loss", variables=list(shapes))
    env = env or make_env()
    fn = expr.plan({n: shapes[n] for n in expr.names}, batched)
    runs = next(v for n, v in env.items() if n in batched).shape[0]

    leaves = {n: v.clone().requires_grad_(n in batched) for n, v in env.items()}
    out = fn(leaves)
    singles = []
    grads = {n: [] for n in batched}
    for r in range(runs):
        row = {n: (v[r] if n in batched else v).clone().requires_grad_(n in batched)
               for n, v in env.items()}
        single = expr.evaluate(row)
        singles.append(single.detach())
        if single.requires_grad:
            single.sum().backward()
        for n in batched:
            grads[n].append(row[n].grad if row[n].grad is not None else torch.zeros_like(row[n]))
    expected = torch.stack(singles)
    assert out.shape == expected.shape, text
    torch.testing.assert_close(out.detach(), expected.to(out.dtype), equal_nan=True,
                               msg=lambda m: f"{text}: {m}")

    if out.requires_grad:
        per_run = out.sum(dim=tuple(range(1, out.dim()))) if out.dim() > 1 else out
        per_run.backward(torch.ones(runs, dtype=out.dtype))
    for n in batched:
        got = leaves[n].grad if leaves[n].grad is not None else torch.zeros_like(leaves[n])
        torch.testing.assert_close(got, torch.stack(grads[n]), equal_nan=True,
                                   msg=lambda m: f"d/d{n} of {text}: {m}")
    return out


@pytest.mark.parametrize("text", [
    "a + 1",
    "w * c",                      # (R,3) and (R,2,1) -> (R,2,3), not a misaligned R
    "c + w + a",
    "M * w - c",
    "a * X",                      # a batched scalar and a data column
    "w * X + M",
    "sum(M) + mean(w) * a",
    "sum(w * c)",
    "min(M) - max(c) + min(a) + max(a) + sum(a) + mean(a)",
    "min(w, c) + max(a, X)",
    "clamp(M, a, 1)",
    "clamp(w, c, a)",
    "clamp(w, -0.5, 0.5)",
    "w[0] * M[1, 2] + c[1, 0] - w[-1]",
    "M[1] * c",
    "mse(w, 2) + mae(M, c) + huber(w, X)",
    "mse(a, 0.5) + huber(c, 1, a)",
    "huber(M, w, 0.3)",
    "mse(X, 1) + a",              # a data-only reduction inside a batched sum
    "w ** 2 / (1 + a ** 2) % 0.7",
    "1 % w + a % c",
    "-w + +c",
    "2 ** a + w ** 3",
    "sin(pi) * 3 + exp(1) * w",   # constants-only subexpressions
    "(3 - w) * (3 - w)",
    *(f"{name}(w * c + 2)" for name, spec in FUNCTIONS.items() if spec.max_args >= 1
      and spec.min_args == 1),
])
def test_plan_equals_per_run_evaluation(text):
    assert_plan_matches(text)


@pytest.mark.parametrize("text, shape", [
    ("sum(X) + 1", (R,)),           # depends on data only: expanded to (R, ...)
    ("X * 2", (R, 3)),
    ("3", (R,)),
    ("sin(1) + pi", (R,)),
])
def test_results_that_depend_on_no_run_are_expanded(text, shape):
    out = assert_plan_matches(text)
    assert out.shape == shape


def test_result_shape_keeps_event_dims():
    assert assert_plan_matches("w * c").shape == (R, 2, 3)
    assert assert_plan_matches("sum(M)").shape == (R,)
    assert assert_plan_matches("M[0]").shape == (R, 3)


def test_single_run_matches_evaluate_for_the_seed_problem():
    f = compile_expression("X + 1")
    loss = compile_expression("(3 - y)**2 / 2", "loss", variables=["X", "y"])
    fp = f.plan({"X": (1,)}, {"X"})
    lp = loss.plan({"X": (1,), "y": (1,)}, {"X", "y"})
    X = torch.tensor([[0.4963]])
    out = lp({"X": X, "y": fp({"X": X})})
    assert out.shape == (1, 1)
    assert out.item() == pytest.approx(float(loss.evaluate({"y": f.evaluate({"X": X[0]})})))


class _Kernels(TorchDispatchMode):
    """Records the aten operations that run, leaving out views (they launch no kernel)."""

    VIEWS = {"view", "unsqueeze", "select", "slice", "as_strided", "expand", "alias",
             "_unsafe_view", "flatten", "squeeze"}

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in self.VIEWS:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("text, shapes", [
    ("(3 - y)**2 / 2 + sum(w)", {"y": (1,), "w": (1,)}),       # the seed loss, plus a sum
    ("sum(w * c) + a * mse(w, 1) + clamp(a, w[0], 3)", {"w": (3,), "c": (2, 1), "a": ()}),
])
def test_one_run_costs_the_kernels_of_one_evaluation(text, shapes):
    expr = compile_expression(text, "loss", variables=list(shapes))
    plan = expr.plan(shapes, set(shapes))
    env1 = {n: torch.rand((1,) + s) for n, s in shapes.items()}
    env = {n: v[0] for n, v in env1.items()}
    with _Kernels() as single:
        expr.evaluate(env)
    with _Kernels() as batched:
        plan(env1)
    assert batched.ops == single.ops
    assert not any("copy" in op or "clone" in op for op in batched.ops)


def test_data_columns_are_not_batched_or_copied():
    expr = compile_expression("mse(w * X, Y)", "loss", variables=["w", "X", "Y"])
    plan = expr.plan({"w": (), "X": (5,), "Y": (5,)}, {"w"})
    X, Y = torch.arange(5.0), 2 * torch.arange(5.0)
    out = plan({"w": torch.tensor([0.0, 1.0, 2.0]), "X": X, "Y": Y})
    torch.testing.assert_close(out, torch.stack([((w * X - Y) ** 2).mean()
                                                 for w in (0.0, 1.0, 2.0)]))


def test_plan_refuses_shapes_that_do_not_broadcast():
    expr = compile_expression("w + v")
    with pytest.raises(ExpressionError) as info:
        expr.plan({"w": (3,), "v": (2,)}, {"w", "v"})
    assert info.value.column == 1


def test_evaluate_batch_uses_plans():
    expr = compile_expression("a * b + sum(w)")
    out = expr.evaluate_batch({"a": torch.arange(4.0), "w": torch.ones(4, 2)},
                              {"b": torch.tensor(2.0)})
    assert out.tolist() == [2, 4, 6, 8]


def test_many_runs():
    expr = compile_expression("(1 - w[0])**2 + 100*(w[1] - w[0]**2)**2")
    plan = expr.plan({"w": (2,)}, {"w"})
    w = torch.randn(40_000, 2)
    out = plan({"w": w})
    torch.testing.assert_close(out, (1 - w[:, 0])**2 + 100*(w[:, 1] - w[:, 0]**2)**2)


# --- property: generated expressions ----------------------------------------------------

_LEAVES = ["a", "w", "c", "M", "X", "w[0]", "w[-1]", "M[1]", "M[0, 2]", "c[1, 0]", "c[0]",
           "2", "0.5", "pi"]
# stack changes shapes (its batched plan is tested with matrices in test_data.py); here every
# generated expression broadcasts, so that an error is a bug and not a shape mismatch
_UNARY = [name for name, spec in FUNCTIONS.items() if spec.min_args == 1 and name != "stack"]


def _grow(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "%"]), children)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(_UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
        children.map(lambda s: f"-{s}"),
        st.tuples(st.sampled_from(["min", "max", "mse", "mae", "huber"]), children, children)
        .map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(["clamp", "huber"]), children, children, children)
        .map(lambda t: f"{t[0]}({t[1]}, {t[2]}, {t[3]})"),
    )


expressions = st.recursive(st.sampled_from(_LEAVES), _grow, max_leaves=10)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.integers(0, 2**16))
def test_plan_property(text, seed):
    try:
        compile_expression(text, "loss", variables=list(SHAPES))
    except ExpressionError:  # e.g. (2 - 2)**-1 folded: refused, nothing to compare
        return
    assert_plan_matches(text, make_env(seed))
