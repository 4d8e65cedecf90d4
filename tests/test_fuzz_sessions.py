"""Fuzzing the session file boundary: valid sessions, then one field made hostile.

Valid session dicts come from a strategy (a problem, its runs, optionally trained a few
steps and saved, so that states and histories are real); then one field, anywhere in the
tree, is replaced by a hostile value (a wrong type, a huge number, NaN, nested lists, odd
text), removed, or joined by an unknown one. Whatever comes of it:

- ``Session.from_dict`` returns a session or raises SessionError;
- what loads builds (``Simulation``) and trains one step, or raises a GdvizError;
- what loads is written back (``to_dict``) and read again with the same meaning;
- what gdviz itself writes after training reloads and builds, never refused.

The strategies are shared with ``benchmarks/fuzz.py``, which runs them for minutes.
"""

from __future__ import annotations

import copy
import functools
import json
import math

from hypothesis import HealthCheck, event, given, settings, strategies as st

from gdviz.core.errors import GdvizError, SessionError
from gdviz.core.optimizers import OPTIMIZERS
from gdviz.core.session import Session
from gdviz.core.simulation import Simulation

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# --- valid sessions ----------------------------------------------------------------------

#: (function, loss, {name: init}); frozen parameters are chosen by the strategy
PROBLEMS = [
    ("a**2 + b**2", None, {"a": "1", "b": "-2"}),
    ("(1 - a)**2 + 100*(b - a**2)**2", None, {"a": "-1.5", "b": "2"}),
    ("X + 1", "(3 - y)**2 / 2", {"X": "rand(1)"}),
    ("sum(w**2)", None, {"w": "rand(3)"}),
    ("w*t", "(y - 6)**2", {"w": "1", "t": "3"}),
    ("x[0]*x[1] + sum(m**2)", None, {"x": "[1, 2]", "m": "full((2, 2), 0.5)"}),
    ("log(1 + a**2) + sqrt(b**2 + 1)", None, {"a": "randn(2)", "b": "0.5"}),
]


@st.composite
def hypers(draw, optimizer: str) -> dict:
    out = {}
    for hyper in OPTIMIZERS[optimizer].hypers:
        if not draw(st.booleans()):
            continue
        if hyper.kind == "bool":
            value = draw(st.booleans())
            if hyper.name == "nesterov":
                value = False  # needs momentum and no dampening; not worth steering
            out[hyper.name] = value
        else:
            low, high = hyper.minimum, min(hyper.maximum, 10.0 if hyper.name == "lr" else 1.0)
            out[hyper.name] = draw(st.floats(low, high, allow_nan=False))
    return out


@st.composite
def run_dicts(draw) -> dict:
    optimizer = draw(st.sampled_from(sorted(OPTIMIZERS)))
    run: dict = {"optimizer": {"name": optimizer, **draw(hypers(optimizer))}}
    if draw(st.booleans()):
        run["label"] = draw(st.text(max_size=12))
    if draw(st.booleans()):
        run["color"] = "#%06x" % draw(st.integers(0, 0xFFFFFF))
    if draw(st.integers(0, 4)) == 0:
        run["visible"] = False
    return run


@st.composite
def fresh_sessions(draw) -> dict:
    """A valid version 2 session that has not been run."""
    function, loss, inits = draw(st.sampled_from(PROBLEMS))
    frozen = draw(st.sets(st.sampled_from(sorted(inits)), max_size=len(inits) - 1))
    data: dict = {"format": "gdviz-session", "version": 2, "function": function,
                  "params": {n: {"init": i, "frozen": n in frozen} for n, i in inits.items()},
                  "steps": draw(st.integers(0, 40)),
                  "tol": draw(st.one_of(st.none(), st.floats(0, 10), st.just("inf"))),
                  "seed": draw(st.one_of(st.integers(0, 10), st.integers(0, 2**63 - 1))),
                  "device": "cpu"}
    if loss:
        data["loss"] = loss
    if draw(st.booleans()):
        data["name"] = draw(st.text(max_size=20))
    if draw(st.integers(0, 3)) == 0:
        low = draw(st.floats(-100, 100))
        data["landscape"] = {"x": [low, low + draw(st.floats(0.5, 50))]}
    runs = draw(st.lists(run_dicts(), min_size=1, max_size=3))
    data["runs"] = runs
    data["selected"] = draw(st.integers(0, len(runs) - 1))
    return data


@functools.lru_cache(maxsize=512)
def _trained(text: str, steps: int) -> str:
    session = Session.from_dict(json.loads(text))
    sim = Simulation(session)
    sim.run(steps)
    return json.dumps(sim.snapshot().to_dict())


@st.composite
def valid_sessions(draw) -> dict:
    """A valid session as gdviz writes it: fresh, or trained a few steps (with optimizer
    states, histories, statuses), or written in the version 1 layout."""
    data = draw(fresh_sessions())
    kind = draw(st.sampled_from(["fresh", "trained", "trained", "version 1"]))
    if kind == "fresh":
        return data
    data = json.loads(_trained(json.dumps(data), draw(st.integers(1, 6))))
    if kind == "version 1":
        run = data.pop("runs")[data.pop("selected")]
        data["version"] = 1
        data.update({k: v for k, v in run.items() if k in ("optimizer", "state", "history")})
    return data


# --- hostile values and mutations ---------------------------------------------------------

def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


# Every draw is a new object (st.builds, not st.just): a later mutation may change it.
HOSTILE = st.one_of(
    st.none(), st.booleans(),
    st.integers(-10, 10), st.integers(),
    st.sampled_from([-1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**9, 10**9 + 1, 10**400,
                     -(10**400), 10**5000]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 3.5e38]),
    st.text(max_size=8), st.sampled_from(["nan", "inf", "-inf", "Infinity", "1e400", "9" * 400,
                                          "\ud800", "x" * 100_000, "", " ", "#12345z",
                                          "rand(10000000000)", "__import__('os')", "-x",
                                          "sgd", "adam", "cuda:99"]),
    st.lists(st.one_of(st.integers(), st.floats(), st.none(), st.text(max_size=3)), max_size=4),
    st.sampled_from([9, 33, 200, 900]).map(_nested), st.builds(lambda: [[1, 2], [3]]),
    st.builds(list), st.builds(dict),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=3),
                                                    st.none()), max_size=3),
)


def paths(tree, prefix=(), limit=4):
    """Every place in a decoded JSON tree (lists: their first ``limit`` items)."""
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from paths(value, prefix + (key,), limit)
    elif isinstance(tree, list):
        for index, value in enumerate(tree[:limit]):
            yield from paths(value, prefix + (index,), limit)


def _similar(value):
    """A value of the same kind as ``value`` but at an edge: keeps the structure valid
    enough to reach the checks behind the first one."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.sampled_from([0, -1, value + 1, value - 1, 2**31, 10**9, 10**9 + 1]),
                         st.integers())
    if isinstance(value, float):
        return st.one_of(st.floats(), st.sampled_from([0.0, -value, value * 1e30, 1e-30]))
    if isinstance(value, str):
        return st.one_of(st.sampled_from(["nan", "inf", "-inf", value + value, value[:1], ""]),
                         st.text(max_size=6))
    return HOSTILE


@st.composite
def mutated_sessions(draw) -> dict:
    """A valid session with one to three fields changed for the worse."""
    data = copy.deepcopy(draw(valid_sessions()))
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(data))
        where = draw(st.sampled_from(places))
        if not where:
            if draw(st.booleans()):
                return draw(HOSTILE)
            continue
        parent = data
        for key in where[:-1]:
            parent = parent[key]
        key = where[-1]
        kind = draw(st.sampled_from(["replace", "replace", "similar", "delete", "add", "wrap"]))
        if kind == "replace":
            parent[key] = draw(HOSTILE)
        elif kind == "similar":
            parent[key] = draw(_similar(parent[key]))
        elif kind == "delete":
            del parent[key]
        elif kind == "wrap":
            parent[key] = [parent[key]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "x", "step", "state", "0", "exp_avg"]))] = \
                draw(HOSTILE)
        else:
            parent.append(draw(HOSTILE))
    return data


# --- the properties -----------------------------------------------------------------------

def _meaning(session: Session) -> dict:
    return json.loads(json.dumps(session.to_dict()))


def check_session(data) -> str:
    """Load, write back and reload, build, train one step, save and reload what gdviz wrote.
    Returns how far it got; raises AssertionError (or the unexpected exception) when a
    property breaks. Shared with benchmarks/fuzz.py (which also times the refusals)."""
    try:
        session = Session.from_dict(data)
    except SessionError as err:
        assert str(err)
        return "refused by the loader"
    written = _meaning(session)
    again = Session.from_dict(json.loads(json.dumps(written)))
    assert _meaning(again) == written, "a saved session reads back differently"
    try:
        sim = Simulation(session)
        sim.run(1)
    except GdvizError as err:
        assert str(err)
        return "refused when built"
    saved = sim.snapshot().to_dict()
    reloaded = Session.from_dict(json.loads(json.dumps(saved)))
    assert _meaning(reloaded) == json.loads(json.dumps(saved)), "gdviz's own file changed"
    Simulation(reloaded)  # gdviz's own file is never refused
    return "loaded, built and trained"


@FUZZ
@given(valid_sessions())
def test_valid_sessions_load_build_train_and_round_trip(data):
    assert check_session(data) != "refused by the loader"


@FUZZ
@given(mutated_sessions())
def test_mutated_sessions_load_or_are_refused_with_a_session_error(data):
    event(check_session(data))
