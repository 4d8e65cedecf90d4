"""Fuzzing initial values: texts from their grammar, mutated byte by byte, give a float32
tensor of at most MAX_ELEMENTS elements or an ExpressionError, never anything else."""

import time

import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

from gdviz.core.errors import ExpressionError
from gdviz.core.initializers import MAX_ELEMENTS, make_initial_value

_NUMBER = st.one_of(st.integers(-1000, 1000).map(str), st.floats(-1e6, 1e6).map(repr),
                    st.floats().map(repr), st.integers().map(str),
                    st.sampled_from(["1e400", "9" * 400, "-" * 50 + "1", "0x10", "1_0", "True"]))
_SIZE = st.one_of(st.integers(0, 40), st.sampled_from([10**7, 10**10, -1, 3000]))
_SHAPE = st.lists(_SIZE.map(str), min_size=0, max_size=10)


def _list(children):
    return st.lists(children, min_size=0, max_size=4).map(lambda xs: f"[{', '.join(xs)}]")


_CALL = st.one_of(
    st.tuples(st.sampled_from(["rand", "randn", "zeros", "ones", "foo", "full"]), _SHAPE,
              st.booleans())
    .map(lambda t: f"{t[0]}({'(' if t[2] else ''}{', '.join(t[1])}{')' if t[2] else ''})"),
    st.tuples(_SHAPE, _NUMBER).map(lambda t: f"full(({', '.join(t[0] + [''])}), {t[1]})"),
    st.sampled_from(["rand", "randn", "", "  rand(1)  ", "os.system", "'a'"]),
)
init_texts = st.one_of(_CALL, st.recursive(_NUMBER, _list, max_leaves=12))
_ALPHABET = st.one_of(st.sampled_from(list("()[],.-+ 0123456789e_xj\t\n") +
                                      ["\x00", "\ud800", "é", "\u2028"]), st.characters())


@st.composite
def mutated(draw):
    text = draw(init_texts)
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if kind == "insert":
            text = text[:at] + draw(_ALPHABET) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1:]
        elif kind == "replace":
            text = text[:at] + draw(_ALPHABET) + text[at + 1:]
        else:
            end = draw(st.integers(at, min(len(text), at + 6)))
            text = text[:at] + text[at:end] * draw(st.integers(2, 2000)) + text[end:]
    return text


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_initial_value_is_a_small_float32_tensor_or_an_expression_error(text):
    start = time.perf_counter()
    try:
        value = make_initial_value(text, torch.Generator().manual_seed(0))
    except ExpressionError as err:
        assert str(err)
        event("refused")
    else:
        event("accepted")
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float32
        assert 1 <= value.numel() <= MAX_ELEMENTS and value.dim() <= 8
        assert torch.isfinite(value).all()
    assert time.perf_counter() - start < 1.0
