"""``gdviz presets``: the bundled examples."""

from __future__ import annotations

import argparse

from .options import EXIT_OK


def add_parser(sub) -> None:
    p = sub.add_parser("presets", help="list the bundled examples")
    p.set_defaults(handler=main)


def main(_args: argparse.Namespace) -> int:
    from ..core.presets import all_presets

    presets = all_presets()
    width = max(len(n) for n, _ in presets)
    for name, session in presets:
        print(f"{name:<{width}}  {session.description}")
    return EXIT_OK
