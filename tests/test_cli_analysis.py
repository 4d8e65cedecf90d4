"""gdviz basin, lr-find, curvature and run --curvature-every: JSON keys, files, exit codes."""

import csv
import json

import numpy as np
import pytest
import torch

from gdviz.cli import main


@pytest.fixture(autouse=True)
def restore_threads():
    """The commands choose torch's thread count; put it back for the other tests."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_basin_json_himmelblau_adam(capsys):
    code, out, _ = run(capsys, "basin", "--preset", "himmelblau", "-o", "adam", "--lr", "0.05",
                       "--grid", "40", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"grid", "starts", "basins", "diverged", "unfinished", "seconds"}
    assert result["grid"] == [40, 40] and result["starts"] == 1600
    assert len(result["basins"]) == 4
    points = sorted((round(b["point"]["a"], 3), round(b["point"]["b"], 3)) for b in result["basins"])
    assert points == [(-3.779, -3.283), (-2.805, 3.131), (3.0, 2.0), (3.584, -1.848)]
    fractions = [b["fraction"] for b in result["basins"]]
    assert fractions == sorted(fractions, reverse=True)
    assert sum(fractions) + result["diverged"] + result["unfinished"] == pytest.approx(1.0)
    assert set(result["basins"][0]) == {"point", "loss", "fraction"}


def test_basin_csv_and_ranges(capsys, tmp_path):
    path = tmp_path / "basin.csv"
    code, out, err = run(capsys, "basin", "--preset", "himmelblau", "--grid", "8", "--x", "-5,5",
                         "--y", "-4.5,4", "--out", str(path))
    assert code == 0 and "8 x 8 starts over a -5..5, b -4.5..4" in out and "wrote" in err
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["start a", "start b", "end a", "end b", "loss", "steps", "status", "basin"]
    assert len(rows) == 65
    assert (rows[1][0], rows[1][1]) == ("-5.0", "-4.5") and rows[-1][:2] == ["5.0", "4.0"]
    assert {r[6] for r in rows[1:]} <= {"converged", "settled", "unfinished", "diverged"}
    for r in rows[1:]:
        assert (r[7] == "") == (r[6] in ("unfinished", "diverged"))


def test_basin_png(capsys, tmp_path):
    from PIL import Image

    path = tmp_path / "basin.png"
    code, _, _ = run(capsys, "basin", "--preset", "rastrigin", "--grid", "30", "--steps", "200",
                     "--out", str(path))
    assert code == 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 400 and image.height > 300
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # the map is in many colours


def test_basin_other_axes_with_the_rest_held(capsys):
    code, out, _ = run(capsys, "basin", "-f", "(a - c)**2 + (b + c)**2", "-p", "a=0", "-p", "b=0",
                       "-p", "c=2", "--x-axis", "a", "--y-axis", "b", "--grid", "6", "--lr", "0.1",
                       "--steps", "300", "--json")
    result = json.loads(out)
    assert code == 0 and len(result["basins"]) == 1
    assert result["basins"][0]["point"] == pytest.approx({"a": 2.0, "b": -2.0}, abs=1e-4)


def test_lr_find_json_quadratic_edge(capsys, tmp_path):
    path = tmp_path / "lr.csv"
    code, out, _ = run(capsys, "lr-find", "-f", "0.5*(a**2 + 100*b**2)", "-p", "a=1", "-p", "b=1",
                       "-o", "sgd", "--json", "--out", str(path))
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"lrs", "final_loss", "suggested_lr", "max_stable_lr"}
    assert len(result["lrs"]) == len(result["final_loss"]) == 200
    assert result["max_stable_lr"] == pytest.approx(0.02, rel=0.1)
    assert result["suggested_lr"] < result["max_stable_lr"]
    assert result["final_loss"][-1] is None  # diverged
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["lr", "final_loss", "diverged"] and len(rows) == 201
    assert rows[-1][1:] == ["", "true"]


def test_lr_find_text_and_flags(capsys):
    code, out, _ = run(capsys, "lr-find", "--preset", "bowl", "--lr-min", "1e-4", "--lr-max",
                       "1", "--count", "20", "--steps", "30")
    assert code == 0 and "20 learning rates from 0.0001 to 1, 30 steps each" in out
    assert "largest stable lr: 0.0" in out


def test_curvature_json_rosenbrock(capsys):
    code, out, _ = run(capsys, "curvature", "--preset", "rosenbrock", "--param", "a=1",
                       "--param", "b=1", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"eigenvalues", "condition_number", "lr_limit_sgd", "lr_limit_momentum"}
    expected = np.linalg.eigvalsh([[802.0, -400.0], [-400.0, 200.0]])
    assert result["eigenvalues"] == pytest.approx(list(expected))
    assert result["lr_limit_sgd"] == pytest.approx(2 / expected[1])
    assert result["lr_limit_momentum"] == pytest.approx(3.8 / expected[1])


def test_curvature_text_and_momentum(capsys):
    code, out, _ = run(capsys, "curvature", "-f", "0.5*(a**2 + 100*b**2)", "-p", "a=1", "-p", "b=1",
                       "--momentum", "0.5")
    assert code == 0 and "[[  1.,   0.]" in out.replace("  [[", "[[")
    assert "below 0.02 for plain gradient descent, below 0.03 with momentum 0.5" in out


def test_run_curvature_every(capsys, tmp_path):
    path = tmp_path / "h.csv"
    code, out, _ = run(capsys, "run", "--preset", "rosenbrock", "--steps", "10",
                       "--curvature-every", "4", "--json", "--out", str(path))
    assert code == 0
    result = json.loads(out)
    assert result["lambda_max_steps"] == [0, 4, 8]
    assert len(result["lambda_max"]) == 3 and result["lambda_max"][0] == pytest.approx(2092.2497, rel=1e-6)
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][-1] == "lambda_max" and len(rows) == 11
    assert [r[-1] != "" for r in rows[1:]] == [s % 4 == 0 for s in range(10)]
    jpath = tmp_path / "h.json"
    code, _, _ = run(capsys, "run", "--preset", "rosenbrock", "--steps", "3",
                     "--curvature-every", "2", "--out", str(jpath))
    data = json.loads(jpath.read_text())
    assert data["columns"][-1] == "lambda_max"
    assert [r["lambda_max"] is not None for r in data["rows"]] == [True, False, True]


@pytest.mark.parametrize("argv, message", [
    (["basin", "-f", "x**2", "-p", "x=1"], "a basin map needs two trainable parameter elements"),
    (["basin", "--preset", "himmelblau", "--grid", "0"], "--grid: the grid must be 2 to 1000"),
    (["basin", "--preset", "himmelblau", "--grid", "100000"], "--grid: the grid must be 2 to 1000"),
    (["basin", "--preset", "himmelblau", "--x", "5,-5"], "--x: the x range must have LO below HI"),
    (["basin", "--preset", "himmelblau", "--y", "1"], "--y expects LO,HI"),
    (["basin", "--preset", "himmelblau", "--out", "b.gif"], "must end in .png"),
    (["basin", "--preset", "himmelblau", "--x-axis", "a"], "give both --x-axis and --y-axis"),
    (["basin", "--preset", "himmelblau", "--x-axis", "a", "--y-axis", "q"],
     "'q' is not a trainable parameter element"),
    (["lr-find", "--preset", "bowl", "--lr-min", "1", "--lr-max", "0.1"],
     "--lr-min (1) must be below --lr-max (0.1)"),
    (["lr-find", "--preset", "bowl", "--count", "1"], "the number of learning rates must be 2"),
    (["lr-find", "--preset", "bowl", "--steps", "0"], "--steps must be 1"),
    (["lr-find", "--preset", "bowl", "--lr-max", "1000"], "highest learning rate must be between"),
    (["curvature", "-f", "sqrt(a)", "-p", "a=0"], "not finite at this point (a = 0)"),
    (["curvature", "--preset", "rosenbrock", "--momentum", "1"], "--momentum must be"),
    (["run", "--preset", "rosenbrock", "--curvature-every", "0"], "--curvature-every must be"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "gdviz: error: " in err and message in err and "Traceback" not in err


def test_negative_ranges_read_as_values(capsys):
    code, out, _ = run(capsys, "basin", "--preset", "himmelblau", "--grid", "4", "--x", "-5,-1",
                       "--y", "-.5,2", "--json")
    assert code == 0 and json.loads(out)["starts"] == 16


def test_curvature_at_where_a_saved_run_stands(capsys, tmp_path):
    path = tmp_path / "s.gdviz.json"
    code, _, _ = run(capsys, "run", "--preset", "rosenbrock", "--steps", "3000", "--lr", "0.02",
                     "--save-session", str(path), "--json")
    assert code == 0
    code, out, _ = run(capsys, "curvature", "--session", str(path), "--json")
    result = json.loads(out)
    # near the minimum (1, 1): close to the Hessian there, far from the start's
    assert code == 0 and result["eigenvalues"][-1] == pytest.approx(1001.6, rel=0.05)


def test_curvature_at_a_maximum_says_descent_moves_away(capsys):
    assert main(["curvature", "--function", "-(a**2 + b**2)", "--param", "a=0",
                 "--param", "b=0"]) == 0
    out = capsys.readouterr().out
    assert "no direction curves up" in out and "moves away" in out
    assert "below infinite" not in out
