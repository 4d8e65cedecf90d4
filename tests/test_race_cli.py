"""gdviz race: several runs stepped together; the same numbers as each run alone."""

import csv
import json

import pytest

from gdviz.cli import main


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


RACE = ["race", "--preset", "rosenbrock", "--run", "sgd lr=0.001", "--run",
        "sgd lr=0.001 momentum=0.9 label=Momentum", "--run", "adam lr=0.02", "--steps", "300",
        "--json"]


def test_race_json_has_every_run_in_order(capsys):
    code, out, _ = run(capsys, *RACE)
    result = json.loads(out)
    assert code == 0
    assert set(result) == {"runs", "device", "elapsed_s", "steps_per_s"}
    labels = [r["label"] for r in result["runs"]]
    assert labels[1] == "Momentum" and labels[0].startswith("SGD") and labels[2].startswith("Adam")
    for r in result["runs"]:
        assert {"label", "optimizer", "hypers", "status", "steps", "loss", "best_loss", "params",
                "grads"} <= set(r)
        assert r["steps"] == 300 and r["status"] == "finished"
    assert result["runs"][1]["hypers"]["momentum"] == 0.9


@pytest.mark.parametrize("spec, flags", [
    ("sgd lr=0.001", ["-o", "sgd", "--lr", "0.001"]),
    ("sgd lr=0.001 momentum=0.9", ["-o", "sgd", "--lr", "0.001", "--momentum", "0.9"]),
    ("sgd lr=0.001 momentum=0.9 nesterov=true", ["-o", "sgd", "--lr", "0.001", "--momentum", "0.9",
                                                  "--nesterov"]),
    ("adam lr=0.02", ["-o", "adam", "--lr", "0.02"]),
    ("adamw lr=0.02 weight_decay=0.1", ["-o", "adamw", "--lr", "0.02", "--weight-decay", "0.1"]),
    ("rmsprop lr=0.01 centered=true", ["-o", "rmsprop", "--lr", "0.01", "--centered"]),
    ("adagrad lr=0.5", ["-o", "adagrad", "--lr", "0.5"]),
])
def test_each_run_of_a_race_equals_gdviz_run_alone(capsys, spec, flags):
    others = ["sgd lr=0.0005", "adam lr=0.05", "rmsprop lr=0.003"]
    code, out, _ = run(capsys, "race", "--preset", "rosenbrock", "--steps", "200", "--json",
                       "--run", others[0], "--run", spec, "--run", others[1], "--run", others[2])
    raced = json.loads(out)["runs"][1]
    code2, out2, _ = run(capsys, "run", "--preset", "rosenbrock", "--steps", "200", "--json", *flags)
    alone = json.loads(out2)
    assert code == code2 == 0
    assert raced["params"] == alone["params"] and raced["loss"] == alone["loss"]


def test_a_sweep_spaces_the_key_logarithmically_and_exits_3_when_one_diverges(capsys, tmp_path):
    board = tmp_path / "board.csv"
    code, out, _ = run(capsys, "race", "--function", "(a - 1)**2 + 10*(b + 2)**2", "--sweep",
                       "sgd lr=1e-4..0.2", "--runs", "5", "--steps", "300", "--out", str(board),
                       "--json")
    result = json.loads(out)
    lrs = [r["hypers"]["lr"] for r in result["runs"]]
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(0.2)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))
    assert result["runs"][-1]["status"] == "diverged" and code == 3
    assert any(r["status"] == "finished" for r in result["runs"])
    with board.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["rank", "label", "optimizer"] and len(rows) == 6
    assert rows[-1][4] == "diverged"  # diverged runs rank last


@pytest.mark.parametrize("argv, message", [
    (["--run", "sgd lr=fast"], "--run 1"),
    (["--run", "sgd wings=2"], "has no option 'wings'"),
    (["--run", "magic lr=1"], "unknown optimizer"),
    (["--run", "sgd nesterov=maybe"], "true or false"),
    (["--sweep", "sgd lr=0..1"], "positive"),
    (["--sweep", "sgd lr=1e-3"], "LOW..HIGH"),
    (["--sweep", "sgd lr=1e-4..1e-1", "--runs", "0"], "--runs"),
    (["--run", "sgd lr=0.1", "--out", "board.txt"], ".csv"),
])
def test_bad_race_input_exits_2_with_one_line(capsys, argv, message):
    code, _, err = run(capsys, "race", "--preset", "bowl", *argv)
    assert code == 2 and "gdviz: error:" in err and message in err and "Traceback" not in err


def test_race_session_round_trip(capsys, tmp_path):
    path = tmp_path / "race.gdviz.json"
    code, _, _ = run(capsys, *RACE[:-1], "--save-session", str(path))
    data = json.loads(path.read_text())
    assert code == 0 and len(data["runs"]) == 3
    assert data["runs"][1]["label"] == "Momentum" and data["runs"][1]["state"]["step"] == 300
    code, out, _ = run(capsys, "race", "--session", str(path), "--steps", "400", "--json")
    result = json.loads(out)
    assert code == 0 and [r["steps"] for r in result["runs"]] == [400, 400, 400]


def test_compare_races_the_windows_six_optimizers(capsys):
    assert main(["race", "--preset", "rosenbrock", "--compare", "--steps", "30", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in result["runs"]] == ["SGD", "Momentum", "Nesterov", "RMSprop",
                                                     "Adam", "AdamW"]
    assert [r["optimizer"] for r in result["runs"]] == ["sgd", "sgd", "sgd", "rmsprop", "adam",
                                                        "adamw"]
    assert all(r["steps"] == 30 for r in result["runs"])
