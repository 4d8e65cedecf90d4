"""Before Qt aborts for want of a system library, gdviz names the libraries (issue #8)."""

import argparse

from gdviz.cli import display_check, gui

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
"""


def test_the_libraries_ldd_cannot_find_are_named_with_their_packages():
    missing = display_check.not_found(LDD)
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"]
    text = display_check.advice(missing)
    assert "apt-get install libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0" in text
    assert "libxcb-icccm.so.4" in text


def test_this_machine_has_every_library_the_plugin_needs():
    # the test machine runs Qt on xcb under Xvfb: nothing is reported missing here
    assert display_check.plugin_files(), "PySide6's xcb plugin was not found"
    assert display_check.missing_libraries() == []


def test_the_app_stops_with_the_advice_instead_of_a_qt_abort(monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(display_check, "missing_libraries", lambda: ["libxcb-keysyms.so.1"])
    assert gui.main(argparse.Namespace(file=None)) == 2
    err = capsys.readouterr().err
    assert "gdviz: error: Qt cannot open a window" in err and "libxcb-keysyms1" in err
