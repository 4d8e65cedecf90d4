"""The update panel's numbers and the replayed optimizer state, against torch.optim."""

import numpy as np
import pytest
import torch

from gdviz.core.analysis.explain import explain_update
from gdviz.core.analysis.trace import OptimizerTrace
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.schedules import Schedule, rates
from gdviz.core.params import ParamSpec
from gdviz.core.session import RunRecord, Session
from gdviz.core.simulation import Simulation

from test_updates import torch_optimizer

CASES = [("sgd", {"lr": 0.01}), ("sgd", {"lr": 0.01, "weight_decay": 0.1}),
         ("sgd", {"lr": 0.002, "momentum": 0.9}),
         ("sgd", {"lr": 0.002, "momentum": 0.9, "nesterov": True}),
         ("sgd", {"lr": 0.002, "momentum": 0.8, "dampening": 0.2}),
         ("adam", {"lr": 0.05}), ("adam", {"lr": 0.05, "amsgrad": True}),
         ("adamw", {"lr": 0.05, "weight_decay": 0.1}),
         ("rmsprop", {"lr": 0.01}), ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
         ("adagrad", {"lr": 0.1}), ("adagrad", {"lr": 0.1, "lr_decay": 0.05})]
KEYS = {"momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg",
        "grad_avg", "sum"}


def rosen(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def torch_state(opt, p):
    st = opt.state[p]
    return {k: st[k].detach().double().numpy().copy() for k in st if k in KEYS}


@pytest.mark.parametrize("name, hypers", CASES)
@pytest.mark.parametrize("clip", [None, 5.0])
def test_the_explained_update_equals_torchs_step(name, hypers, clip):
    p = torch.tensor([-1.2, 1.0], requires_grad=True)
    opt = torch_optimizer(name, [p], normalize_hypers(name, hypers))
    for k in range(6):
        opt.zero_grad()
        rosen(p).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([p], clip)
        before = torch_state(opt, p)
        raw = p.grad.detach().double().numpy().copy()
        if clip:  # explain_update clips itself: give it the gradient before clipping
            p.grad = None
            rosen(p).backward()
            raw = p.grad.detach().double().numpy().copy()
            torch.nn.utils.clip_grad_norm_([p], clip)
        params = p.detach().double().numpy().copy()
        ex = explain_update(name, hypers, before or None, k, raw, params, hypers["lr"], clip)
        opt.step()
        after = torch_state(opt, p)
        assert set(ex.state) == set(after)
        for key, value in after.items():
            np.testing.assert_allclose(ex.state[key], value, rtol=2e-6, atol=1e-9)
        np.testing.assert_allclose(ex.params, p.detach().double().numpy(), rtol=2e-6, atol=1e-8)
        assert ex.step == k + 1 and ex.lines[-1].symbol == "θ"


def test_adam_lines_name_each_quantity():
    ex = explain_update("adam", {"lr": 0.1}, None, 0, np.array([2.0, -0.5]),
                        np.array([0.0, 0.0]), 0.1)
    symbols = [line.symbol for line in ex.lines]
    assert symbols == ["g", "m", "v", "m̂", "v̂", "η", "Δθ", "θ"]
    m_hat = ex.lines[3].values
    np.testing.assert_allclose(m_hat, [2.0, -0.5])          # first step: m̂ = g
    np.testing.assert_allclose(ex.update, -0.1 * np.sign([2.0, -0.5]), rtol=1e-6)


def simulate(optimizer, hypers, steps=80, schedule=Schedule(), clip=None):
    run = RunRecord(optimizer, dict(hypers), schedule=schedule, clip_norm=clip)
    return Simulation(Session(function="(1 - a)**2 + 100*(b - a**2)**2", loss="y",
                              params={"a": ParamSpec("-1.2"), "b": ParamSpec("1.0")},
                              steps=steps, runs=[run]))


@pytest.mark.parametrize("name, hypers", [("sgd", {"lr": 0.002, "momentum": 0.9}),
                                          ("adam", {"lr": 0.05}), ("rmsprop", {"lr": 0.01})])
def test_the_replayed_state_at_any_step_is_torchs(name, hypers):
    sim = simulate(name, hypers)
    sim.run()
    run = sim.runset.runs[0]
    trace = OptimizerTrace(run.settings, run.history, sim.runset.steps)
    p = torch.tensor([-1.2, 1.0], requires_grad=True)
    opt = torch_optimizer(name, [p], normalize_hypers(name, hypers))
    states = [{}]
    for _ in range(80):
        opt.zero_grad()
        rosen(p).backward()
        opt.step()
        states.append(torch_state(opt, p))
    for k in (0, 1, 2, 17, 40, 79):
        before = trace.state_before(k)
        assert before is not None and before.updates == k and before.step == k
        for key, value in states[k].items():
            np.testing.assert_allclose(before.tensors[key], value, rtol=1e-5, atol=1e-8)
        ex = trace.explain(k)
        # the update written out lands on the next recorded point
        if k + 1 < len(run.history):
            np.testing.assert_allclose(ex.params, run.history.params[k + 1], rtol=1e-6, atol=1e-7)
    # scrubbing back and forth gives the same numbers (checkpoints do not drift)
    again = trace.state_before(40)
    for key in again.tensors:
        np.testing.assert_array_equal(again.tensors[key], trace.state_before(40).tensors[key])
    assert trace.row_state(40).tensors.keys() == states[40].keys()


def test_a_scheduled_run_shows_each_steps_rate():
    sim = simulate("adam", {"lr": 0.05}, steps=60, schedule=Schedule("cosine"), clip=1.0)
    sim.run()
    run = sim.runset.runs[0]
    trace = OptimizerTrace(run.settings, run.history, sim.runset.steps)
    for k in (0, 10, 59):
        assert trace.state_before(k).lr == pytest.approx(rates(Schedule("cosine"), 0.05, k, 60))
    ex = trace.explain(30)
    np.testing.assert_allclose(ex.params, run.history.params[31], rtol=1e-6, atol=1e-7)


def test_a_change_of_settings_mid_run_stops_the_trace_there():
    sim = simulate("sgd", {"lr": 0.002, "momentum": 0.9}, steps=100)
    sim.run(50)
    run = sim.runset.runs[0]
    sim.engine.set_hyper(run.id, "lr", 0.001)
    sim.runset.update_settings(run.id, hypers={**run.settings.hypers, "lr": 0.001})
    sim.run()
    trace = OptimizerTrace(run.settings, run.history, sim.runset.steps)
    # replayed with the new lr from the start, the very first update already disagrees
    assert trace.state_before(0) is not None   # nothing replayed yet: the fresh state
    assert trace.state_before(10) is None
    assert "settings changed" in trace.why_not


def test_a_thinned_history_says_why_it_cannot_replay():
    sim = simulate("sgd", {"lr": 0.002, "momentum": 0.9}, steps=3000)
    run = sim.runset.runs[0]
    run.history.set_limit(2_000)   # a few hundred rows: the history keeps every 2nd step or more
    sim.run()
    assert run.history.stride > 1
    trace = OptimizerTrace(run.settings, run.history, sim.runset.steps)
    assert trace.state_before(4) is None and "keeps every" in trace.why_not
