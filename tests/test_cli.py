"""The gdviz command: the issue's examples, exit codes and JSON keys."""

import csv
import json
import subprocess
import sys

import pytest

from gdviz.cli import main

SEED_RUN = ["run", "--function", "X + 1", "--loss", "(3 - y)**2 / 2", "--param", "X=rand(1)",
            "--optimizer", "sgd", "--lr", "1e-3", "--steps", "10000", "--seed", "0", "--json"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_run_json(capsys):
    code, out, _ = run(capsys, *SEED_RUN)
    result = json.loads(out)
    assert code == 0
    assert set(result) >= {"status", "steps", "loss", "params", "grads", "device", "optimizer",
                           "elapsed_s", "steps_per_s"}
    assert result["status"] == "finished" and result["steps"] == 10000
    assert f"{result['params']['X'][0]:.4f}" == "1.9999"
    assert result["device"] == "cpu" and result["optimizer"]["name"] == "sgd"


def test_seed_grad_json(capsys):
    code, out, _ = run(capsys, "grad", "--function", "2*x**2 + 3", "--param", "x=full((2,3), 4)", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["y"] == [[35.0] * 3] * 2 and result["grads"]["x"] == [[16.0] * 3] * 2
    assert result["grad_fn"] == "AddBackward0" and result["loss_summed"] is True
    assert set(result) == {"y", "loss", "params", "grads", "grad_fn", "loss_summed"}


def test_grad_text_mentions_summing(capsys):
    code, out, _ = run(capsys, "grad", "-f", "2*x**2 + 3", "-p", "x=full((2,3), 4)")
    assert code == 0 and "grad_fn=AddBackward0" in out and "summed" in out and "16" in out


def test_preset_with_history_csv(capsys, tmp_path):
    out_file = tmp_path / "history.csv"
    code, out, _ = run(capsys, "run", "--preset", "rosenbrock", "--optimizer", "adam", "--lr", "0.01",
                       "--steps", "2000", "--out", str(out_file))
    assert code == 0 and "finished after 2000 steps" in out
    with out_file.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "loss", "a", "b", "grad a", "grad b"]
    assert len(rows) == 2001 and rows[1][:4] == ["0", "12.5", "-1.5", "2.0"]


def test_history_json(capsys, tmp_path):
    out_file = tmp_path / "h.json"
    code, _, _ = run(capsys, "run", "-f", "w[0]**2 + w[1]**2", "-p", "w=[1, 2]", "--steps", "3",
                     "--out", str(out_file))
    data = json.loads(out_file.read_text())
    assert code == 0 and len(data["rows"]) == 3
    assert data["rows"][0] == {"step": 0, "loss": 5.0, "w[0]": 1.0, "w[1]": 2.0,
                               "grad w[0]": 2.0, "grad w[1]": 4.0}


def test_flags_override_preset(capsys):
    code, out, _ = run(capsys, "run", "--preset", "bowl", "--steps", "7", "--json")
    assert json.loads(out)["steps"] == 7 and code == 0


def test_freeze(capsys):
    code, out, _ = run(capsys, "run", "-f", "w*t", "-l", "(y - 6)**2", "-p", "w=1", "-p", "t=3",
                       "--freeze", "t", "--steps", "5", "--json")
    result = json.loads(out)
    assert result["grads"]["t"] is None and result["params"]["t"] == 3.0


@pytest.mark.parametrize("argv, message", [
    (["run", "-f", "X + 1", "-l", "y + z"], "unknown name 'z' in loss at column 5; the parameters are X"),
    (["run", "-f", "X +"], "syntax error"),
    (["run", "-f", "X + 1", "-p", "Q=1"], "'Q' is not in the function; its parameters are X"),
    (["run", "-f", "x**2", "--device", "cuda"], "CUDA was asked for"),
    (["run", "-f", "x**2", "-o", "adam", "--momentum", "0.9"], "--momentum does not apply to adam"),
    (["run", "--preset", "nope"], "unknown preset"),
    (["run", "-f", "x", "--lr", "-1"], "lr must be between"),
    (["run"], "give a function"),
    (["run", "--steps", "abc", "-f", "x"], "invalid int value"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    if "cuda" in argv:
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, _, err = run_catching(capsys, argv)
    assert code == 2
    assert "gdviz: error: " in err and message in err and "Traceback" not in err


def run_catching(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_divergence_exits_3(capsys):
    code, out, _ = run(capsys, "run", "-f", "x**2", "-p", "x=1", "--lr", "1.5", "--steps", "1000", "--json")
    result = json.loads(out)
    assert code == 3 and result["status"] == "diverged" and "diverged at step" in result["message"]


def test_converged_exits_0(capsys):
    code, out, _ = run(capsys, "run", "-f", "x**2", "-p", "x=1", "--lr", "0.1", "--tol", "1e-6", "--json")
    assert code == 0 and json.loads(out)["status"] == "converged"


def test_session_save_and_continue(capsys, tmp_path):
    path = tmp_path / "s.gdviz.json"
    run(capsys, "run", "--preset", "seed-linear", "--steps", "4000", "--save-session", str(path), "--json")
    code, out, _ = run(capsys, "run", "--session", str(path), "--steps", "10000", "--json")
    result = json.loads(out)
    assert code == 0 and result["steps"] == 10000
    assert f"{result['params']['X'][0]:.4f}" == "1.9999"


def test_broken_session_names_the_field(capsys, tmp_path):
    path = tmp_path / "s.gdviz.json"
    path.write_text(json.dumps({"format": "gdviz-session", "version": 1, "function": "x", "steps": "many"}))
    code, _, err = run(capsys, "run", "--session", str(path))
    assert code == 2 and "steps: must be a whole number" in err


def test_presets_lists_descriptions(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0 and "rosenbrock" in out and "valley" in out


def test_python_dash_m_is_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "gdviz", "run", "-f", "x +", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("gdviz: error:")


def test_adam_session_continues_exactly(capsys, tmp_path):
    path = tmp_path / "adam.gdviz.json"
    main(["run", "--preset", "rosenbrock", "--steps", "300", "--save-session", str(path), "--json"])
    capsys.readouterr()
    main(["run", "--session", str(path), "--steps", "600", "--json"])
    continued = json.loads(capsys.readouterr().out)
    main(["run", "--preset", "rosenbrock", "--steps", "600", "--json"])
    straight = json.loads(capsys.readouterr().out)
    assert continued["params"]["a"] == pytest.approx(straight["params"]["a"], abs=1e-6)
    assert continued["params"]["b"] == pytest.approx(straight["params"]["b"], abs=1e-6)


def test_no_display_is_a_clear_error(capsys, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    code = main([])
    assert code == 2 and "no display" in capsys.readouterr().err
