"""Fuzzing the compiler: grammar-made texts mutated byte by byte, and a differential test of
values and gradients against sympy."""

import math
import time

import sympy
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

from gdviz.core.errors import ExpressionError
from gdviz.core.expressions import FUNCTIONS, MAX_LENGTH, compile_expression

FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --- (a) texts from the grammar, then mutated ------------------------------------------

_NAMES = ["x", "w", "y", "pi", "e", "loss", "w[0]", "w[1, 2]", "w[-1]"]
_NUMBERS = st.one_of(st.integers(0, 10**6).map(str), st.floats(0, 1e6).map(repr),
                     st.floats(allow_nan=False).map(repr), st.sampled_from(["1e400", "9" * 400,
                                                                            "0x1f", "1_000"]))
_FUNCTIONS = sorted(FUNCTIONS) + ["foo", "__import__", "eval"]


def _text(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "%", "^", "//", "<", ","]),
                  children).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        children.map(lambda s: f"({s})"),
        st.tuples(st.sampled_from(["-", "+", "--", "not ", "~"]), children).map("".join),
        st.tuples(st.sampled_from(_FUNCTIONS), st.lists(children, min_size=0, max_size=3))
        .map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


def _valid(children):
    """Only what the language accepts (given the right shapes)."""
    def call(t):
        name, args = t
        spec = FUNCTIONS[name]
        args = args[:spec.max_args] + [args[0]] * (spec.min_args - len(args))
        return f"{name}({', '.join(args)})"

    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "%"]), children)
        .map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        children.map(lambda s: f"({s})"),
        children.map(lambda s: f"-{s}"),
        st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(children, min_size=1, max_size=3))
        .map(call),
    )


_LEAF = st.one_of(st.sampled_from(_NAMES), st.sampled_from(["x", "w"]), _NUMBERS)
grammar_texts = st.one_of(st.recursive(_LEAF, _valid, max_leaves=12),
                          st.recursive(_LEAF, _text, max_leaves=12))

# bytes a user (or a paste) might bring: brackets, operators, quotes, odd Unicode
_ODD = ["\x00", "\n", "\ud800", "\u2028", "é", "α", "１", "\x7f"]
_ALPHABET = st.one_of(st.sampled_from(list("()[]{}+-*/%^<>=!,.:;'\"#@&|~ \t0123456789xyzw_eE")
                                      + _ODD), st.characters())


@st.composite
def mutated(draw, texts):
    text = draw(texts)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if kind == "insert":
            text = text[:at] + draw(_ALPHABET) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1:]
        elif kind == "replace":
            text = text[:at] + draw(_ALPHABET) + text[at + 1:]
        else:  # repeat a slice many times: long sums, deep nesting, huge numbers
            end = draw(st.integers(at, min(len(text), at + 8)))
            text = text[:at] + text[at:end] * draw(st.integers(2, 3000)) + text[end:]
    return text


@FUZZ
@given(mutated(grammar_texts), st.sampled_from(["function", "loss"]))
def test_compile_returns_or_raises_expression_error(text, field):
    variables = None if field == "function" else ["x", "w", "y"]
    start = time.perf_counter()
    try:
        expr = compile_expression(text, field, variables=variables, reserved=("y", "loss"))
    except ExpressionError as err:
        assert str(err)
        event("refused")
        expr = None
    assert time.perf_counter() - start < 1.0
    if expr is not None:  # what compiles either trains a step or is explained
        event("compiled")
        env = {n: torch.tensor([0.5, -1.5, 2.0]) for n in expr.names}
        try:
            expr.check(env, backward=True)
        except ExpressionError:
            event("compiled, then refused by check")


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(1, MAX_LENGTH), st.sampled_from(["-", "(", "x+", "x**", "sin(", "1", "+-",
                                                    "[", "x[0]*", "-(", "e"]))
def test_repeated_patterns_up_to_the_length_limit(count, pattern):
    text = (pattern * count)[:MAX_LENGTH - 1] + "x"
    try:
        compile_expression(text)
    except ExpressionError:
        pass


# --- (b) values and gradients against sympy ---------------------------------------------

_x, _z, _w0, _w1, _w2 = sympy.symbols("x z w0 w1 w2")
_LEAVES = [("x", _x), ("z", _z), ("w[0]", _w0), ("w[1]", _w1), ("w[-1]", _w2),
           ("sum(w)", _w0 + _w1 + _w2), ("mean(w)", (_w0 + _w1 + _w2) / 3),
           ("2", sympy.Integer(2)), ("0.5", sympy.Rational(1, 2)), ("pi", sympy.pi)]
_SMOOTH = {"sin": sympy.sin, "cos": sympy.cos, "tanh": sympy.tanh, "exp": sympy.exp,
           "sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
           "softplus": lambda u: sympy.log(1 + sympy.exp(u))}


def _smooth(children):
    def binary(t):
        (a, sa), op, (b, sb) = t
        if op == "/":  # a denominator that cannot vanish
            return f"({a}) / (2 + ({b})**2)", sa / (2 + sb**2)
        return f"({a}) {op} ({b})", {"+": sa + sb, "-": sa - sb, "*": sa * sb}[op]

    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(binary),
        st.tuples(st.sampled_from(sorted(_SMOOTH)), children)
        .map(lambda t: (f"{t[0]}({t[1][0]})", _SMOOTH[t[0]](t[1][1]))),
        st.tuples(children, st.integers(2, 3))
        .map(lambda t: (f"({t[0][0]})**{t[1]}", t[0][1] ** t[1])),
        children.map(lambda c: (f"-({c[0]})", -c[1])),
    )


smooth_expressions = st.recursive(st.sampled_from(_LEAVES), _smooth, max_leaves=6)
_point = st.floats(-1.5, 1.5, allow_nan=False)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(smooth_expressions, st.tuples(*[_point] * 5))
def test_values_and_gradients_agree_with_sympy(pair, point):
    text, reference = pair
    values = dict(zip([_x, _z, _w0, _w1, _w2], point))
    expr = compile_expression(text, "loss", variables=["x", "z", "w"])
    env = {"x": torch.tensor(point[0], dtype=torch.float64, requires_grad=True),
           "z": torch.tensor(point[1], dtype=torch.float64, requires_grad=True),
           "w": torch.tensor(point[2:], dtype=torch.float64, requires_grad=True)}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # so constants such as sin(2) are float64 too
    try:
        out = expr.evaluate(env)
    finally:
        torch.set_default_dtype(previous)
    expected = float(reference.evalf(subs=values))
    got = float(out.detach())
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (text, got, expected)
    if not out.requires_grad:
        return
    out.backward()
    grads = {_x: env["x"].grad, _z: env["z"].grad}
    grads.update(zip([_w0, _w1, _w2], env["w"].grad if env["w"].grad is not None else [None] * 3))
    for symbol, got in grads.items():
        want = float(sympy.diff(reference, symbol).evalf(subs=values))
        got = 0.0 if got is None else float(got)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (text, symbol, got, want)
