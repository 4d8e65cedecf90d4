"""The ``gdviz`` command: a thin shell over gdviz.core (and the desktop app when no
sub-command is given). One module per command; the parser is built here.

Exit codes: 0 finished or converged, 3 diverged, 2 bad input (never a traceback),
130 interrupted (Ctrl-C; what was done so far is written).
"""

from __future__ import annotations

import sys
from typing import Sequence

from .. import __version__
from ..core.errors import GdvizError
from . import grad, graph, gui, presets, race, run
from .options import EXIT_INTERRUPTED, Parser, fail, join_text_values

COMMANDS = (run, race, grad, graph, presets, gui)


def build_parser() -> Parser:
    parser = Parser(prog="gdviz", description="Watch gradient descent and autograd at work. "
                    "With no command, opens the desktop app.")
    parser.add_argument("--version", action="version", version=f"gdviz {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = join_text_values(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", gui.main)
    try:
        return handler(args)
    except GdvizError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("gdviz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
