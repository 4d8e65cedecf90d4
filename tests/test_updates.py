"""Batched optimizer updates against torch.optim, step by step, run by run."""

import numpy as np
import pytest
import torch

from gdviz.core.optimizers import normalize_hypers
from gdviz.core.records import RowState
from gdviz.core.updates import UpdateGroup, fresh_state_fits, rule_of

SETTINGS = [
    ("sgd", {"lr": 0.05}),
    ("sgd", {"lr": 0.05, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.02, "momentum": 0.9}),
    ("sgd", {"lr": 0.02, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.02, "momentum": 0.9, "nesterov": True}),
    ("adam", {"lr": 0.05}),
    ("adam", {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "amsgrad": True}),
    ("adamw", {"lr": 0.05}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.05}),
    ("rmsprop", {"lr": 0.01, "centered": True}),
    ("adagrad", {"lr": 0.1}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.1}),
]


def loss_of(w, b):
    # a smooth non-quadratic function of a vector and a matrix parameter
    return (w - 1).pow(2).sum() + torch.sin(b).sum() + (w.sum() * b.mean()) ** 2 / 10


def torch_optimizer(name, params, hypers):
    h = dict(hypers)
    if "beta1" in h:
        h["betas"] = (h.pop("beta1"), h.pop("beta2"))
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[name]
    return cls(params, **h)


def starts(rows):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(rows, 3, generator=gen), torch.randn(rows, 2, 2, generator=gen)


def step_group(optimizers, row_hypers, w0, b0, steps):
    """``steps`` updates of one group whose rows start at w0, b0; (parameters, group)."""
    group = UpdateGroup(optimizers, row_hypers, {"w": (3,), "b": (2, 2)}, torch.device("cpu"))
    params = {"w": w0.clone(), "b": b0.clone()}
    for _ in range(steps):
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        torch.stack([loss_of(leaves["w"][r], leaves["b"][r])
                     for r in range(len(w0))]).sum().backward()
        params = group.step({k: v.detach() for k, v in leaves.items()},
                            {k: v.grad for k, v in leaves.items()})
    return params, group


def step_torch(name, hypers, w0, b0, steps):
    """The same from one start with torch.optim itself: (w, b)."""
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    opt = torch_optimizer(name, [w, b], normalize_hypers(name, hypers))
    for _ in range(steps):
        opt.zero_grad()
        loss_of(w, b).backward()
        opt.step()
    return w.detach(), b.detach()


def assert_rows_alone_and_torch(rows, steps=30):
    """Each of ``rows`` ((optimizer, hypers)) in one group equals itself alone exactly and
    torch.optim to float32 rounding; returns the group of all of them."""
    w0, b0 = starts(len(rows))
    names, hypers = [o for o, _ in rows], [h for _, h in rows]
    together, group = step_group(names, hypers, w0, b0, steps)
    for r, (name, h) in enumerate(rows):
        alone, _ = step_group([name], [h], w0[r:r + 1], b0[r:r + 1], steps)
        assert torch.equal(alone["w"][0], together["w"][r])
        assert torch.equal(alone["b"][0], together["b"][r])
        w, b = step_torch(name, h, w0[r], b0[r], steps)
        torch.testing.assert_close(together["w"][r], w, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(together["b"][r], b, rtol=2e-5, atol=2e-6)
    return group


@pytest.mark.parametrize("name, hypers", SETTINGS)
def test_every_row_follows_torch_optim(name, hypers):
    rows, steps = 3, 40
    # each row its own learning rate: per-row hyperparameters are tensors
    row_hypers = [{**hypers, "lr": hypers["lr"] * f} for f in (1.0, 0.5, 2.0)]
    w0, b0 = starts(rows)
    params, _ = step_group(name, row_hypers, w0, b0, steps)
    for r in range(rows):
        w, b = step_torch(name, row_hypers[r], w0[r], b0[r], steps)
        torch.testing.assert_close(params["w"][r], w, rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(params["b"][r], b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name, hypers", SETTINGS)
def test_a_row_alone_equals_the_same_row_in_a_group(name, hypers):
    row_hypers = [{**hypers, "lr": hypers["lr"] * f} for f in (1.0, 0.5, 2.0)]
    w0, b0 = starts(3)
    together, _ = step_group(name, row_hypers, w0, b0, 25)
    for r in range(3):
        alone, _ = step_group(name, [row_hypers[r]], w0[r:r + 1], b0[r:r + 1], 25)
        assert torch.equal(alone["w"][0], together["w"][r])
        assert torch.equal(alone["b"][0], together["b"][r])


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_and_adamw_rows_race_in_one_group_each_as_torch_has_it(amsgrad):
    """Adam's weight decay goes into the gradient, AdamW's into the parameter: one group
    holds both (one update for the two), each row equal to torch and to itself alone."""
    assert_rows_alone_and_torch([
        ("adam", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": amsgrad}),
        ("adamw", {"lr": 0.03, "weight_decay": 0.2, "amsgrad": amsgrad}),
        ("adam", {"lr": 0.02, "amsgrad": amsgrad}),
        ("adamw", {"lr": 0.05, "amsgrad": amsgrad})])


def test_plain_sgd_rows_race_with_momentum_rows_in_one_group_exactly():
    """Plain SGD rows (a dampening torch ignores included) share the momentum rows' update:
    each row equal to torch and to itself alone, and a plain row keeps no buffer."""
    group = assert_rows_alone_and_torch([
        ("sgd", {"lr": 0.05, "dampening": 0.5}), ("sgd", {"lr": 0.02, "momentum": 0.9}),
        ("sgd", {"lr": 0.02, "momentum": 0.9, "nesterov": True}),
        ("sgd", {"lr": 0.03, "weight_decay": 0.1}),
        ("sgd", {"lr": 0.02, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01})])
    assert group.rule == "momentum"
    states = group.export()
    assert states[0].tensors == {} and states[3].tensors == {}
    assert set(states[1].tensors) == {"momentum_buffer"}


def test_state_round_trips_through_plain_data():
    group = UpdateGroup("adam", [{"lr": 0.1}, {"lr": 0.2}], {"w": (3,)}, torch.device("cpu"))
    p = {"w": torch.ones(2, 3)}
    for _ in range(3):
        p = group.step(p, {"w": p["w"] * 2})
    saved = group.export()
    assert saved[0].step == 3 and set(saved[0].tensors) == {"exp_avg", "exp_avg_sq"}
    again = UpdateGroup("adam", [{"lr": 0.1}, {"lr": 0.2}], {"w": (3,)}, torch.device("cpu"),
                        states=saved)
    a, b = group.step(p, {"w": p["w"] * 2}), again.step(p, {"w": p["w"] * 2})
    assert torch.equal(a["w"], b["w"])


def test_select_and_snapshot_do_not_disturb_the_group():
    group = UpdateGroup("sgd", [{"lr": 0.1, "momentum": 0.9}] * 3, {"w": (2,)}, torch.device("cpu"))
    p = {"w": torch.ones(3, 2)}
    p = group.step(p, {"w": torch.ones(3, 2)})
    snap = group.snapshot()
    sub = group.select([2])
    q = group.step(p, {"w": torch.ones(3, 2)})
    r = sub.step({"w": p["w"][2:]}, {"w": torch.ones(1, 2)})
    assert torch.equal(q["w"][2:], r["w"])
    group.restore(snap)
    assert torch.equal(group.step(p, {"w": torch.ones(3, 2)})["w"], q["w"])


def test_rule_changes_with_structural_settings():
    assert rule_of("sgd", normalize_hypers("sgd", {})) == "sgd"
    assert rule_of("sgd", normalize_hypers("sgd", {"momentum": 0.9})) == "momentum"
    assert rule_of("rmsprop", normalize_hypers("rmsprop", {"centered": True})) == "rmsprop-centered"
    assert rule_of("adamw", normalize_hypers("adamw", {})) == rule_of("adam", normalize_hypers("adam", {}))


def test_a_state_that_does_not_fit_says_why():
    shapes = {"w": (2,)}
    adam = RowState(3, {"exp_avg": {"w": np.zeros(2)}, "exp_avg_sq": {"w": np.zeros(2)}})
    assert fresh_state_fits("adam", {}, adam, shapes) is None
    assert "square_avg" in fresh_state_fits("rmsprop", {}, adam, shapes)
    bad = RowState(3, {"exp_avg": {"w": np.zeros(3)}, "exp_avg_sq": {"w": np.zeros(2)}})
    assert "shape" in fresh_state_fits("adam", {}, bad, shapes)
