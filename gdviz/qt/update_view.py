"""The Update tab: the optimizer's update rule at the step shown, with its numbers.

One row per quantity of the rule (for Adam: g, m, v, m̂, v̂, the effective rate η, the step
Δθ and the new θ), the rule written out with its constants, and the value for each
parameter element (the first few of a large tensor). The numbers are the core's
:func:`~gdviz.core.analysis.explain.explain_update`, which the tests hold to torch.optim's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

#: elements shown at most (a tensor's first ones)
MAX_ELEMENTS = 6


def number(value: float) -> str:
    """Eight significant digits: enough to compare with torch's float32 by eye."""
    return f"{value:.8g}"


class UpdateView(QWidget):
    """See the module docstring; :meth:`show_step` takes the inspector's StepView."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("updateView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel(objectName="updateTitle")
        self.title.setWordWrap(True)
        self.table = QTableWidget(objectName="updateTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        self.view = None
        self.show_step(None)

    def show_step(self, view, note: str = "") -> None:
        """The update of ``view`` (a StepView), or ``note`` when there is none."""
        self.view = view
        explanation = view.explanation if view is not None else None
        if explanation is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            why = view.note if view is not None else note or \
                "Pause the run (or scrub back on the timeline) to see an update with its numbers."
            step = f"<b>Step {view.step:,}</b>: " if view is not None else ""
            self.title.setText(step + why)
            return
        names = view.names[:MAX_ELEMENTS]
        more = len(view.names) - len(names)
        self.title.setText(
            f"<b>Step {view.step:,}</b>: {explanation.title()}. "
            + (f"The first {len(names)} of {len(view.names):,} elements." if more else ""))
        headers = ["", "rule"] + names + ["note"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(explanation.lines))
        # Formulas in a serif face: it reads as math, and it draws the hats of m̂ and v̂
        # (some sans faces here drop the combining circumflex).
        math_font = QFont(self.font())
        math_font.setFamilies(["DejaVu Serif", "Cambria Math", "Times New Roman", "serif"])
        math_font.setStyleHint(QFont.StyleHint.Serif)
        bold_math = QFont(math_font)
        bold_math.setBold(True)
        for r, line in enumerate(explanation.lines):
            cells = [line.symbol, line.formula] + [number(float(v)) for v in line.values[:len(names)]] \
                + [line.note]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setFont(bold_math)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                elif c == 1:
                    item.setFont(math_font)
                elif 2 <= c < 2 + len(names):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    item.setToolTip(f"{line.symbol} of {names[c - 2]} = {float(line.values[c - 2])!r}")
                self.table.setItem(r, c, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def values(self, symbol: str, occurrence: int = -1) -> list[float]:
        """The numbers of a row as shown (the last row of that symbol by default)."""
        explanation = self.view.explanation
        lines = [k for k, line in enumerate(explanation.lines) if line.symbol == symbol]
        r = lines[occurrence]
        n = min(MAX_ELEMENTS, len(self.view.names))
        return [float(self.table.item(r, 2 + k).text()) for k in range(n)]
