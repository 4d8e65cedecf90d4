"""The Help menu's texts: the expression language, the keyboard, and About."""

from __future__ import annotations

import html
import platform

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from .. import __version__

SHORTCUTS = [
    ("Space", "Play / Pause"),
    ("Right arrow", "Step (as many steps as the box beside Step says); on a scrubbed "
                    "timeline, the next recorded step"),
    ("Left arrow / Home / End", "While paused: the timeline a recorded step back / to the "
                                "first step / to live"),
    ("R", "Reset every run to its start"),
    ("Ctrl+Z / Ctrl+Shift+Z", "Undo a reset, a change of problem, a click on the landscape "
                              "or a removal of runs / redo it"),
    ("Ctrl+O / Ctrl+S / Ctrl+Shift+S", "Open / Save / Save As a session"),
    ("Ctrl+Q", "Quit"),
    ("Wheel, drag", "Zoom and pan the landscape and the computation graph"),
    ("Click on the landscape", "Start every run from there"),
    ("Double-click a run's name or colour", "Rename it, recolour it"),
]


def language_html(functions: dict[str, str]) -> str:
    """The expression language, for people: what can be typed, with examples."""
    rows = "".join(f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(text)}</td></tr>"
                   for name, text in sorted(functions.items()))
    return f"""
<h3>The function and the loss</h3>
<p>Type math in your parameters: every free name is a parameter, and the table of
parameters fills itself. The loss is written in <code>y</code> (the function's value) and the
parameters; leave it as <code>y</code> to minimize the function itself. A loss that is not a
single number is summed.</p>
<p>Numbers, <code>+ - * / ** %</code>, unary minus, parentheses, <code>pi</code>, <code>e</code>,
and integer indexing of a parameter: <code>w[0]</code>, <code>x[1, 2]</code>. An optional
<code>y =</code> or <code>loss =</code> in front is fine.</p>
<table cellpadding="3">{rows}</table>
<h3>Examples</h3>
<ul>
<li><code>X + 1</code> with loss <code>(3 - y)**2 / 2</code>: the seed notebook, X goes to 2</li>
<li><code>(1 - a)**2 + 100*(b - a**2)**2</code>: Rosenbrock's curved valley</li>
<li><code>(a**2 + b - 11)**2 + (a + b**2 - 7)**2</code>: Himmelblau's four minima</li>
<li><code>2*x**2 + 3</code> with <code>x = full((2,3), 4)</code>: every gradient is 16</li>
</ul>
<h3>Initial values</h3>
<p><code>0.5</code>, <code>[1, 2]</code>, <code>rand</code>, <code>rand(3)</code>,
<code>randn(2, 3)</code>, <code>zeros(4)</code>, <code>ones((2,2))</code>,
<code>full((2,3), 4)</code>. The seed makes random starts repeatable. Tick <i>Frozen</i> to keep
a parameter fixed. Limits: 10,000 characters for an expression, 8 dimensions and 10 million
elements for a parameter.</p>
"""


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
                   for k, v in SHORTCUTS)
    return f"<h3>Keyboard and mouse</h3><table cellpadding='4'>{rows}</table>"


def about_html(versions: dict[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in versions.items())
    return (f"<h3>gdviz {__version__}</h3><p>Watch gradient descent and autograd at work on "
            f"the functions you type.</p><table cellpadding='3'>{rows}</table>")


def versions(torch_version: str | None, device: str) -> dict[str, str]:
    import numpy
    import pyqtgraph
    import PySide6

    return {"gdviz": __version__, "Python": platform.python_version(),
            "torch": torch_version or "loading…", "Qt (PySide6)": PySide6.__version__,
            "pyqtgraph": pyqtgraph.__version__, "numpy": numpy.__version__, "device": device}


def show_text(parent: QWidget, title: str, body: str) -> QDialog:
    """A non-modal window with rich text (closes with its button or Escape)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    layout = QVBoxLayout(dialog)
    browser = QTextBrowser(objectName="helpText")
    browser.setHtml(body)
    browser.setOpenExternalLinks(False)
    layout.addWidget(browser)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout.addWidget(buttons)
    dialog.resize(620, 560)
    dialog.show()
    return dialog
