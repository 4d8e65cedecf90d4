"""Learning-rate schedules and gradient clipping against torch's own, step by step."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gdviz.core.errors import GdvizError
from gdviz.core.model import RunSet, RunSettings
from gdviz.core.engine import Engine
from gdviz.core.optimizers import normalize_hypers
from gdviz.core.problem import ParamSpec, Problem
from gdviz.core.schedules import NAMES, Schedule, rates
from gdviz.core.updates import UpdateGroup

from test_updates import loss_of, starts, torch_optimizer

L = torch.optim.lr_scheduler


def torch_scheduler(schedule: Schedule, opt, total: int):
    s = schedule
    if s.name == "constant":
        return L.ConstantLR(opt, factor=1.0, total_iters=0)
    if s.name == "step":
        return L.StepLR(opt, s.step_size, s.gamma)
    if s.name == "exponential":
        return L.ExponentialLR(opt, s.gamma)
    if s.name == "cosine":
        return L.CosineAnnealingLR(opt, total, s.min_lr)
    if s.name == "warmup-cosine":
        return L.SequentialLR(opt, [L.LinearLR(opt, 0.01, 1.0, s.warmup),
                                    L.CosineAnnealingLR(opt, total - s.warmup, s.min_lr)],
                              [s.warmup])
    base = opt.param_groups[0]["lr"]
    return L.OneCycleLR(opt, max_lr=s.max_lr or base * 10, total_steps=total,
                        cycle_momentum=False)


def torch_rates(schedule: Schedule, base: float, total: int) -> np.ndarray:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter
        sched = torch_scheduler(schedule, opt, total)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return np.array(out)


EXAMPLES = [Schedule(), Schedule("step", step_size=7, gamma=0.3),
            Schedule("exponential", gamma=0.97), Schedule("cosine", min_lr=0.001),
            Schedule("warmup-cosine", warmup=10, min_lr=1e-4), Schedule("one-cycle"),
            Schedule("one-cycle", max_lr=0.5)]


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: s.name)
def test_every_schedule_gives_torchs_rates(schedule):
    ours = rates(schedule, 0.1, np.arange(100), 100)
    np.testing.assert_allclose(ours, torch_rates(schedule, 0.1, 100), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), base=st.floats(1e-4, 1.0), total=st.integers(5, 80),
       step_size=st.integers(1, 30), gamma=st.floats(0.05, 1.0), warmup=st.integers(1, 4),
       min_lr=st.floats(0, 1e-4))
def test_schedules_match_torch_for_any_settings(name, base, total, step_size, gamma, warmup,
                                                min_lr):
    schedule = Schedule(name, warmup=warmup, step_size=step_size, gamma=gamma, min_lr=min_lr)
    np.testing.assert_allclose(rates(schedule, base, np.arange(total), total),
                               torch_rates(schedule, base, total), rtol=1e-9, atol=1e-15)


def test_bad_schedule_settings_say_what_is_wrong():
    with pytest.raises(GdvizError, match="unknown schedule 'cosin'"):
        Schedule("cosin")
    with pytest.raises(GdvizError, match="gamma"):
        Schedule("step", gamma=-1)
    with pytest.raises(GdvizError, match="step size"):
        Schedule("step", step_size=0)
    with pytest.raises(GdvizError, match="no setting 'warmpu'"):
        Schedule.from_dict({"name": "warmup-cosine", "warmpu": 5})
    assert Schedule.from_dict({"name": "cosine", "min_lr": 0.01}) == Schedule("cosine", min_lr=0.01)
    assert Schedule.from_dict(Schedule("step", gamma=0.1).to_dict()) == Schedule("step", gamma=0.1)


# --- the updates, with a schedule and a clip, against torch.optim ---------------------------

CASES = [("sgd", {"lr": 0.02, "momentum": 0.9}), ("adam", {"lr": 0.05}),
         ("rmsprop", {"lr": 0.01}), ("adagrad", {"lr": 0.1}),
         ("adamw", {"lr": 0.05, "weight_decay": 0.1})]


@pytest.mark.parametrize("name, hypers", CASES)
@pytest.mark.parametrize("schedule", [Schedule("cosine"), Schedule("warmup-cosine", warmup=5),
                                      Schedule("one-cycle")], ids=lambda s: s.name)
@pytest.mark.parametrize("clip", [None, 0.5])
def test_scheduled_clipped_rows_follow_torch(name, hypers, schedule, clip):
    rows, steps = 2, 30
    w0, b0 = starts(rows)
    row_hypers = [hypers, {**hypers, "lr": hypers["lr"] / 2}]
    group = UpdateGroup(name, row_hypers, {"w": (3,), "b": (2, 2)}, torch.device("cpu"),
                        schedules=[schedule] * rows, clip_norms=[clip] * rows, total=steps)
    params = {"w": w0.clone(), "b": b0.clone()}
    for _ in range(steps):
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        torch.stack([loss_of(leaves["w"][r], leaves["b"][r]) for r in range(rows)]).sum().backward()
        params = group.step({k: v.detach() for k, v in leaves.items()},
                            {k: v.grad for k, v in leaves.items()})
    for r in range(rows):
        w, b = w0[r].clone().requires_grad_(), b0[r].clone().requires_grad_()
        opt = torch_optimizer(name, [w, b], normalize_hypers(name, row_hypers[r]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = torch_scheduler(schedule, opt, steps)
            for _ in range(steps):
                opt.zero_grad()
                loss_of(w, b).backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_([w, b], clip)
                opt.step()
                sched.step()
        torch.testing.assert_close(params["w"][r], w.detach(), rtol=2e-5, atol=2e-6)
        torch.testing.assert_close(params["b"][r], b.detach(), rtol=2e-5, atol=2e-6)


def test_clipping_only_touches_rows_over_the_norm():
    group = UpdateGroup("sgd", [{"lr": 1.0}] * 3, {"g": (2,)}, torch.device("cpu"),
                        clip_norms=[1.0, None, 10.0])
    grads = {"g": torch.tensor([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0]])}
    out = group.clipped(grads)["g"]
    torch.testing.assert_close(out[0], torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
    assert torch.equal(out[1], grads["g"][1]) and torch.equal(out[2], grads["g"][2])


# --- in the engine: a race of schedules, stops, and runs that go on --------------------------

def rosenbrock():
    return Problem("(1 - a)**2 + 100*(b - a**2)**2", "y",
                   {"a": ParamSpec("-1.5"), "b": ParamSpec("2.0")})


def engine_for(problem, settings, steps, tol=None):
    runset = RunSet(problem.layout, problem.initial_flat(), steps, tol)
    for s in settings:
        runset.add(s)
    engine = Engine(problem, "cpu", steps, tol)
    for run in runset.engine_runs():
        engine.add_run(run)
    return runset, engine


def train(runset, engine, steps=None):
    for batch in engine.run(steps):
        runset.apply(batch)
    runset.apply_export(engine.export())


def torch_loop(problem, name, hypers, schedule, clip, steps):
    x = torch.tensor(-1.5, requires_grad=True)
    y = torch.tensor(2.0, requires_grad=True)
    opt = torch_optimizer(name, [x, y], normalize_hypers(name, hypers))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = torch_scheduler(schedule, opt, steps)
        for _ in range(steps):
            opt.zero_grad()
            ((1 - x) ** 2 + 100 * (y - x ** 2) ** 2).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_([x, y], clip)
            opt.step()
            sched.step()
    return np.array([x.item(), y.item()])


def test_a_race_of_schedules_equals_each_run_alone_and_torch():
    settings = [RunSettings("adam", {"lr": 0.05}, schedule=Schedule("cosine")),
                RunSettings("adam", {"lr": 0.05}, schedule=Schedule("one-cycle"), clip_norm=1.0),
                RunSettings("sgd", {"lr": 5e-4, "momentum": 0.9},
                            schedule=Schedule("step", step_size=50, gamma=0.5))]
    problem = rosenbrock()
    race, engine = engine_for(problem, settings, 200)
    train(race, engine)
    for run, s in zip(race.runs, settings):
        alone, e = engine_for(problem, [s], 200)
        train(alone, e)
        np.testing.assert_array_equal(run.values, alone.runs[0].values)
        np.testing.assert_allclose(run.values, torch_loop(problem, s.optimizer, s.hypers,
                                                          s.schedule, s.clip_norm, 200),
                                   rtol=1e-4, atol=1e-5)


def test_pausing_and_going_on_keeps_the_schedule_on_the_run_step():
    s = RunSettings("sgd", {"lr": 5e-4, "momentum": 0.9}, schedule=Schedule("cosine"))
    problem = rosenbrock()
    whole, e1 = engine_for(problem, [s], 120)
    train(whole, e1)
    parts, e2 = engine_for(problem, [s], 120)
    for n in (7, 50, 63):
        train(parts, e2, n)
    np.testing.assert_array_equal(parts.runs[0].values, whole.runs[0].values)


def test_a_run_stopped_mid_batch_keeps_its_scheduled_state():
    # converges mid-batch: the engine replays updates with the recorded gradients, and the
    # replayed state must use the same rates as the steps it replays
    s = RunSettings("adam", {"lr": 0.05}, schedule=Schedule("warmup-cosine", warmup=20),
                    clip_norm=2.0)
    problem = rosenbrock()
    runset, engine = engine_for(problem, [s], 2000, tol=0.5)
    train(runset, engine)
    run = runset.runs[0]
    assert run.status.value == "converged"
    # go on without the tolerance: the run picks up exactly where a run without a stop is
    free, e2 = engine_for(problem, [s], 2000)
    train(free, e2, run.step)
    np.testing.assert_array_equal(run.values, free.runs[0].values)
    assert run.optimizer_state.step == free.runs[0].optimizer_state.step
    for key, per in run.optimizer_state.tensors.items():
        for n, a in per.items():
            np.testing.assert_allclose(a, free.runs[0].optimizer_state.tensors[key][n], rtol=1e-6)


# --- sessions and the command line ------------------------------------------------------------

def test_sessions_keep_the_schedule_and_clip(tmp_path):
    from gdviz.core.session import Session
    from gdviz.core.simulation import Simulation

    session = Session.from_dict({
        "format": "gdviz-session", "version": 2, "function": "(1 - a)**2 + 100*(b - a**2)**2",
        "params": {"a": "-1.5", "b": "2.0"}, "steps": 100,
        "runs": [{"optimizer": {"name": "adam", "lr": 0.05},
                  "schedule": {"name": "warmup-cosine", "warmup": 10}, "clip_norm": 1.0},
                 {"optimizer": "sgd"}]})
    sim = Simulation(session)
    sim.run(40)
    path = tmp_path / "s.gdviz.json"
    sim.snapshot().save(path)
    back = Session.load(path)
    assert back.runs[0].schedule == Schedule("warmup-cosine", warmup=10)
    assert back.runs[0].clip_norm == 1.0 and back.runs[1].schedule.is_constant
    # going on from the file gives what one run of 100 steps gives
    again = Simulation(back)
    again.run()
    whole = Simulation(session)
    whole.run()
    np.testing.assert_array_equal(again.runset.runs[0].values, whole.runset.runs[0].values)


@pytest.mark.parametrize("field, value, message", [
    ("schedule", {"name": "cosin"}, "unknown schedule"),
    ("schedule", {"name": "step", "gamma": "half"}, "gamma"),
    ("schedule", {"name": "step", "sizes": 3}, "no setting 'sizes'"),
    ("schedule", [1, 2], "is written as"),
    ("clip_norm", -1, "above 0"),
    ("clip_norm", True, "above 0"),
])
def test_a_bad_schedule_in_a_file_names_the_field(field, value, message):
    from gdviz.core.errors import SessionError
    from gdviz.core.session import Session

    with pytest.raises(SessionError, match=message) as info:
        Session.from_dict({"format": "gdviz-session", "version": 2, "function": "X + 1",
                           "runs": [{"optimizer": "sgd", field: value}]})
    assert info.value.field == f"runs[0].{field}"


def cli_json(capsys, *argv):
    import json

    from gdviz.cli import main

    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_run_json_reports_the_rate_the_schedule_and_torchs_optimizer_state(capsys):
    code, out = cli_json(capsys, "run", "-f", "(1 - a)**2 + 100*(b - a**2)**2", "-p", "a=-1.5",
                         "-p", "b=2.0", "-o", "adam", "--lr", "0.05", "--schedule", "cosine",
                         "--min-lr", "0.001", "--clip-norm", "2", "--steps", "60", "--json")
    assert code == 0
    assert out["schedule"] == {"name": "cosine", "min_lr": 0.001} and out["clip_norm"] == 2.0
    assert out["lr"] == pytest.approx(rates(Schedule("cosine", min_lr=0.001), 0.05, 59, 60))
    a = torch.tensor(-1.5, requires_grad=True)
    b = torch.tensor(2.0, requires_grad=True)
    opt = torch.optim.Adam([a, b], lr=0.05)
    sched = L.CosineAnnealingLR(opt, 60, 0.001)
    for _ in range(60):
        opt.zero_grad()
        ((1 - a) ** 2 + 100 * (b - a ** 2) ** 2).backward()
        torch.nn.utils.clip_grad_norm_([a, b], 2.0)
        opt.step()
        sched.step()
    state = out["optimizer_state"]
    assert state["step"] == 60
    for name, p in (("a", a), ("b", b)):
        assert state["exp_avg"][name] == pytest.approx(opt.state[p]["exp_avg"].item(), rel=1e-4)
        assert state["exp_avg_sq"][name] == pytest.approx(opt.state[p]["exp_avg_sq"].item(), rel=1e-4)
        assert out["params"][name] == pytest.approx(p.item(), rel=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--gamma", "0.5"], "--gamma does not apply to the constant schedule"),
    (["--schedule", "cosine", "--warmup", "5"], "--warmup does not apply to the cosine"),
    (["--schedule", "step", "--step-size", "0"], "step size must be"),
    (["--clip-norm", "nan"], "--clip-norm"),
])
def test_bad_schedule_flags_are_one_line_errors(capsys, argv, message):
    from gdviz.cli import main

    assert main(["run", "-f", "X + 1", "--steps", "5", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_race_specs_take_a_schedule_each(capsys):
    code, out = cli_json(capsys, "race", "-f", "(1 - a)**2 + 100*(b - a**2)**2", "-p", "a=-1.5",
                         "-p", "b=2.0", "--steps", "50", "--json",
                         "--run", "adam lr=0.05 schedule=step step_size=10 gamma=0.5",
                         "--run", "adam lr=0.05 clip_norm=0.5")
    assert code == 0
    labels = [r["label"] for r in out["runs"]]
    assert "Adam lr 0.05, x0.5 every 10 steps" in labels and "Adam lr 0.05, clip 0.5" in labels
