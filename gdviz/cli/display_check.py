"""Whether Qt's X11 (xcb) platform plugin can load, asked before Qt is: without one of its
system libraries Qt aborts the process with a message that names none of them.

``ldd`` on the plugin lists each shared library it needs and marks those that are
"not found"; the app names them and the Debian/Ubuntu packages that provide them.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

#: the libraries whose package name does not follow the usual rule
_PACKAGES = {"libGL.so.1": "libgl1", "libEGL.so.1": "libegl1", "libGLX.so.0": "libglx0",
             "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
             "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
             "libdbus-1.so.3": "libdbus-1-3", "libfontconfig.so.1": "libfontconfig1",
             "libfreetype.so.6": "libfreetype6"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def plugin_files() -> list[Path]:
    """Qt's xcb platform plugin and the library that holds most of it, as PySide6 ships
    them (empty when PySide6 is not found)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(list(spec.submodule_search_locations)[0]) / "Qt"
    files = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6XcbQpa.so.6"]
    return [f for f in files if f.exists()]


def not_found(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` could not find, in order, each once."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def package_of(library: str) -> str:
    """The Debian/Ubuntu package that usually provides ``library`` (libxcb-icccm.so.4:
    libxcb-icccm4; libxkbcommon-x11.so.0: libxkbcommon-x11-0)."""
    if library in _PACKAGES:
        return _PACKAGES[library]
    stem, _, version = library.partition(".so.")
    version = version.split(".")[0]
    stem = stem.lower()
    return f"{stem}-{version}" if stem[-1:].isdigit() else f"{stem}{version}"


def missing_libraries() -> list[str]:
    """The shared libraries Qt's xcb plugin needs that this system lacks (empty when all
    are there, or when it cannot tell: no ldd, no PySide6)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    missing: list[str] = []
    for path in plugin_files():
        try:
            out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return []
        missing += not_found(out.stdout)
    return list(dict.fromkeys(missing))


def advice(missing: list[str]) -> str:
    packages = " ".join(dict.fromkeys(package_of(lib) for lib in missing))
    return (f"Qt cannot open a window on this display: the system libraries its X11 plugin "
            f"needs are missing: {', '.join(missing)}. Install them (Debian/Ubuntu: "
            f"apt-get install {packages}); gdviz run, race, grad and graph work without them")
