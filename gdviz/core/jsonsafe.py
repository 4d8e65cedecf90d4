"""Numbers in JSON: the one place that decides how NaN and infinity are written.

JSON has no NaN or infinity. Reports printed for people and programs (``--json``, graph
exports) write them as null. Files gdviz reads back (sessions) write them as the strings
"nan", "inf" and "-inf", so what is saved reads back with the same meaning: a tolerance of
infinity stays infinity, an optimizer state holding infinity stays infinity.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_TEXT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
         "-infinity": -math.inf}


def plain(value: Any, nonfinite: str = "null") -> Any:
    """``value`` (numbers, numpy arrays and scalars, tensors' ``tolist()``, nested lists,
    dicts) as JSON-ready data. ``nonfinite`` is "null" or "text"."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if nonfinite == "null":
            return None
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): plain(v, nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, nonfinite) for v in value]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def huge_as_inf(value: Any) -> Any:
    """A whole number beyond a double's range as the infinity it rounds to (as JSON's 1e400
    reads); any other value as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return value


def number(value: Any) -> float | None:
    """A JSON value read back as a float: numbers, null (NaN) and the texts "nan", "inf",
    "-inf". None when it is none of these."""
    if isinstance(value, bool):
        return None
    if value is None:
        return math.nan
    if isinstance(value, int):
        return float(huge_as_inf(value))
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return _TEXT.get(value.strip().lower())
    return None
