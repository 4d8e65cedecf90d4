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
    session = load_preset("rosenbrock").with_changes(state={"step": 3, "values": {"a": 1.0, "b": 2.0}})
    path = tmp_path / "s.gdviz.json"
    session.save(path)
    again = Session.load(path)
    assert again == session


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
