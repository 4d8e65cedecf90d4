"""The training loop, its history and its stop conditions, with no Qt anywhere."""

import numpy as np
import pytest
import torch

from gdviz.core.errors import DeviceError, GdvizError
from gdviz.core.history import ColumnLayout, History
from gdviz.core.optimizers import OPTIMIZERS
from gdviz.core.problem import ParamSpec, Problem
from gdviz.core.trainer import Trainer


def seed_linear():
    return Problem("X + 1", "(3 - y)**2 / 2", {"X": ParamSpec("rand(1)")}, seed=0)


def test_seed_gradient_in_pytorch_reaches_1_9999():
    trainer = Trainer(seed_linear(), "sgd", {"lr": 1e-3}, max_steps=10_000)
    history = History(trainer.layout)
    for batch in trainer.iter_steps():
        history.extend(batch.steps, batch.loss, batch.params, batch.grads)
    x = trainer.values["X"].item()
    assert 1.9999 <= x < 2.0 and f"{x:.4f}" == "1.9999"
    assert trainer.status == "finished" and trainer.step == 10_000
    assert len(history) == 10_000
    # Row k is the point before update k; the seed's first gradient is -(3 - (X0 + 1)).
    assert history.params[0, 0] == pytest.approx(0.4963, abs=1e-4)
    assert history.grads[0, 0] == pytest.approx(-(3 - (history.params[0, 0] + 1)), rel=1e-6)


def test_engine_matches_the_notebook_loop_exactly():
    X = torch.rand(1, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for _ in range(500):
        loss = ((3.0 - (X + 1.0)) * (3.0 - (X + 1.0))).sum() / 2
        loss.backward()
        with torch.no_grad():
            X -= 1e-3 * X.grad
            X.grad.zero_()
    trainer = Trainer(seed_linear(), "sgd", {"lr": 1e-3}, max_steps=500)
    list(trainer.iter_steps())
    # Same ops up to float32 rounding: the notebook sums before halving, gdviz halves first.
    assert trainer.values["X"].item() == pytest.approx(X.item(), abs=1e-6)


def test_seed_autograd_notebook():
    problem = Problem("2*x**2 + 3", "y", {"x": ParamSpec("full((2,3), 4)")})
    y, loss, grads = Trainer(problem).evaluate()
    assert y.tolist() == [[35.0] * 3] * 2 and type(y.grad_fn).__name__ == "AddBackward0"
    assert grads["x"].tolist() == [[16.0] * 3] * 2
    assert problem.loss_summed and float(loss) == 210


def test_iter_steps_is_a_plain_generator():
    trainer = Trainer(seed_linear(), max_steps=100)
    batches = list(trainer.iter_steps(5))
    assert sum(len(b) for b in batches) == 5
    assert batches[-1].status == "paused" and batches[-1].step == 5
    assert np.array_equal(np.concatenate([b.steps for b in batches]), np.arange(5))


def test_batches_are_time_sliced():
    trainer = Trainer(seed_linear(), max_steps=100_000, max_batch_s=0.0)
    batches = list(trainer.iter_steps(3))
    assert [len(b) for b in batches] == [1, 1, 1]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_lowers_the_loss_on_the_bowl(name):
    problem = Problem("a**2 + 10*b**2", "y", {"a": ParamSpec("-4"), "b": ParamSpec("2")})
    lr = 0.02 if name == "sgd" else 0.1  # adaptive methods take steps of about lr each
    trainer = Trainer(problem, name, {"lr": lr}, max_steps=200)
    start = trainer.current_loss()
    list(trainer.iter_steps())
    assert trainer.current_loss() < 0.5 * start


def test_momentum_and_nesterov_are_used():
    problem = Problem("a**2", "y", {"a": ParamSpec("1")})
    plain = Trainer(problem, "sgd", {"lr": 0.01}, max_steps=20)
    fast = Trainer(problem, "sgd", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, max_steps=20)
    for t in (plain, fast):
        list(t.iter_steps())
    assert abs(fast.values["a"].item()) < abs(plain.values["a"].item())


def test_divergence_stops_and_keeps_the_last_finite_state():
    problem = Problem("x**2", "y", {"x": ParamSpec("1")})
    trainer = Trainer(problem, "sgd", {"lr": 1.5}, max_steps=10_000)
    batches = list(trainer.iter_steps())
    last = batches[-1]
    assert last.status == "diverged" and "diverged at step" in last.message
    assert np.isfinite(trainer.values["x"].item())
    assert np.isfinite(last.loss).all() and trainer.step < 200
    assert trainer.summary()["status"] == "diverged"


def test_nan_at_the_start_is_divergence_at_step_0():
    problem = Problem("log(x)", "y", {"x": ParamSpec("-1")})
    batches = list(Trainer(problem, max_steps=10).iter_steps())
    assert batches[-1].status == "diverged" and "step 0" in batches[-1].message


def test_tolerance_stops_at_the_exact_step():
    problem = Problem("x**2", "y", {"x": ParamSpec("1")})
    trainer = Trainer(problem, "sgd", {"lr": 0.1}, max_steps=10_000, tol=1e-6, max_batch_s=1.0)
    batches = list(trainer.iter_steps())
    assert batches[-1].status == "converged"
    # x_k = 0.8**k, loss = 0.64**k <= 1e-6 first at k = 31
    assert trainer.step == 31
    assert trainer.current_loss() <= 1e-6 < batches[-1].loss[-2]


def test_learning_rate_change_takes_effect_next_step():
    problem = Problem("x", "y", {"x": ParamSpec("0")})
    trainer = Trainer(problem, "sgd", {"lr": 1.0}, max_steps=10)
    list(trainer.iter_steps(1))
    trainer.set_hyper("lr", 0.5)
    list(trainer.iter_steps(1))
    assert trainer.values["x"].item() == pytest.approx(-1.5)


def test_frozen_parameter_has_no_gradient_but_is_reported():
    problem = Problem("w*t", "(y - 6)**2", {"w": ParamSpec("1"), "t": ParamSpec("3", frozen=True)})
    trainer = Trainer(problem, "sgd", {"lr": 0.01}, max_steps=300)
    list(trainer.iter_steps())
    summary = trainer.summary()
    assert summary["params"]["t"] == 3.0 and summary["grads"]["t"] is None
    assert summary["params"]["w"] == pytest.approx(2.0, abs=1e-3)
    assert trainer.layout.grad_columns == ["grad w"]


def test_everything_frozen_is_an_error():
    with pytest.raises(GdvizError, match="frozen"):
        Trainer(Problem("x", "y", {"x": ParamSpec("1", frozen=True)}))


def test_param_not_in_function_lists_the_real_ones():
    with pytest.raises(GdvizError, match="'z' is not in the function; its parameters are X"):
        Problem("X + 1", "y", {"z": ParamSpec()})


def test_cuda_where_there_is_none_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path cannot be reached here")
    with pytest.raises(DeviceError, match="CUDA was asked for"):
        Trainer(seed_linear(), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_matches_cpu():
    cpu = Trainer(seed_linear(), "sgd", {"lr": 1e-3}, max_steps=2000)
    gpu = Trainer(seed_linear(), "sgd", {"lr": 1e-3}, max_steps=2000, device="cuda")
    list(cpu.iter_steps()), list(gpu.iter_steps())
    assert gpu.values["X"].item() == pytest.approx(cpu.values["X"].item(), abs=1e-5)


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
    a, b = torch.meshgrid(torch.linspace(-2, 2, 30), torch.linspace(-1, 3, 20), indexing="ij")
    z = problem.loss_on_batch({"a": a.reshape(-1), "b": b.reshape(-1)}, {})
    assert z.shape == (600,)
    expected = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    torch.testing.assert_close(z.reshape(30, 20), expected)
