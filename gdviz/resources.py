"""The one module that knows where gdviz's resources (presets, icons, styles) live.

In a source checkout or an editable install they sit in ``resources/`` beside the
package; an installed wheel carries them as ``gdviz/resources/``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def resources_dir() -> Path:
    for candidate in (_HERE / "resources", _HERE.parent / "resources"):
        if (candidate / "presets").is_dir():
            return candidate
    raise FileNotFoundError("gdviz's resources folder is missing; reinstall gdviz")
