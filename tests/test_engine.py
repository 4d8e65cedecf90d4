"""The engine: the training loop, its history and its stop conditions, with no Qt anywhere."""

import numpy as np
import pytest
import torch

from gdviz.core.engine import Engine
from gdviz.core.errors import DeviceError, GdvizError
from gdviz.core.history import ColumnLayout, History
from gdviz.core.model import RunSet, RunSettings
from gdviz.core.optimizers import OPTIMIZERS
from gdviz.core.problem import ParamSpec, Problem
from gdviz.core.status import Status


def seed_linear():
    return Problem("X + 1", "(3 - y)**2 / 2", {"X": ParamSpec("rand(1)")}, seed=0)


def make(problem, *settings, steps=1000, tol=None, max_batch_s=0.016):
    """A model and an engine for these runs (each a RunSettings)."""
    runset = RunSet(problem.layout, problem.initial_flat(), steps, tol)
    for s in settings:
        runset.add(s)
    engine = Engine(problem, "cpu", steps, tol, max_batch_s)
    for run in runset.engine_runs():
        engine.add_run(run)
    return runset, engine


def train(runset, engine, steps=None, max_batch_s=None):
    batches = []
    for batch in engine.run(steps, max_batch_s):
        runset.apply(batch)
        batches.append(batch)
    runset.apply_export(engine.export())
    return batches


def test_seed_gradient_in_pytorch_reaches_1_9999():
    runset, engine = make(seed_linear(), RunSettings("sgd", {"lr": 1e-3}), steps=10_000)
    train(runset, engine)
    run = runset.runs[0]
    assert 1.9999 <= run.values[0] < 2.0 and f"{run.values[0]:.4f}" == "1.9999"
    assert run.status == Status.FINISHED and run.step == 10_000
    assert len(run.history) == 10_000
    # Row k is the point before update k; the seed's first gradient is -(3 - (X0 + 1)).
    assert run.history.params[0, 0] == pytest.approx(0.4963, abs=1e-4)
    assert run.history.grads[0, 0] == pytest.approx(-(3 - (run.history.params[0, 0] + 1)), rel=1e-6)
    assert np.array_equal(run.history.steps, np.arange(10_000))


def test_engine_matches_the_notebook_loop():
    X = torch.rand(1, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for _ in range(500):
        loss = ((3.0 - (X + 1.0)) * (3.0 - (X + 1.0))).sum() / 2
        loss.backward()
        with torch.no_grad():
            X -= 1e-3 * X.grad
            X.grad.zero_()
    runset, engine = make(seed_linear(), RunSettings("sgd", {"lr": 1e-3}), steps=500)
    train(runset, engine)
    # Same ops up to float32 rounding: the notebook sums before halving, gdviz halves first.
    assert runset.runs[0].values[0] == pytest.approx(X.item(), abs=1e-6)


def test_run_is_a_plain_generator_of_batches():
    runset, engine = make(seed_linear(), RunSettings(), steps=100)
    batches = list(engine.run(5))
    assert sum(len(b) for b in batches) == 5
    progress = batches[-1].runs[runset.runs[0].id]
    assert progress.step == 5 and progress.status == Status.RUNNING
    steps = np.concatenate([b.runs[0].rows.steps for b in batches])
    assert np.array_equal(steps, np.arange(5))
    assert engine.export()[0].status == Status.PAUSED


def test_batches_are_time_sliced():
    runset, engine = make(seed_linear(), RunSettings(), steps=100_000)
    batches = list(engine.run(3, max_batch_s=0.0))
    assert [len(b) for b in batches] == [1, 1, 1]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_lowers_the_loss_on_the_bowl(name):
    problem = Problem("a**2 + 10*b**2", "y", {"a": ParamSpec("-4"), "b": ParamSpec("2")})
    lr = 0.02 if name == "sgd" else 0.1  # adaptive methods take steps of about lr each
    runset, engine = make(problem, RunSettings(name, {"lr": lr}), steps=200)
    start = engine.loss_at(runset.runs[0].values)
    train(runset, engine)
    assert engine.loss_at(runset.runs[0].values) < 0.5 * start


RACE = [("sgd", {"lr": 0.01}), ("sgd", {"lr": 0.01, "momentum": 0.9}),
        ("sgd", {"lr": 0.01, "momentum": 0.9, "nesterov": True}), ("rmsprop", {"lr": 0.01}),
        ("adam", {"lr": 0.05}), ("adamw", {"lr": 0.05}), ("adagrad", {"lr": 0.3}),
        ("adam", {"lr": 0.02, "amsgrad": True}), ("sgd", {"lr": 0.005, "weight_decay": 0.1})]


def rosenbrock():
    return Problem("(1 - a)**2 + 100*(b - a**2)**2", "y", {"a": ParamSpec("-1.5"),
                                                            "b": ParamSpec("2")})


def test_a_race_equals_each_run_alone():
    together, engine = make(rosenbrock(), *[RunSettings(o, h) for o, h in RACE], steps=300)
    train(together, engine)
    for k, (optimizer, hypers) in enumerate(RACE):
        alone, engine = make(rosenbrock(), RunSettings(optimizer, hypers), steps=300)
        train(alone, engine)
        a, b = alone.runs[0], together.runs[k]
        assert np.array_equal(a.values, b.values), optimizer
        assert np.array_equal(a.history.params, b.history.params)
        assert a.status == b.status and a.step == b.step


def test_one_diverging_run_leaves_the_others_as_they_would_be_alone():
    problem = Problem("x**2 + y2**2", "y", {"x": ParamSpec("1"), "y2": ParamSpec("-2")})
    settings = [RunSettings("sgd", {"lr": 1.5}), RunSettings("adam", {"lr": 0.1}),
                RunSettings("sgd", {"lr": 0.1, "momentum": 0.5})]
    together, engine = make(problem, *settings, steps=400)
    train(together, engine)
    diverged = together.runs[0]
    assert diverged.status == Status.DIVERGED and np.isfinite(diverged.values).all()
    for k in (1, 2):
        alone, engine = make(problem, settings[k], steps=400)
        train(alone, engine)
        assert np.array_equal(alone.runs[0].values, together.runs[k].values)
        assert together.runs[k].status == Status.FINISHED and together.runs[k].step == 400


@pytest.mark.parametrize("budget", [0.0, 1.0])
def test_divergence_keeps_the_last_finite_state_whatever_the_batching(budget):
    # x -> -2x each step: the loss 4^k overflows float32 at step 64
    problem = Problem("x**2", "y", {"x": ParamSpec("1")})
    runset, engine = make(problem, RunSettings("sgd", {"lr": 1.5}), steps=10_000)
    train(runset, engine, max_batch_s=budget)
    run = runset.runs[0]
    assert run.status == Status.DIVERGED and "diverged at step 64" in run.message
    assert "(step 63) is kept" in run.message
    assert run.step == 63 and run.values[0] == -(2.0 ** 63)
    assert np.isfinite(run.loss) and run.history.steps[-1] == 63 and np.isfinite(run.history.loss).all()


def test_slow_motion_divergence_of_the_seed_keeps_a_finite_state():
    # The case: the seed example at lr 100 stepped a few at a time.
    runset, engine = make(seed_linear(), RunSettings("sgd", {"lr": 100}), steps=1000)
    while runset.runs[0].status != Status.DIVERGED:
        for batch in engine.run(2):
            runset.apply(batch)
    run = runset.runs[0]
    assert np.isfinite(run.loss) and np.isfinite(run.values).all()
    bad = int(run.message.split("diverged at step ")[1].split(":")[0])
    assert run.step == bad - 1 and f"(step {run.step}) is kept" in run.message


def test_a_start_outside_the_domain_says_so():
    problem = Problem("log(x)", "y", {"x": ParamSpec("-1")})
    runset, engine = make(problem, RunSettings(), steps=10)
    train(runset, engine)
    run = runset.runs[0]
    assert run.status == Status.DIVERGED and run.step == 0
    assert "outside the function's domain" in run.message and "learning rate" not in run.message


def test_tolerance_stops_at_the_exact_step():
    problem = Problem("x**2", "y", {"x": ParamSpec("1")})
    runset, engine = make(problem, RunSettings("sgd", {"lr": 0.1}), steps=10_000, tol=1e-6,
                          max_batch_s=1.0)
    train(runset, engine)
    run = runset.runs[0]
    # x_k = 0.8**k, loss = 0.64**k <= 1e-6 first at k = 31
    assert run.status == Status.CONVERGED and run.step == 31
    assert engine.loss_at(run.values) <= 1e-6 < run.history.loss[-2]


@pytest.mark.parametrize("budget", [0.0, 1.0])
def test_tolerance_rolls_back_the_optimizer_state_too(budget):
    # The case: x**2, Adam, lr 0.1, tol 1e-3 stopped at step 11 with Adam's own
    # step count far beyond it. The state must be the one of step 11 exactly.
    problem = Problem("x**2", "y", {"x": ParamSpec("1")})
    runset, engine = make(problem, RunSettings("adam", {"lr": 0.1}), steps=10_000, tol=1e-3)
    train(runset, engine, max_batch_s=budget)
    run = runset.runs[0]
    assert run.status == Status.CONVERGED
    assert run.optimizer_state.step == run.step
    x = torch.tensor([1.0], requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)
    for _ in range(run.step):
        opt.zero_grad()
        (x**2).sum().backward()
        opt.step()
    state = opt.state[x]
    assert run.values[0] == pytest.approx(x.item(), rel=1e-5)
    for key in ("exp_avg", "exp_avg_sq"):
        ours = np.ravel(run.optimizer_state.tensors[key]["x"])
        assert ours == pytest.approx(state[key].numpy().ravel(), rel=1e-5)


def test_learning_rate_change_takes_effect_next_step():
    problem = Problem("x", "y", {"x": ParamSpec("0")})
    runset, engine = make(problem, RunSettings("sgd", {"lr": 1.0}), steps=10)
    train(runset, engine, 1)
    engine.set_hyper(0, "lr", 0.5)
    train(runset, engine, 1)
    assert runset.runs[0].values[0] == pytest.approx(-1.5)


def test_switching_optimizer_keeps_the_point_and_starts_a_fresh_state():
    runset, engine = make(rosenbrock(), RunSettings("sgd", {"lr": 1e-3, "momentum": 0.9}), steps=100)
    train(runset, engine, 20)
    point = runset.runs[0].values.copy()
    engine.set_optimizer(0, "adam", {"lr": 0.01})
    exported = engine.export()[0]
    assert exported.state is None and np.array_equal(exported.values, point)
    train(runset, engine, 5)
    state = runset.runs[0].optimizer_state
    assert state.step == 5 and set(state.tensors) == {"exp_avg", "exp_avg_sq"}


def test_fork_continues_exactly():
    runset, engine = make(rosenbrock(), RunSettings("adam", {"lr": 0.02}), steps=200)
    train(runset, engine, 80)
    child = runset.fork(0)
    engine.add_run(child.engine_run())
    train(runset, engine)
    parent, child = runset.runs
    assert np.array_equal(parent.values, child.values) and child.step == parent.step == 200
    assert np.array_equal(parent.history.params, child.history.params)


def test_frozen_parameter_has_no_gradient_but_is_reported():
    problem = Problem("w*t", "(y - 6)**2", {"w": ParamSpec("1"), "t": ParamSpec("3", frozen=True)})
    runset, engine = make(problem, RunSettings("sgd", {"lr": 0.01}), steps=300)
    train(runset, engine)
    run = runset.runs[0]
    w, t = run.values
    assert t == 3.0 and w == pytest.approx(2.0, abs=1e-3)
    assert problem.layout.grad_columns == ["grad w"] and run.history.grads.shape[1] == 1


def test_everything_frozen_is_an_error():
    with pytest.raises(GdvizError, match="frozen"):
        Engine(Problem("x", "y", {"x": ParamSpec("1", frozen=True)}))


def test_param_not_in_function_lists_the_real_ones():
    with pytest.raises(GdvizError, match="'z' is not in the function; its parameters are X"):
        Problem("X + 1", "y", {"z": ParamSpec()})


def test_cuda_where_there_is_none_is_a_clear_error():
    from gdviz.core.device import resolve_device
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path cannot be reached here")
    with pytest.raises(DeviceError, match="CUDA was asked for"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_matches_cpu():
    cpu_set, cpu = make(seed_linear(), RunSettings("sgd", {"lr": 1e-3}), steps=2000)
    train(cpu_set, cpu)
    gpu_set = RunSet(seed_linear().layout, seed_linear().initial_flat(), 2000)
    gpu_set.add(RunSettings("sgd", {"lr": 1e-3}))
    gpu = Engine(seed_linear(), "cuda", 2000)
    gpu.add_run(gpu_set.runs[0].engine_run())
    train(gpu_set, gpu)
    assert gpu_set.runs[0].values[0] == pytest.approx(cpu_set.runs[0].values[0], abs=1e-5)


def test_history_memory_is_bounded_by_thinning():
    layout = ColumnLayout({"x": (1,)}, ("x",))
    history = History(layout, max_values=400)  # 100 rows of 4 numbers
    for start in range(0, 1000, 50):
        steps = np.arange(start, start + 50)
        history.extend(steps, steps * 1.0, steps[:, None] * 1.0, steps[:, None] * 1.0)
    assert len(history) <= 100 and history.stride >= 8
    assert history.steps[0] == 0 and (np.diff(history.steps) == history.stride).all()


def test_history_columns_for_tensors():
    layout = ColumnLayout({"x": (2, 2), "b": ()}, ("x", "b"))
    assert History(layout).columns == ["step", "loss", "x[0,0]", "x[0,1]", "x[1,0]", "x[1,1]", "b",
                                       "grad x[0,0]", "grad x[0,1]", "grad x[1,0]", "grad x[1,1]",
                                       "grad b"]


def test_landscape_is_one_vectorized_call():
    problem = Problem("(1 - a)**2 + 100*(b - a**2)**2", "y", {"a": ParamSpec("0"), "b": ParamSpec("0")})
    a, b = np.meshgrid(np.linspace(-2, 2, 30), np.linspace(-1, 3, 20), indexing="ij")
    z = problem.losses_at(np.column_stack([a.ravel(), b.ravel()]))
    assert z.shape == (600,)
    expected = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    np.testing.assert_allclose(z.reshape(30, 20), expected, rtol=1e-5)


def test_a_thousand_runs_are_one_tensor():
    problem = rosenbrock()
    starts = np.random.default_rng(0).uniform(-2, 2, size=(1000, 2))
    runset = RunSet(problem.layout, problem.initial_flat(), 50)
    for s in starts:
        runset.add(RunSettings("adam", {"lr": 0.01}, start=s), announce=False)
    engine = Engine(problem, "cpu", 50)
    for run in runset.engine_runs():
        engine.add_run(run)
    train(runset, engine)
    assert all(r.step == 50 for r in runset)
    one, eng = make(problem, RunSettings("adam", {"lr": 0.01}, start=starts[123]), steps=50)
    train(one, eng)
    assert np.array_equal(one.runs[0].values, runset.runs[123].values)


def test_a_converged_run_that_goes_on_records_each_step_once():
    problem = Problem("a**2 + b**2", "y", {"a": ParamSpec("1"), "b": ParamSpec("-2")})
    runset, engine = make(problem, RunSettings("sgd", {"lr": 0.1}), steps=50, tol=4.5)
    train(runset, engine)
    run = runset.runs[0]
    assert run.status == Status.CONVERGED
    runset.set_limits(tol=None)
    engine.set_limits(tol=None)
    train(runset, engine)
    steps = run.history.steps
    assert run.step == 50 and np.array_equal(steps, np.arange(50))


@pytest.mark.parametrize("budget", [0.0, 5.0])
def test_records_kept_in_tensors_allocated_once_equal_the_list_of_steps(monkeypatch, budget):
    # Large steps keep a batch's records in preallocated tensors (engine._StepLog), which
    # grow past their first 257 rows here; divergence, tolerance and their rollbacks read
    # them. Every number must be the one the list of per-step tensors gives.
    import gdviz.core.engine as engine_module

    settings = [RunSettings(o, h) for o, h in RACE] + [RunSettings("sgd", {"lr": 0.3})]

    def race(big_step):
        monkeypatch.setattr(engine_module, "BIG_STEP", big_step)
        copies = []
        real = engine_module._StepLog.__init__

        def spy(log, *args, copy, capacity):
            copies.append(copy)
            real(log, *args, copy=copy, capacity=capacity)

        monkeypatch.setattr(engine_module._StepLog, "__init__", spy)
        runset, engine = make(rosenbrock(), *settings, steps=600, tol=1e-4)
        train(runset, engine, max_batch_s=budget)
        assert set(copies) == {big_step == 0}
        return runset

    copied, listed = race(0), race(10**12)  # every step "large" (no data here), and none
    assert {r.status for r in copied.runs} >= {Status.DIVERGED, Status.FINISHED}
    for a, b in zip(copied.runs, listed.runs):
        assert a.status == b.status and a.step == b.step and a.message == b.message
        assert np.array_equal(a.values, b.values)
        assert np.array_equal(a.history.params, b.history.params)
        assert np.array_equal(a.history.loss, b.history.loss)
        for key, per in b.optimizer_state.tensors.items():
            for name, value in per.items():
                assert np.array_equal(a.optimizer_state.tensors[key][name], value)


def test_large_data_is_checked_on_every_row_forward_and_first_rows_backward():
    from gdviz.core.data import Dataset
    from gdviz.core.problem import CHECK_ROWS

    rows = CHECK_ROWS + 1000
    x = np.linspace(-1, 1, rows)
    data = Dataset({"x": x, "t": 3 * x + 1}, "line")
    problem = Problem("w*x + b", "mse(y, t)", {"w": ParamSpec("0"), "b": ParamSpec("0")},
                      data=data)
    assert problem.forward({"w": torch.tensor(3.0), "b": torch.tensor(1.0)})[1] < 1e-12
    with pytest.raises(GdvizError) as error:  # a shape only the full data shows
        Problem("w*x + b", "mse(y, t)", {"w": ParamSpec(f"zeros({CHECK_ROWS})"),
                                         "b": ParamSpec("0")}, data=data)
    small = Dataset({"x": x[:100], "t": x[:100]}, "line")
    with pytest.raises(GdvizError) as small_error:
        Problem("w*x + b", "mse(y, t)", {"w": ParamSpec("zeros(7)"), "b": ParamSpec("0")},
                data=small)
    assert str(error.value).split(":")[0] == str(small_error.value).split(":")[0]
    # shapes tied to the number of rows are right on every row, so they are accepted
    Problem("w*x + b", "mse(y, t)", {"w": ParamSpec(f"zeros({rows})"), "b": ParamSpec("0")},
            data=data)
    Problem(f"w*x[{rows - 10}] + b*x", "mse(y, t)", data=data)
    runset, engine = make(problem, RunSettings("sgd", {"lr": 0.5}), steps=300)
    train(runset, engine)
    assert runset.runs[0].values == pytest.approx([3.0, 1.0], abs=1e-3)
