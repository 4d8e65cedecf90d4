"""Fitting data: CSV columns as variables, mini-batches, and every way data can be bad."""

import json
import string

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gdviz.cli import main
from gdviz.core.data import DataError, load_bundled, parse_csv, read_csv
from gdviz.core.expressions import CONSTANTS, FUNCTIONS, compile_expression
from gdviz.core.params import ParamSpec
from gdviz.core.presets import load_preset
from gdviz.core.problem import Problem
from gdviz.core.session import DataSource, RunRecord, Session
from gdviz.core.simulation import Simulation
from gdviz.core.vocabulary import CONSTANT_NAMES, FUNCTION_NAMES


def test_the_vocabulary_matches_the_language():
    assert FUNCTION_NAMES == set(FUNCTIONS) and CONSTANT_NAMES == set(CONSTANTS)


# --- reading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("1,2\n3,4\n", "no header row"),
    ("x,t\n", "a header but no data rows"),
    ("x,t\n1,2\n3\n", "row 3 of 'p.csv' has 1 cell; the header has 2"),
    ("x,t\n1,2\n3,4,5\n", "row 3 of 'p.csv' has 3 cells"),
    ("x,t\n1,abc\n", "row 2, column 't' of 'p.csv' is 'abc', not a number"),
    ("x,t\n1,2\n,4\n", "row 3, column 'x' of 'p.csv' is empty"),
    ("x,t\n1,nan\n", "row 2, column 't' of 'p.csv' is nan; gdviz needs finite numbers"),
    ("x,t\n1,-inf\n", "is -inf"),
    ("x,x\n1,2\n", "would both be called 'x'"),
    ("a b,a-b\n1,2\n", "would both be called 'a_b'"),
])
def test_bad_data_says_where(text, message):
    with pytest.raises(DataError) as info:
        parse_csv(text, "p.csv")
    assert message in str(info.value)


def test_large_files_are_read_in_blocks_with_the_right_rows_named(tmp_path):
    rows = 200_003  # four blocks and a bit
    x = np.arange(rows) / 7
    body = "\n".join(f"{float(v)!r},{float(2 * v)!r}," for v in x)  # a trailing delimiter
    path = tmp_path / "big.csv"
    path.write_text("x,t,\n" + body + "\n\n")
    data = read_csv(path)
    assert data.names == ["x", "t"] and data.rows == rows
    np.testing.assert_array_equal(data.columns["x"], x)
    np.testing.assert_array_equal(data.columns["t"], 2 * x)
    lines = ("x,t\n" + body.replace(",\n", "\n").rstrip(",")).splitlines()
    for bad_row, cell, message in [(150_000, "oops", "is 'oops', not a number"),
                                   (199_999, "", "is empty"), (70_000, "inf", "is inf")]:
        broken = list(lines)
        broken[bad_row - 1] = f"1,{cell}"
        with pytest.raises(DataError, match=f"row {bad_row}, column 't' of 'p.csv' {message}"):
            parse_csv("\n".join(broken), "p.csv")
    broken = list(lines)
    broken[131_073 - 1] = "1"
    with pytest.raises(DataError, match="row 131073 of 'p.csv' has 1 cell; the header has 2"):
        parse_csv("\n".join(broken), "p.csv")


def test_blank_blocks_and_old_mac_line_ends(tmp_path):
    # a trailing delimiter still drops its column after a whole block of blank lines
    data = parse_csv("x,t,\n" + "1,2,\n" * 65_536 + ",,\n" * 70_000 + "3,4,\n", "p.csv")
    assert data.names == ["x", "t"] and data.rows == 65_537
    # lines ended by \r alone read the same from a file and from text
    (tmp_path / "mac.csv").write_bytes(b"x,t\r1,2\r3,4\r")
    for read in (read_csv(tmp_path / "mac.csv"), parse_csv("x,t\r1,2\r3,4\r")):
        np.testing.assert_array_equal(read.columns["t"], [2, 4])


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64),
                         min_size=2, max_size=2), min_size=1, max_size=30),
       st.lists(st.integers(0, 30), max_size=5), st.sampled_from([",", ";", "\t"]),
       st.sampled_from(["\n", "\r\n"]))
def test_any_table_of_numbers_reads_back_exactly(table, blanks, delimiter, newline):
    lines = [f"a{delimiter}b"] + [delimiter.join(repr(v) for v in row) for row in table]
    for k in sorted(blanks, reverse=True):
        lines.insert(min(k, len(lines) - 1) + 1, "")  # blank lines anywhere after the header
    data = parse_csv(newline.join(lines) + newline, "p.csv")
    np.testing.assert_array_equal(np.c_[data.columns["a"], data.columns["b"]],
                                  np.array(table, dtype=np.float64))


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a folder"):
        read_csv(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"x,t\n\xff\xfe\x00\x01")
    with pytest.raises(DataError, match="not a text"):
        read_csv(tmp_path / "bin.csv")


def test_column_names_become_variables():
    data = parse_csv("x,y,height (cm),sum,2nd,pi\n1,2,3,4,5,6\n", "p.csv")
    assert data.names == ["x", "y_data", "height_cm", "sum_data", "c2nd", "pi_data"]
    assert "column 'y' is used as y_data (y is the function's value)" in data.notes
    assert data.headers["height_cm"] == "height (cm)"
    # semicolons and tabs, a BOM and blank lines
    assert parse_csv("a;b\n1;2\n\n3;4\n").columns["b"].tolist() == [2.0, 4.0]
    assert parse_csv("a\tb\n1\t2\n").rows == 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "é€\x00", max_size=200))
def test_any_text_is_data_or_a_data_error(text):
    try:
        data = parse_csv(text, "fuzz.csv")
    except DataError as exc:
        assert str(exc)
    else:
        assert data.rows >= 1 and all(np.isfinite(v).all() for v in data.columns.values())


# --- the language: matrices, stacking, cross-entropy ----------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), h=st.integers(1, 5), runs=st.integers(1, 4),
       form=st.sampled_from(["tanh(stack(x1, x2) @ W + c) @ v + d", "stack(x1, x2) @ W @ v",
                             "v @ v + stack(x1) @ W2 @ v", "sum(W * W) + x1 @ x2 * d"]))
def test_batched_matrix_expressions_equal_each_run_alone(n, h, runs, form):
    shapes = {"W": (2, h), "c": (h,), "v": (h,), "d": (), "W2": (1, h)}
    expr = compile_expression(form)
    used = {k: s for k, s in shapes.items() if k in expr.names}
    gen = torch.Generator().manual_seed(n * 100 + h)
    params = {k: torch.randn((runs,) + s, generator=gen) for k, s in used.items()}
    data = {"x1": torch.randn(n, generator=gen), "x2": torch.randn(n, generator=gen)}
    data = {k: v for k, v in data.items() if k in expr.names}
    out = expr.plan({**used, **{k: (n,) for k in data}}, list(used))({**params, **data})
    ref = torch.stack([expr.evaluate({**{k: v[r] for k, v in params.items()}, **data})
                       for r in range(runs)])
    torch.testing.assert_close(out.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)
    assert out.shape == ref.shape


def test_cross_entropy_is_torchs():
    p = torch.tensor([0.0, 0.2, 0.7, 1.0])
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    bce = compile_expression("bce(p, t)", variables=["p", "t"])
    expected = torch.nn.functional.binary_cross_entropy(p, t)
    torch.testing.assert_close(bce.evaluate({"p": p, "t": t}), expected)
    z = torch.tensor([-30.0, -1.0, 0.5, 40.0])
    logits = compile_expression("bce_logits(z, t)", variables=["z", "t"])
    torch.testing.assert_close(logits.evaluate({"z": z, "t": t}),
                               torch.nn.functional.binary_cross_entropy_with_logits(z, t))
    # probabilities that round to exactly 1 keep a finite gradient
    w = torch.tensor(50.0, requires_grad=True)
    loss = compile_expression("bce(sigmoid(w * p), t)", variables=["w", "p", "t"]).evaluate(
        {"w": w, "p": p, "t": t})
    loss.backward()
    assert torch.isfinite(w.grad)


def test_matrix_product_errors_point_at_the_product():
    with pytest.raises(Exception, match="@ multiplies vectors and matrices"):
        compile_expression("2 @ 3")
    with pytest.raises(Exception, match="column 1"):
        Problem("W @ v", "y", {"W": ParamSpec("randn(2, 3)"), "v": ParamSpec("randn(2)")})


# --- fitting --------------------------------------------------------------------------------------

def fit(session: Session, steps: int | None = None) -> Simulation:
    sim = Simulation(session)
    sim.run(steps)
    return sim


def data_session(function, loss, params, data, optimizer="adam", lr=0.05, steps=2000,
                 batch_size=None, seed=0):
    return Session(function=function, loss=loss,
                   params={k: ParamSpec(v) for k, v in params.items()}, steps=steps,
                   seed=seed, data=data, batch_size=batch_size,
                   runs=[RunRecord(optimizer, {"lr": lr})])


def least_squares(columns, x, y):
    a = np.column_stack(columns)
    return np.linalg.lstsq(a, y, rcond=None)[0]


def test_a_line_fit_reaches_least_squares():
    data = load_bundled("noisy-line")
    x, y = data.columns["x"], data.columns["y_data"]
    sim = fit(data_session("w*x + b", "mse(y, y_data)", {"w": "0", "b": "0"},
                           DataSource(dataset="noisy-line"), steps=3000))
    w, b = sim.runset.runs[0].values
    np.testing.assert_allclose([w, b], least_squares([x, np.ones_like(x)], x, y), atol=2e-3)


def test_a_parabola_fit_reaches_least_squares():
    data = load_bundled("quadratic")
    x, y = data.columns["x"], data.columns["y_data"]
    sim = fit(data_session("a*x**2 + b*x + c", "mse(y, y_data)",
                           {"a": "0", "b": "0", "c": "0"}, DataSource(dataset="quadratic"),
                           steps=4000))
    np.testing.assert_allclose(sim.runset.runs[0].values,
                               least_squares([x**2, x, np.ones_like(x)], x, y), atol=3e-3)


def test_logistic_regression_separates_the_classes():
    sim = fit(Session.from_dict(json.loads(json.dumps(load_preset("logistic-regression").to_dict()))))
    run = sim.runset.runs[0]
    data = load_bundled("two-classes")
    w1, w2, b = run.values
    predicted = (w1 * data.columns["x1"] + w2 * data.columns["x2"] + b) > 0
    assert (predicted == (data.columns["label"] == 1)).all()


def test_the_xor_network_learns_xor():
    sim = fit(load_preset("xor-network"))
    run = sim.runset.runs[0]
    assert run.status.value == "finished" and run.loss < 0.1
    full = sim.problem.batched_loss()
    values = torch.as_tensor(run.values, dtype=torch.float32)[None]
    env = {n: values[:, sl].reshape((1,) + sim.problem.layout.shapes[n])
           for n, sl in sim.problem.layout.param_slices.items()}
    assert float(full(env)[0]) < 0.1   # the full data's loss too, not only the last batch


# --- mini-batches ---------------------------------------------------------------------------------

def minibatch(seed=0, steps=300, batch=16):
    return data_session("w*x + b", "mse(y, y_data)", {"w": "0", "b": "0"},
                        DataSource(dataset="noisy-line"), optimizer="sgd", lr=0.02, steps=steps,
                        batch_size=batch, seed=seed)


def test_mini_batches_are_reproducible_from_the_seed():
    a, b, c = fit(minibatch(0)), fit(minibatch(0)), fit(minibatch(1))
    np.testing.assert_array_equal(a.runset.runs[0].history.loss, b.runset.runs[0].history.loss)
    assert not np.array_equal(a.runset.runs[0].history.loss, c.runset.runs[0].history.loss)
    # a run paused and resumed sees the same batches as one straight through
    parts = Simulation(minibatch(0))
    for n in (7, 50, 101, 142):
        parts.run(n)
    np.testing.assert_array_equal(parts.runset.runs[0].values, a.runset.runs[0].values)


def test_runs_at_different_steps_each_get_their_own_batch():
    straight = fit(minibatch(0, steps=200))
    sim = Simulation(minibatch(0, steps=200))
    sim.run(60)
    first = sim.runset.runs[0]
    child = sim.runset.fork(first.id)   # at step 60
    sim.engine.add_run(child.engine_run())
    fresh = sim.add_run(first.settings.__class__("sgd", {"lr": 0.02}))  # at step 0
    sim.run()
    np.testing.assert_array_equal(child.values, straight.runset.runs[0].values)
    np.testing.assert_array_equal(first.values, straight.runset.runs[0].values)
    alone = fit(minibatch(0, steps=200))
    np.testing.assert_array_equal(fresh.values, alone.runset.runs[0].values)


def test_each_epoch_records_the_full_datas_loss():
    sim = fit(minibatch(0, steps=60, batch=16))   # 100 rows: 6 batches an epoch
    run = sim.runset.runs[0]
    steps = [s for s, _ in run.epoch_losses]
    assert steps == list(range(0, 61, 6))
    full = sim.problem.batched_loss()
    for step, value in run.epoch_losses[:-1]:
        row = torch.as_tensor(run.history.params[step], dtype=torch.float32)[None]
        assert value == pytest.approx(float(full({"w": row[:, 0], "b": row[:, 1]})[0]), rel=1e-5)
    assert sim.summary(run)["epochs"] == pytest.approx(10.0)


# --- what is stored ---------------------------------------------------------------------------------

def test_data_is_never_recorded_nor_saved_unless_embedded(tmp_path):
    csv = tmp_path / "points.csv"
    csv.write_text("x,target\n1,3\n2,5\n3,7\n4,9\n")
    session = data_session("w*x + b", "mse(y, target)", {"w": "0", "b": "0"},
                           DataSource(path=str(csv)), steps=50)
    sim = fit(session)
    run = sim.runset.runs[0]
    assert run.history.columns == ["step", "loss", "w", "b", "grad w", "grad b"]
    sim.snapshot().save(tmp_path / "s.gdviz.json")
    text = (tmp_path / "s.gdviz.json").read_text()
    assert '"path": "points.csv"' in text and "target" not in text.split('"runs"')[0].replace(
        '"loss": "mse(y, target)"', "")
    # the path is the session file's: it opens from anywhere
    back = Session.load(tmp_path / "s.gdviz.json")
    assert back.load_data().rows == 4
    sim.snapshot().save(tmp_path / "e.gdviz.json", embed_data=True)
    embedded = Session.load(tmp_path / "e.gdviz.json")
    assert embedded.data.columns == {"x": [1, 2, 3, 4], "target": [3, 5, 7, 9]}
    csv.unlink()
    assert Session.load(tmp_path / "e.gdviz.json").load_data().rows == 4
    with pytest.raises(DataError, match="points.csv' does not exist"):
        Session.load(tmp_path / "s.gdviz.json").build_problem()


def test_data_mistakes_in_problems():
    data = parse_csv("x,t\n1,2\n2,4\n", "p.csv")
    with pytest.raises(Exception, match="only data columns"):
        Problem("x * 2", "y", data=data)
    with pytest.raises(Exception, match="'x' is a column of the data"):
        Problem("w*x", "y", {"x": ParamSpec("1.0")}, data=data)
    problem = Problem("w*x", "mse(y, t)", data=parse_csv("x,t,z\n1,2,0\n2,4,0\n"))
    assert "the data column z is not used by the function or the loss" in problem.notes
    # a column spelt otherwise in the function: x is trained, and the notes say so
    problem = Problem("w*x + b", "mse(y, t)", data=parse_csv("u,t\n1,2\n2,4\n"))
    assert "the data column u is not used by the function or the loss" in problem.notes
    assert "w, x and b are trained as parameters, not read from the data" in problem.notes[-1]
    with pytest.raises(Exception, match="unknown name 't'"):
        Problem("w*x", "mse(y, t)")   # the data was never given


# --- the command line -------------------------------------------------------------------------------

def test_run_with_data_on_the_command_line(tmp_path, capsys):
    csv = tmp_path / "points.csv"
    csv.write_text("x,y\n" + "".join(f"{x},{2 * x + 1}\n" for x in range(20)))
    code = main(["run", "--data", str(csv), "-f", "w*x + b", "-l", "mse(y, y_data)", "-o",
                 "adam", "--lr", "0.05", "--steps", "200", "--batch-size", "5", "--seed", "3",
                 "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"] == {"rows": 20, "columns": ["x", "y_data"], "batch_size": 5,
                           "source": str(csv.resolve())}
    assert out["epochs"] == pytest.approx(50.0)
    assert main(["grad", "--data", str(csv), "-f", "w*x + b", "-l", "mse(y, y_data)", "-p", "w=0",
                 "-p", "b=0", "--json"]) == 0
    grads = json.loads(capsys.readouterr().out)["grads"]
    xs = np.arange(20.0)
    assert grads["w"] == pytest.approx(np.mean(-2 * (2 * xs + 1) * xs), rel=1e-5)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("", "is empty"),
    ("x,y\n1,oops\n", "row 2, column 'y'"),
    ("x,y\n1,inf\n", "finite numbers"),
])
def test_bad_data_files_are_one_line_errors(tmp_path, capsys, content, message):
    csv = tmp_path / "d.csv"
    if content is not None:
        csv.write_text(content)
    assert main(["run", "--data", str(csv), "-f", "w*x", "-l", "mse(y, y_data)"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_batch_size_needs_data(capsys):
    assert main(["run", "-f", "w*2", "--batch-size", "4"]) == 2
    assert "batch size needs data" in capsys.readouterr().err


# --- the data view's picture ----------------------------------------------------------------------

def test_the_fit_picture_draws_each_runs_model_over_the_data():
    from gdviz.core.analysis.fit import fit_picture
    sim = Simulation(data_session("w*x + b", "mse(y, y_data)", {"w": "0", "b": "0"},
                                  DataSource(dataset="noisy-line")))
    rows = np.array([[2.0, 1.0], [-1.0, 0.5]])
    picture = fit_picture(sim.problem, rows, resolution=50)
    assert picture.kind == "curve" and picture.inputs == ["x"] and picture.targets == ["y_data"]
    xs = picture.grid[0]
    np.testing.assert_allclose(picture.values, [2 * xs + 1, -xs + 0.5], rtol=1e-5, atol=1e-5)
    assert set(picture.points) == {"x", "y_data"}


def test_the_fit_picture_of_a_classifier_is_a_probability_field():
    from gdviz.core.analysis.fit import fit_picture
    sim = Simulation(load_preset("logistic-regression"))
    problem = sim.problem
    picture = fit_picture(problem, np.array([[1.0, -1.0, 0.5]]), resolution=30)
    assert picture.kind == "field" and picture.values.shape == (1, 30, 30)
    gx, gy = picture.grid
    w1, w2, b = 1.0, -1.0, 0.5
    # the preset's model is sigmoid(...) itself: a probability, drawn as it is
    assert not picture.probability
    expect = 1 / (1 + np.exp(-(w1 * gx[None, :] + w2 * gy[:, None] + b)))  # rows follow y
    np.testing.assert_allclose(picture.values[0], expect, rtol=1e-4, atol=1e-5)


def test_a_function_that_reduces_the_data_has_no_curve_and_says_why():
    from gdviz.core.analysis.fit import fit_picture
    sim = Simulation(data_session("mse(w*x + b, y_data)", "y", {"w": "0", "b": "0"},
                                  DataSource(dataset="noisy-line")))
    picture = fit_picture(sim.problem, np.zeros((1, 2)))
    assert picture.kind == "none" and "mse(y, t)" in picture.reason


def test_the_graph_of_a_data_problem_is_taken_on_the_full_data(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["graph", "--preset", "xor-network", "--out", str(out)]) == 0
    graph = json.loads(out.read_text())
    loss = next(n for n in graph["nodes"] if n.get("role") == "loss")
    sim = Simulation(load_preset("xor-network"))
    values = torch.as_tensor(sim.runset.runs[0].values, dtype=torch.float32)[None]
    env = {n: values[:, sl].reshape((1,) + sim.problem.layout.shapes[n])
           for n, sl in sim.problem.layout.param_slices.items()}
    assert abs(float(np.ravel(loss["value"])[0]) - float(sim.problem.batched_loss()(env)[0])) < 1e-4


def test_plot_data_draws_the_fit_and_writes_its_numbers(tmp_path, capsys, qapp):
    png, table = tmp_path / "fit.png", tmp_path / "fit.csv"
    code = main(["run", "--preset", "fit-line", "--steps", "200", "--json", "--plot",
                 f"data={png}", "--plot", f"data={table}"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    w, b = (float(np.ravel(result["params"][n])[0]) for n in ("w", "b"))
    rows = np.genfromtxt(table, delimiter=",", skip_header=1)
    assert table.read_text().splitlines()[0].startswith("x,")
    np.testing.assert_allclose(rows[:, 1], w * rows[:, 0] + b, rtol=1e-5, atol=1e-5)
    from PySide6.QtGui import QImage
    image = QImage(str(png))
    assert image.width() > 500 and image.height() > 300


def test_plot_data_without_data_is_refused_before_training(tmp_path, capsys):
    assert main(["run", "--preset", "bowl", "--plot", f"data={tmp_path / 'x.png'}"]) == 2
    assert "there is no data to draw" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_a_trailing_delimiter_on_every_line_is_not_a_column():
    data = parse_csv("x,t,\n1,2,\n3,4,\n")
    assert data.names == ["x", "t"] and list(data.columns["t"]) == [2.0, 4.0]
    with pytest.raises(DataError, match="empty"):   # an empty cell in a real column still is
        parse_csv("x,t,u\n1,2,\n3,4,5\n")


def test_with_mini_batches_the_summary_gives_the_full_datas_loss_too(capsys):
    assert main(["run", "--preset", "fit-line", "--batch-size", "10", "--steps", "200",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    w, b = (float(np.ravel(result["params"][n])[0]) for n in ("w", "b"))
    data = load_bundled("noisy-line")
    full = float(np.mean((w * data.columns["x"] + b - data.columns["y_data"]) ** 2))
    assert result["data_loss"] == pytest.approx(full, rel=1e-4)
    assert main(["run", "--preset", "fit-line", "--batch-size", "10", "--steps", "200"]) == 0
    assert "(the last mini-batch's); on all the data:" in capsys.readouterr().out


def test_accented_headers_keep_their_letters():
    data = parse_csv("température,poids (kg)\n1,2\n")
    assert data.names == ["temperature", "poids_kg"]
    assert any("température" in note for note in data.notes)
