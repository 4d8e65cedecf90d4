"""gdviz.core must never import Qt: the CLI and the tests use it without a display."""

import ast
import pathlib
import subprocess
import sys

import gdviz.core

CORE = pathlib.Path(gdviz.core.__file__).parent
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "PyQt5", "PyQt6")


def test_no_qt_import_statement_in_core():
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_importing_core_and_cli_loads_no_qt():
    code = ("import sys, pkgutil, importlib, gdviz.core, gdviz.cli\n"
            "for m in pkgutil.iter_modules(gdviz.core.__path__): importlib.import_module('gdviz.core.' + m.name)\n"
            f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
