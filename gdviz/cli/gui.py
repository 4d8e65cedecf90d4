"""``gdviz`` (or ``gdviz gui FILE``): the desktop app."""

from __future__ import annotations

import argparse
import os
import sys

from .options import fail


def add_parser(sub) -> None:
    p = sub.add_parser("gui", help="open the desktop app")
    p.add_argument("file", nargs="?", help="a session file to open")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort with a cryptic plugin message; say what to do instead.
        return fail("no display to open the window on (DISPLAY is not set). Run gdviz on a "
                    "desktop, or start a virtual screen (Xvfb :99 & export DISPLAY=:99); "
                    "gdviz run, race, grad and graph work without one")
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY") and \
            os.environ.get("QT_QPA_PLATFORM", "xcb").startswith("xcb"):
        from .display_check import advice, missing_libraries

        missing = missing_libraries()
        if missing:  # Qt itself would abort with a message that names none of them
            return fail(advice(missing))
    try:
        from ..qt.app import main as gui_main
    except ImportError as exc:
        return fail(f"the desktop app cannot start: {exc}. Install gdviz with its GUI "
                    "dependencies (pip install gdviz), or use gdviz run / grad")
    return gui_main(getattr(args, "file", None))
