import json

import pytest

from gdviz.core.errors import GdvizError, SessionError
from gdviz.core.presets import load_preset, preset_names
from gdviz.core.session import Session


def test_every_preset_loads_and_builds():
    names = preset_names()
    for required in ["seed-linear", "seed-autograd", "rosenbrock", "himmelblau", "beale", "bowl",
                     "saddle"]:
        assert required in names
    for name in names:
        session = load_preset(name)
        assert session.description
        session.build_problem()


def test_unknown_preset():
    with pytest.raises(GdvizError, match="unknown preset"):
        load_preset("nope")


def test_round_trip(tmp_path):
    import numpy as np
    from gdviz.core.simulation import Simulation

    sim = Simulation(load_preset("rosenbrock").with_changes(steps=30))
    sim.run()
    session = sim.snapshot()
    path = tmp_path / "s.gdviz.json"
    session.save(path)
    again = Session.load(path)
    assert again.to_dict() == session.to_dict()
    run = again.runs[0]
    assert run.step == 30 and run.optimizer_state.step == 30
    assert np.array_equal(run.history, session.runs[0].history)


def write(tmp_path, data):
    path = tmp_path / "bad.gdviz.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD = {"format": "gdviz-session", "version": 1, "function": "x**2"}


@pytest.mark.parametrize("change, field", [
    ({"version": 99}, "version"),
    ({"version": "1"}, "version"),
    ({"format": "other"}, "format"),
    ({"function": 3}, "function"),
    ({"steps": -1}, "steps"),
    ({"optimizer": {"name": "magic"}}, "optimizer.name"),
    ({"optimizer": {"name": "sgd", "lr": "fast"}}, "optimizer"),
    ({"params": {"x": {"init": 3}}}, "params.x.init"),
    ({"landscape": {"x": [2, 1]}}, "landscape.x"),
    ({"colour": "red"}, "colour"),
])
def test_malformed_sessions_name_the_field(tmp_path, change, field):
    with pytest.raises(SessionError) as info:
        Session.load(write(tmp_path, {**GOOD, **change}))
    assert info.value.field == field and field in str(info.value)


def test_not_json(tmp_path):
    with pytest.raises(SessionError, match="not valid JSON"):
        Session.load(write(tmp_path, "{oops"))


def test_missing_function(tmp_path):
    with pytest.raises(SessionError, match="function: missing"):
        Session.load(write(tmp_path, {"format": "gdviz-session", "version": 1}))


# --- the file boundary: whatever a file holds, a message naming the field, never a traceback

import math

import numpy as np

from gdviz.core.simulation import Simulation

V2 = {"format": "gdviz-session", "version": 2, "function": "x**2 + y2", "params": {"x": "1", "y2": "2"}}


def load_dict(tmp_path, data):
    path = tmp_path / "f.gdviz.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return Session.load(path)


@pytest.mark.parametrize("runs, field", [
    ([{"optimizer": {"name": ["adam"]}}], "runs[0].optimizer.name"),
    ([{"optimizer": {"name": "sgd", "lr": 10**400}}], "runs[0].optimizer"),
    ([{"state": {"step": -1, "values": {}}}], "runs[0].state.step"),
    ([{"state": {"step": 10**400, "values": {}}}], "runs[0].state.step"),
    ([{"state": {"step": 1, "values": {"x": "one"}}}], "runs[0].state.values.x"),
    ([{"state": {"step": 1, "values": {"x": [1, [2]]}}}], "runs[0].state.values.x"),
    ([{"state": {"step": 1, "values": {"x": True}}}], "runs[0].state.values.x"),
    ([{"history": {"columns": ["step", "loss"], "rows": ["x"]}}], "runs[0].history.rows[0]"),
    ([{"history": {"columns": ["step", "loss"], "rows": [[0, 1], [1]]}}], "runs[0].history.rows[1]"),
    ([{"history": {"columns": ["step", "loss"], "rows": [[1, 1], [0, 2]]}}], "runs[0].history.rows"),
    ([{"history": {"columns": ["step"], "rows": []}}], "runs[0].history.columns"),
    ([{"color": "red"}], "runs[0].color"),
    ([{"optimizer": "adam", "wings": 2}], "runs[0].wings"),
    ([], "runs"),
    ("adam", "runs"),
])
def test_malformed_runs_name_the_field(tmp_path, runs, field):
    with pytest.raises(SessionError) as info:
        load_dict(tmp_path, {**V2, "runs": runs})
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize("change, field", [
    ({"tol": 10**400}, None), ({"tol": -1}, "tol"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"),
    ({"steps": 2147483648}, "steps"), ({"steps": True}, "steps"), ({"selected": 3}, "selected"),
    ({"name": "\ud800"}, "name"), ({"device": "tpu"}, "device"),
])
def test_numbers_and_texts_out_of_range(tmp_path, change, field):
    if field is None:  # a 400-digit tolerance is infinity, which is a tolerance
        assert load_dict(tmp_path, {**V2, **change}).tol == math.inf
        return
    with pytest.raises(SessionError) as info:
        load_dict(tmp_path, {**V2, **change})
    assert info.value.field == field


def test_deep_or_huge_json_is_refused_cleanly(tmp_path):
    with pytest.raises(SessionError, match="nested too deeply"):
        load_dict(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(SessionError, match="seed"):
        load_dict(tmp_path, '{"format": "gdviz-session", "version": 2, "function": "x", '
                            '"seed": ' + "9" * 5001 + "}")


def test_what_gdviz_writes_it_reads_back_with_the_same_meaning(tmp_path):
    # Adagrad on a steep function: its accumulated sum overflows to infinity.
    from gdviz.core.problem import ParamSpec

    s = Session(function="1e20*x", params={"x": ParamSpec("1")}).with_changes(steps=5)
    s.runs[0].optimizer = "adagrad"
    sim = Simulation(s.with_changes(tol=None))
    sim.run()
    saved = sim.snapshot().with_changes(tol=math.inf)
    path = tmp_path / "g.gdviz.json"
    saved.save(path)
    again = Session.load(path)
    assert again.tol == math.inf
    state = again.runs[0].optimizer_state
    assert np.isinf(state.tensors["sum"]["x"]).all()
    Simulation(again)  # builds: its own file is never refused


def test_a_state_saved_for_another_optimizer_is_dropped_with_a_warning(tmp_path):
    from gdviz.core.session import apply_overrides

    session = apply_overrides(load_preset("rastrigin").with_changes(steps=20),
                              hypers={"momentum": 0.9}, optimizer="sgd")
    sim = Simulation(session)
    sim.run()
    data = sim.snapshot().to_dict()
    data["runs"][0]["optimizer"] = {"name": "adam", "lr": 0.01}  # as the old bug wrote it
    data["steps"] = 40
    again = Session.from_dict(data)
    reopened = Simulation(again)
    assert any("fresh optimizer state" in w for w in again.warnings)
    run = reopened.runset.runs[0]
    assert run.step == 20 and run.optimizer_state is None
    reopened.run(5)
    assert reopened.runset.runs[0].step == 25


def test_apply_overrides_drops_a_state_that_does_not_fit_the_new_optimizer():
    from gdviz.core.session import apply_overrides

    sim = Simulation(load_preset("rosenbrock").with_changes(steps=20))
    sim.run()
    saved = sim.snapshot()
    switched = apply_overrides(saved, optimizer="rmsprop", run_index=0)
    run = switched.runs[0]
    assert run.optimizer == "rmsprop" and run.optimizer_state is None and run.step == 20
    again = Simulation(switched)
    again.run()
    assert again.runset.runs[0].step == 20  # the limit: nothing more, but no error


def test_a_new_function_drops_the_starts_of_parameters_it_no_longer_has():
    from gdviz.core.params import ParamSpec
    from gdviz.core.session import RunRecord, apply_overrides

    session = Session(function="a*x**2 + b", params={"a": ParamSpec("1"), "b": ParamSpec("0")},
                      runs=[RunRecord("sgd", {"lr": 0.01}),
                            RunRecord("adam", {"lr": 0.1},
                                      start={"a": np.array(2.0), "b": np.array(-1.0)})])
    edited = apply_overrides(session, function="w*x**2 + b",
                             params={"w": ParamSpec("1"), "b": ParamSpec("0")})
    assert set(edited.runs[1].start) == {"b"}            # a is gone; b's start stays
    Simulation(edited).run(3)                            # and the problem loads and runs
    reinit = apply_overrides(session, params={"a": ParamSpec("1"), "b": ParamSpec("5")})
    assert set(reinit.runs[1].start) == {"a"}            # b's initial value changed
    assert session.runs[1].start.keys() == {"a", "b"}    # the original is untouched


def test_version_1_files_still_open(tmp_path):
    v1 = {"format": "gdviz-session", "version": 1, "function": "a**2 + b**2",
          "params": {"a": {"init": "1"}, "b": {"init": "2"}},
          "optimizer": {"name": "adam", "lr": 0.1}, "steps": 50,
          "state": {"step": 3, "values": {"a": 0.7, "b": 1.7},
                    "optimizer": {"0": {"step": {"tensor": 3.0, "dtype": "float32"},
                                        "exp_avg": {"tensor": 0.1, "dtype": "float32"},
                                        "exp_avg_sq": {"tensor": 0.01, "dtype": "float32"}},
                                  "1": {"step": {"tensor": 3.0, "dtype": "float32"},
                                        "exp_avg": {"tensor": 0.2, "dtype": "float32"},
                                        "exp_avg_sq": {"tensor": 0.02, "dtype": "float32"}}}}}
    session = load_dict(tmp_path, v1)
    sim = Simulation(session)
    run = sim.runset.runs[0]
    assert run.step == 3 and run.optimizer_state.tensors["exp_avg"]["b"] == pytest.approx(0.2)
    sim.run()
    assert sim.runset.runs[0].step == 50
