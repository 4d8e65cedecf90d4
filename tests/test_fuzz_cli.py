"""Fuzzing the command line: gdviz's own ``main`` in this process, with flags drawn from
valid values and hostile ones (and session files that are valid or mutated).

Whatever the flags, the exit code is 0, 2 or 3 (finished, bad input, diverged); on 2 the
error is one ``gdviz: error:`` line, and there is never a traceback. The strategies are
shared with ``benchmarks/fuzz.py --cli``.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings, strategies as st

from gdviz.cli import main
from gdviz.core.presets import preset_names
from test_fuzz_sessions import PROBLEMS, mutated_sessions, valid_sessions

FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

_BIG = "9" * 400
#: values every flag may get, whatever it expects
_ANY = st.one_of(st.sampled_from(["", " ", "-1", "0", "nan", "inf", "-inf", "1e400", _BIG,
                                  "abc", "\udcff", "x" * 5000, "--json", "-x", "2**64"]),
                 st.text(max_size=6))
# valid values are drawn more often than hostile ones, so that runs get to train
_NUMBER = st.one_of(st.floats(0, 1).map(repr), st.floats(0, 1).map(repr), st.floats().map(repr),
                    st.integers(-10, 10).map(str), _ANY)
_STEPS = st.one_of(st.integers(0, 30).map(str), st.integers(0, 30).map(str),
                   st.integers(0, 30).map(str), st.sampled_from(
    ["-1", "2147483648", "1000000001", "1e3", "18446744073709551616", _BIG]), _ANY)
_SEED = st.one_of(st.integers(0, 2**63 - 1).map(str), st.integers(0, 9).map(str), st.sampled_from(
    ["-1", str(2**63), str(2**64), _BIG]), _ANY)
_FUNCTIONS = st.one_of(st.sampled_from([f for f, _, _ in PROBLEMS]),
                       st.sampled_from(["x**2", "sum(x**2)", "w*x", "-x"]), st.sampled_from(
    ["-x", "x**2", "1 % x", "clamp(x, w, 3)", "x*(-8)**(1/3)", "x + " + _BIG, "sum(x)",
     "x" * 10_001, "-" * 6000 + "x", "(" * 300 + "x" + ")" * 300, "log(x)", "x/0", "y",
     "__import__('os')", "x.real", "1", "x[5]"]), _ANY)
_VALID_INITS = st.sampled_from(["1", "rand(3)", "[1, 2]", "zeros(2, 2)", "full(3, 0.5)",
                                "randn(2)", "-2.5"])
_INITS = st.one_of(_VALID_INITS, _VALID_INITS,
                   st.sampled_from([_BIG, "full(3, " + _BIG + ")", "-" * 5000 + "1",
                                    "[" * 199 + "1" + "]" * 199, "\ud800", "zeros(0)",
                                    "rand(" + ", ".join(["1"] * 1000) + ")", "rand(100000000)",
                                    "x" * 200_000]), _ANY)
_RUN_SPECS = st.one_of(st.sampled_from(["sgd", "adam lr=0.1", "sgd lr=0.01 momentum=0.9",
                                        "rmsprop centered=true label=R", "adagrad eps=1e-8"]),
                       st.sampled_from(["magic", "sgd lr=abc", "sgd momentum=2", "adam beta1",
                                        "sgd nesterov=maybe", '"unclosed', "sgd lr=" + _BIG]),
                       _ANY)


@st.composite
def argvs(draw) -> list[str]:
    """An argument list for run, race, grad or graph. ``{tmp}`` stands for a fresh folder;
    ``{session}`` for a session file written there."""
    command = draw(st.sampled_from(["run", "run", "run", "race", "grad", "graph"]))
    argv = [command]
    source = draw(st.sampled_from(["function", "function", "preset", "session"]))
    if source == "function":
        argv += ["--function", draw(_FUNCTIONS)]
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(["x", "w", "a", "X", "q"]))
            argv += ["--param", f"{name}={draw(_INITS)}"]
        if draw(st.booleans()):
            argv += ["--loss", draw(st.one_of(st.sampled_from(["(y - 1)**2", "y", "z", "sum(y)",
                                                               "y + x"]), _ANY))]
    elif source == "preset":
        argv += ["--preset", draw(st.one_of(st.sampled_from(preset_names()), _ANY))]
    else:
        argv += ["--session", "{session}"]
    if command in ("run", "race"):  # always a small step limit: a huge one trains for minutes
        argv += ["--steps", draw(_STEPS)]
    flags = {
        "--seed": _SEED, "--device": st.sampled_from(["cpu", "cpu", "tpu", "cuda:x"]),
        "--freeze": st.sampled_from(["x", "w", "a", "q"]),
    }
    if command == "run":
        flags.update({"--optimizer": st.one_of(st.sampled_from(["sgd", "adam", "adamw",
                                                                "rmsprop", "adagrad"]), _ANY),
                      "--lr": _NUMBER, "--momentum": _NUMBER, "--beta1": _NUMBER,
                      "--eps": _NUMBER, "--amsgrad": st.just(None),
                      "--out": st.sampled_from(["{tmp}/h.csv", "{tmp}/h.json", "{tmp}/h.txt",
                                                "{tmp}/missing/h.csv", "{tmp}/" + "n" * 300])})
    if command == "race":
        flags.update({"--run": _RUN_SPECS, "--sweep": st.one_of(
            st.sampled_from(["sgd lr=1e-4..1e-1", "adam lr=0..1", "sgd lr=a..b", "sgd"]), _ANY),
            "--runs": st.one_of(st.integers(0, 4).map(str), st.sampled_from(["-1", "5000"]))})
    if command in ("run", "race"):
        flags.update({"--json": st.just(None), "--tol": _NUMBER, "--fps": _NUMBER,
                      "--frames": _STEPS, "--scale": _NUMBER,
                      "--save-session": st.sampled_from(["{tmp}/s.gdviz.json", "{tmp}/no/s.json"]),
                      "--plot": st.sampled_from(["loss", "foo=x.png", "loss=x.gif", "loss=",
                                                 "graph={tmp}/no/g.svg"]),
                      "--animation": st.sampled_from(["{tmp}/a.avi", "{tmp}/no/a.gif", "a"])})
    if command == "graph":
        flags["--out"] = st.sampled_from(["{tmp}/g.json", "{tmp}/g.dot", "{tmp}/g.txt"])
    chosen = draw(st.lists(st.sampled_from(sorted(flags)), max_size=4, unique=True))
    for flag in chosen:
        value = draw(flags[flag])
        argv += [flag] if value is None else [flag, value]
    return argv


def check_argv(argv: list[str], session_data=None) -> str:
    """Run gdviz with ``argv``; assert the exit code and the shape of the error. Returns
    "exit N". Shared with benchmarks/fuzz.py."""
    with tempfile.TemporaryDirectory() as tmp:
        session_file = Path(tmp) / "in.gdviz.json"
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # a hostile session may hold a 5,000-digit number
        try:
            session_file.write_text(json.dumps(session_data if session_data is not None else
                                               {"format": "gdviz-session", "version": 2,
                                                "function": "x**2", "steps": 5}))
        finally:
            sys.set_int_max_str_digits(limit)
        argv = [a.replace("{tmp}", tmp).replace("{session}", str(session_file)) for a in argv]
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own errors
                code = exc.code
        err_text = err.getvalue()
        assert "Traceback" not in err_text, err_text
        assert code in (0, 2, 3), (code, err_text[-500:])
        if code == 2:
            lines = [line for line in err_text.splitlines() if line.startswith("gdviz: error:")]
            assert len(lines) == 1, err_text[-500:]
            assert len(lines[0]) < 600, "a huge bad value was echoed whole"
    return f"exit {code}"


@FUZZ
@given(argvs(), st.one_of(valid_sessions(), mutated_sessions()))
def test_any_flags_exit_0_2_or_3_with_one_error_line(argv, session_data):
    event(check_argv(argv, session_data))
