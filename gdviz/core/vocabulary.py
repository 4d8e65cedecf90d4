"""The words the expression language already uses, without importing torch (data column
names are checked against them before torch has loaded). tests/test_data.py checks that
they match :mod:`.expressions`."""

FUNCTION_NAMES = frozenset({
    "sin", "cos", "tan", "exp", "log", "log1p", "sqrt", "abs", "tanh", "sigmoid", "relu",
    "softplus", "sum", "mean", "min", "max", "clamp", "mse", "mae", "huber", "bce",
    "bce_logits", "stack"})
CONSTANT_NAMES = frozenset({"pi", "e"})
#: the function's value and the loss's name
RESERVED_NAMES = frozenset({"y", "loss"})
