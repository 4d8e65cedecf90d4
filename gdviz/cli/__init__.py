"""The ``gdviz`` command: a thin shell over gdviz.core (and the desktop app when no
sub-command is given). One module per command; the parser is built here.

Exit codes: 0 finished or converged, 3 diverged, 2 bad input (never a traceback),
130 interrupted (Ctrl-C; what was done so far is written).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Sequence


def _interrupted_while_loading(*_args) -> None:
    # Loading torch and numpy takes a second or two. A KeyboardInterrupt raised in there can
    # be swallowed ("Exception ignored in ... _get_module_lock") and the command would go on
    # as if Ctrl-C had not been pressed, or it ends in a traceback. Nothing has been
    # written yet, so stopping at once is safe.
    os.write(2, b"gdviz: interrupted\n")
    os._exit(130)


_previous = None
if threading.current_thread() is threading.main_thread() \
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    _previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
try:
    from .. import __version__
    from ..core.errors import GdvizError
    from . import basin, curvature, grad, graph, gui, lr_find, presets, race, run
    from .options import EXIT_INTERRUPTED, Parser, fail, join_text_values
finally:
    if _previous is not None:
        signal.signal(signal.SIGINT, _previous)

COMMANDS = (run, race, grad, graph, basin, lr_find, curvature, presets, gui)


def build_parser() -> Parser:
    parser = Parser(prog="gdviz", description="Watch gradient descent and autograd at work. "
                    "With no command, opens the desktop app.")
    parser.add_argument("--version", action="version", version=f"gdviz {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = join_text_values(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        handler = getattr(args, "handler", gui.main)
        return handler(args)
    except GdvizError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("gdviz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
