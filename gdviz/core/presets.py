"""The bundled examples in resources/presets: one session JSON file each."""

from __future__ import annotations

import json

from ..resources import resources_dir
from .errors import GdvizError, SessionError
from .session import Session


def preset_names() -> list[str]:
    """Names of the bundled presets: the two seed notebooks first, then by name."""
    names = sorted(p.name[:-5] for p in (resources_dir() / "presets").glob("*.json"))
    return sorted(names, key=lambda n: (not n.startswith("seed-"), n != "seed-linear", n))


def load_preset(name: str) -> Session:
    if name not in preset_names():  # never a path: "../x" or a name too long for the disk
        shown = name if len(name) <= 40 else name[:39] + "…"
        raise GdvizError(f"unknown preset '{shown}'; the presets are {', '.join(preset_names())}")
    path = resources_dir() / "presets" / f"{name}.json"
    try:
        session = Session.from_dict(json.loads(path.read_text(encoding="utf-8")), preset=True)
    except (json.JSONDecodeError, SessionError) as exc:
        raise GdvizError(f"the bundled preset '{name}' is broken: {exc}") from None
    session.name = session.name or name
    return session


def all_presets() -> list[tuple[str, Session]]:
    return [(name, load_preset(name)) for name in preset_names()]
