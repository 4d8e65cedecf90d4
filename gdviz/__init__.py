"""gdviz: watch gradient descent and autograd at work on the functions you type."""

__version__ = "0.1.0"
