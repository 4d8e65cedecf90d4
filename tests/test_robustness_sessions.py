"""Issue #14, sessions: hostile session files are refused with a message that names the
field (never a traceback), and what gdviz writes it reads back with the same meaning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gdviz.cli import main
from gdviz.core.errors import GdvizError, SessionError
from gdviz.core.presets import load_preset
from gdviz.core.problem import ParamSpec
from gdviz.core.session import Session, apply_overrides, check_seed, check_tol
from gdviz.core.simulation import Simulation

HEAD = '{"format": "gdviz-session", "version": 2, "function": "a**2 + b**2", '


def load_text(tmp_path, text: str) -> Session:
    path = tmp_path / "f.gdviz.json"
    path.write_text(text)
    return Session.load(path)


def refused(tmp_path, text: str) -> SessionError:
    with pytest.raises(SessionError) as info:
        load_text(tmp_path, text)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 400
    return info.value


def trained(steps=5, optimizer="adam", **changes) -> dict:
    session = load_preset("rosenbrock").with_changes(steps=steps, **changes)
    session = apply_overrides(session, optimizer=optimizer)
    sim = Simulation(session)
    sim.run()
    return sim.snapshot().to_dict()


# --- deep and huge JSON ------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),        # RecursionError in json
    ("{\"a\": " * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
    (HEAD + '"seed": ' + "9" * 5001 + "}", "seed"),            # beyond int's 4,300 digits
    (HEAD + '"steps": -' + "9" * 5001 + "}", "steps"),
    (HEAD + '"params": {"a": "1", "b": "2"}, "runs": [{"state": {"step": 1, "values": '
     '{"a": ' + "[" * 900 + "1" + "]" * 900 + ', "b": 2}}}]}', "nested too deeply (more than"),
])
def test_deep_and_huge_json_is_refused_cleanly(tmp_path, text, fragment):
    assert fragment in str(refused(tmp_path, text))


@pytest.mark.parametrize("digits", [310, 400, 401, 5001])
def test_a_whole_number_beyond_a_double_reads_as_infinity_at_any_length(tmp_path, digits):
    # 1e400 reads as infinity; so does the same number written out in full
    session = load_text(tmp_path, HEAD + '"tol": ' + "9" * digits + "}")
    assert session.tol == math.inf
    err = refused(tmp_path, HEAD + '"runs": [{"optimizer": {"name": "sgd", "lr": '
                  + "9" * digits + "}}]}")
    assert err.field == "runs[0].optimizer" and "got inf" in str(err)


def test_huge_python_ints_from_a_caller_never_escape_as_value_errors():
    base = {"format": "gdviz-session", "version": 2, "function": "x"}
    for change in ({"format": 10**5000}, {"version": 10**5000}, {"version": -(10**400)},
                   {"runs": [{"optimizer": {"name": "sgd", "lr": 10**5000}}]},
                   {"selected": 10**5000}, {"seed": 10**5000}):
        with pytest.raises(SessionError) as info:
            Session.from_dict({**base, **change})
        assert len(str(info.value)) < 300
    assert Session.from_dict({**base, "tol": 10**5000}).tol == math.inf
    state = {"step": 1, "values": {"x": [10**400]}}
    session = Session.from_dict({**base, "runs": [{"state": state}]})
    assert session.runs[0].values["x"].tolist() == [math.inf]


# --- optimizer state of the wrong type, shape, keys or step --------------------------------

@pytest.mark.parametrize("change, field", [
    ({"step": "x"}, "runs[0].state.optimizer.step"),
    ({"step": True}, "runs[0].state.optimizer.step"),
    ({"step": -1}, "runs[0].state.optimizer.step"),
    ({"step": 2.5}, "runs[0].state.optimizer.step"),
    ({"exp_avg": {"a": True, "b": [True]}}, "runs[0].state.optimizer.exp_avg.a"),
    ({"exp_avg": "x"}, "runs[0].state.optimizer.exp_avg"),
    ({"exp_avg": {"a": "x", "b": 1}}, "runs[0].state.optimizer.exp_avg.a"),
    ({"exp avg": {"a": 1, "b": 1}}, "runs[0].state.optimizer.exp avg"),
])
def test_bad_optimizer_states_name_the_field(change, field):
    data = trained()
    data["runs"][0]["state"]["optimizer"].update(change)
    with pytest.raises(SessionError) as info:
        Session.from_dict(data)
    assert info.value.field == field, str(info.value)


def test_a_400_digit_optimizer_step_is_refused(tmp_path):
    data = trained()
    text = json.dumps(data).replace('"optimizer": {"step": 5', '"optimizer": {"step": '
                                    + "9" * 400)
    assert refused(tmp_path, text).field == "runs[0].state.optimizer.step"


@pytest.mark.parametrize("change, why", [
    ({"exp_avg": {"a": [1.0, 2.0, 3.0], "b": 1.0}}, "has shape (3,)"),   # wrong shape
    ({"exp_avg": {"zz": 1.0, "b": 1.0}}, "has nothing for a"),            # wrong names
    ({"momentum_buffer": {"a": 1.0, "b": 1.0}}, "does not use"),          # another optimizer's
    ({"step": 6}, "past the run's (5)"),                                  # more updates than steps
])
def test_an_optimizer_state_that_does_not_fit_is_dropped_with_a_warning(change, why):
    data = trained()
    data["runs"][0]["state"]["optimizer"].update(change)
    session = Session.from_dict(data)
    sim = Simulation(session)
    assert any(why in w and "fresh optimizer state" in w for w in session.warnings), \
        session.warnings
    run = sim.runset.runs[0]
    assert run.step == 5 and run.optimizer_state is None
    sim.run(3)
    assert sim.runset.runs[0].step == 5  # the limit
    reloaded = Session.from_dict(json.loads(json.dumps(sim.snapshot().to_dict())))
    Simulation(reloaded)


def test_a_version_1_state_with_unicode_digits_is_refused_not_a_value_error():
    v1 = {"format": "gdviz-session", "version": 1, "function": "a**2 + b**2",
          "params": {"a": "1", "b": "2"}, "optimizer": "adam",
          "state": {"step": 2, "values": {"a": 1, "b": 2}, "optimizer": {"²": {"exp_avg": 1}}}}
    with pytest.raises(SessionError, match="state.optimizer"):
        Session.from_dict(v1)


# --- histories --------------------------------------------------------------------------

@pytest.mark.parametrize("history, field", [
    ({"columns": ["step", "loss"], "rows": ["abc"]}, "runs[0].history.rows[0]"),
    ({"columns": ["step", "loss"], "rows": [[0, 1], [1]]}, "runs[0].history.rows[1]"),
    ({"columns": ["step"], "rows": [[0]]}, "runs[0].history.columns"),
    ({"columns": ["step", "loss"], "rows": [[None, 1]]}, "runs[0].history.rows"),
    ({"columns": ["step", "loss"], "rows": [[1.5, 1]]}, "runs[0].history.rows"),
    ({"columns": ["step", "loss"], "rows": [[2, 1], [1, 1]]}, "runs[0].history.rows"),
    ({"columns": ["step", "loss"], "rows": [["x", 1]]}, "runs[0].history.rows"),
    ({"columns": ["step", "loss"]}, "runs[0].history"),
    ({"columns": "step", "rows": []}, "runs[0].history"),
])
def test_bad_histories_name_the_field(history, field):
    data = {"format": "gdviz-session", "version": 2, "function": "a**2",
            "runs": [{"state": {"step": 5, "values": {"a": 1}}, "history": history}]}
    with pytest.raises(SessionError) as info:
        Session.from_dict(data)
    assert info.value.field == field, str(info.value)


def test_a_history_past_the_runs_step_is_refused():
    # it would come back out of order once the run goes on from its step
    data = trained(steps=6)
    data["runs"][0]["state"]["step"] = 2
    data["runs"][0]["state"]["optimizer"]["step"] = 2
    with pytest.raises(SessionError, match="past the run's step") as info:
        Session.from_dict(data)
    assert info.value.field == "runs[0].history.rows"


def test_a_run_continued_after_converging_is_saved_and_reopened():
    # Converged at step 3 (its resting row is recorded), then continued with no tolerance:
    # the engine records step 3 again. The file must still open.
    session = Session(function="a**2 + b**2", params={"a": ParamSpec("1"), "b": ParamSpec("-2")},
                      steps=20, tol=4.5)
    sim = Simulation(session)
    sim.run()
    assert sim.runset.runs[0].step == 3
    again = Simulation(sim.snapshot().with_changes(tol=None))
    again.run()
    saved = again.snapshot().to_dict()
    steps = [row[0] for row in saved["runs"][0]["history"]["rows"]]
    assert steps[-1] == 19 and sorted(steps) == steps
    reopened = Session.from_dict(json.loads(json.dumps(saved)))
    assert reopened.to_dict() == saved
    Simulation(reopened)


# --- wrong types and huge numbers anywhere -------------------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"runs": [{"optimizer": {"name": ["adam"]}}]}, "runs[0].optimizer.name"),
    ({"runs": [{"optimizer": {"name": "sgd", "lr": "fast"}}]}, "runs[0].optimizer"),
    ({"runs": [{"optimizer": {"name": "sgd", "lr": [0.1]}}]}, "runs[0].optimizer"),
    ({"runs": [{"optimizer": {"name": "sgd", "nesterov": 1}}]}, "runs[0].optimizer"),
    ({"runs": [{"optimizer": 3}]}, "runs[0].optimizer"),
    ({"runs": [{"label": ["x"]}]}, "runs[0].label"),
    ({"runs": [{"start": {"a": "one"}}]}, "runs[0].start.a"),
    ({"runs": [{"state": {"step": 1, "values": {"a": {"x": 1}}}}]}, "runs[0].state.values.a"),
    ({"params": {"a": {"init": 3}}}, "params.a.init"),
    ({"params": {"a": {"frozen": "yes"}}}, "params.a.frozen"),
    ({"params": {"1a": "1"}}, "params.1a"),
    ({"landscape": {"x": [-1e400, 1]}}, "landscape.x"),
    ({"tol": "-inf"}, "tol"), ({"tol": [0.1]}, "tol"), ({"tol": "nan"}, "tol"),
    ({"steps": 2147483648}, "steps"), ({"steps": 10**9 + 1}, "steps"), ({"steps": 1e3}, "steps"),
    ({"seed": 2**64}, "seed"), ({"seed": -1}, "seed"), ({"seed": "0"}, "seed"),
    ({"device": ["cpu"]}, "device"), ({"name": "\udcff"}, "name"), ({"name": "x" * 201}, "name"),
    ({"selected": True}, "selected"), ({"runs": [{}] * 1025}, "runs"),
])
def test_wrong_types_and_huge_numbers_name_the_field(change, field):
    data = {"format": "gdviz-session", "version": 2, "function": "a**2", **change}
    with pytest.raises(SessionError) as info:
        Session.from_dict(data)
    assert info.value.field == field, str(info.value)
    assert len(str(info.value)) < 400


def test_400_digit_values_read_as_infinity_and_a_run_there_is_stopped(tmp_path):
    text = (HEAD + '"params": {"a": "1", "b": "2"}, "runs": [{"state": {"step": 1, "values": '
            '{"a": ' + "9" * 400 + ', "b": 2}}}]}')
    session = load_text(tmp_path, text)
    assert session.runs[0].values["a"] == math.inf
    sim = Simulation(session)
    sim.run(1)
    run = sim.runset.runs[0]
    assert run.status.value == "diverged" and "outside the function's domain" in run.message


# --- what gdviz writes it reads back ---------------------------------------------------------

def test_an_optimizer_state_holding_infinity_reloads_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "g.gdviz.json"
    assert main(["run", "--function", "1e20*x", "--optimizer", "adagrad", "--steps", "5",
                 "--save-session", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["runs"][0]["state"]["optimizer"]["sum"]["x"] == ["inf"]
    again = Session.load(path)
    assert np.isinf(again.runs[0].optimizer_state.tensors["sum"]["x"]).all()
    assert again.to_dict() == data
    capsys.readouterr()
    assert main(["run", "--session", str(path), "--steps", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 8


def test_tol_inf_is_saved_and_read_back_as_inf(tmp_path, capsys):
    path = tmp_path / "t.gdviz.json"
    assert main(["run", "-f", "x**2", "--tol", "inf", "--steps", "5",
                 "--save-session", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["tol"] == "inf" and Session.load(path).tol == math.inf
    assert main(["run", "--session", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "converged"


@pytest.mark.parametrize("flag, value, field, check", [
    ("--tol", "-1", "tol", lambda: check_tol(-1.0, "tol")),
    ("--seed", "-1", "seed", lambda: check_seed(-1, "seed")),
    ("--seed", str(2**64), "seed", lambda: check_seed(2**64, "seed")),
    ("--steps", "2147483648", "steps", None),
])
def test_flags_are_refused_by_the_loaders_rule(tmp_path, capsys, flag, value, field, check):
    code = main(["run", "-f", "x**2", flag, value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"gdviz: error: --{field}: ")
    path = tmp_path / "s.gdviz.json"
    path.write_text(json.dumps({"format": "gdviz-session", "version": 2, "function": "x**2",
                                field: json.loads(value)}))
    with pytest.raises(SessionError) as info:
        Session.load(path)
    # the same rule, word for word
    assert err.strip().endswith(str(info.value).split(": ", 1)[1])
    if check is not None:
        with pytest.raises(SessionError):
            check()
    if field == "seed":
        assert "0 to 2**63 - 1" in err


def test_a_session_that_fails_to_build_is_a_gdviz_error_not_a_crash():
    data = {"format": "gdviz-session", "version": 2, "function": "a**2",
            "runs": [{"start": {"a": [1, 2, 3]}}]}
    with pytest.raises(GdvizError, match="has 3 elements"):
        Simulation(Session.from_dict(data))
