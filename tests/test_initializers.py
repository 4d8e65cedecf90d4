import pytest
import torch

from gdviz.core.errors import ExpressionError
from gdviz.core.initializers import make_initial_value


def make(spec, seed=0):
    return make_initial_value(spec, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec, shape", [
    ("0.5", ()), ("[1, 2]", (2,)), ("[[1, 2], [3, 4]]", (2, 2)), ("rand", (1,)), ("rand(3)", (3,)),
    ("randn(2, 3)", (2, 3)), ("zeros((2,3))", (2, 3)), ("ones(4)", (4,)), ("full((2,3), 4)", (2, 3)),
    ("", (1,)),
])
def test_shapes(spec, shape):
    value = make(spec)
    assert tuple(value.shape) == shape and value.dtype == torch.float32


def test_full_is_float_and_filled():
    assert make("full((2,3), 4)").tolist() == [[4.0] * 3] * 2


def test_seed_reproduces_the_notebook_draw():
    assert make("rand(1)").item() == pytest.approx(0.4963, abs=1e-4)
    assert torch.equal(make("randn(5)", seed=3), make("randn(5)", seed=3))
    assert not torch.equal(make("randn(5)", seed=3), make("randn(5)", seed=4))


@pytest.mark.parametrize("spec", ["rand(-1)", "full(3)", "foo(2)", "[[1], [1, 2]]", "os.system",
                                  "rand(2.5)", "'a'", "rand(100000, 100000)"])
def test_bad_specs(spec):
    with pytest.raises(ExpressionError):
        make(spec)
