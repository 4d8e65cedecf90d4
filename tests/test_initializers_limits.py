"""Initial values at their limits: each refusal is an ExpressionError that names the limit,
raised before memory is allocated."""

import tracemalloc

import pytest
import torch

from gdviz.core.errors import ExpressionError
from gdviz.core.initializers import MAX_DIMS, MAX_ELEMENTS, MAX_TEXT, make_initial_value


def make(spec, seed=0):
    return make_initial_value(spec, torch.Generator().manual_seed(seed), field="init")


def refused(spec):
    with pytest.raises(ExpressionError) as info:
        make(spec)
    return info.value


@pytest.mark.parametrize("spec, fragment, column", [
    ("9" * 400, "at most 3.4e38", 1),                      # float() would overflow
    ("-" + "9" * 400, "at most 3.4e38", 1),
    ("9" * 5000, "at most 3.4e38", 1),                     # beyond int's 4,300 digits
    ("full(3, " + "9" * 400 + ")", "at most 3.4e38", 9),
    ("full(3, 1e400)", "at most 3.4e38", 9),
    ("[1, 4e38]", "at most 3.4e38", 5),
    ("-" * 5000 + "1", "nested too deeply", None),         # Python's tree builder recurses
    ("-" * 20000 + "1", "nested too deeply", None),        # Python's parser stack overflows
    ("[" * 199 + "1" + "]" * 199, f"the limit is {MAX_DIMS} levels", MAX_DIMS + 1),
    ("[" * 250 + "1" + "]" * 250, "brackets are nested too deeply", None),
    ("\ud800", "cannot be used", 1),
    ("rand(2)\x00", "cannot be used", 8),
    ("rand(10000000000, 0)", f"at most {MAX_ELEMENTS:,} elements", 6),
    ("zeros(0, 10000000000)", ">= 1", 7),
    ("zeros(3, 0)", ">= 1", 10),
    ("rand(" + ", ".join(["1"] * 1000) + ")", f"the limit is {MAX_DIMS}", 1),
    ("ones(" + ", ".join(["1"] * (MAX_DIMS + 1)) + ")", f"the limit is {MAX_DIMS}", 1),
    ("randn(5000, 5000)", f"the limit is {MAX_ELEMENTS:,}", 1),
    ("rand(" + "9" * 60 + ")", "a size of about 10^59 is too large", 6),
    ("x" * (MAX_TEXT + 1), f"the limit is {MAX_TEXT:,}", None),
    ("[]", "at least one number", 1),
    ("[[[1], [2]], [[3, 4], [5, 6]]]", "rectangular", 1),
    ("full(3, [1, 2])", "must be a number", 9),
    ("-[1, 2]", "expected a number", 1),
])
def test_limits_are_named(spec, fragment, column):
    err = refused(spec)
    assert fragment in str(err), str(err)
    if column is not None:
        assert err.column == column


def test_refusals_allocate_nothing_large():
    tracemalloc.start()
    try:
        for spec in ["zeros(100000, 100000)", "rand(10000000000, 0)", "full(4000, 4000, 1)"]:
            with pytest.raises(ExpressionError):
                make(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("spec, shape", [
    ("[" * MAX_DIMS + "1" + "]" * MAX_DIMS, (1,) * MAX_DIMS),
    ("ones(" + ", ".join(["1"] * MAX_DIMS) + ")", (1,) * MAX_DIMS),
    ("zeros(10000000)", (MAX_ELEMENTS,)),
    ("[[1, 2], [3, -4]]", (2, 2)),
    ("(1, 2, 3)", (3,)),
    ("--2", ()),
    ("-3.4e38", ()),
    ("rand(2,\n 3)", (2, 3)),
    ("  ones(0x3)", (3,)),
])
def test_values_at_the_limits_are_accepted(spec, shape):
    value = make(spec)
    assert tuple(value.shape) == shape and value.dtype == torch.float32


def test_columns_count_characters_and_leading_spaces():
    assert refused("  zeros(3, ä)").column == 12
    assert refused("  ä").column == 3
