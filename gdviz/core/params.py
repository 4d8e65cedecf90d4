"""How a parameter starts: plain data shared by the problem, sessions and the window."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INIT = "rand(1)"
DEFAULT_LOSS = "y"


@dataclass
class ParamSpec:
    """An initializer text (see :mod:`.initializers`) and whether the parameter is frozen."""

    init: str = DEFAULT_INIT
    frozen: bool = False
