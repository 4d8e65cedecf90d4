"""The problem panel: function, loss, parameters, optimizer and run settings.

A view: it shows a :class:`Session` and announces edits with signals. Text edits are
debounced, so the problem is validated a moment after the user stops typing.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QSlider, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core.limits import MAX_STEPS
from ..core.optimizers import OPTIMIZERS, Hyper
from ..core.params import ParamSpec
from ..core.schedules import Schedule
from .schedule_box import ScheduleBox

if TYPE_CHECKING:
    from ..core.session import Session

_DEBOUNCE_MS = 350
_FUNCTION_HELP = ("Type math in your parameters, e.g. X + 1 or (1 - a)**2 + 100*(b - a**2)**2.\n"
                  "Every free name is a parameter. Functions: {functions}; constants pi and e; "
                  "w[0] indexes a parameter.")
_LOSS_HELP = ("The loss to minimize, in y (the function's value) and the parameters, e.g. "
              "(3 - y)**2 / 2 or mse(y, 3).\nLeave it as y to minimize the function itself. "
              "A loss with several elements is summed.")


class LogSpinBox(QDoubleSpinBox):
    """A spin box for positive numbers spanning decades: arrows multiply or divide."""

    def __init__(self, minimum: float, maximum: float, parent: QWidget | None = None, **kwargs):
        super().__init__(parent, **kwargs)
        self.setDecimals(12)
        self.setRange(minimum, maximum)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D401
        from PySide6.QtGui import QValidator
        try:
            value = float(text)
        except ValueError:
            ok = text.strip() in ("", ".", "-", "e") or text.lower().endswith(("e", "e-", "e+"))
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid, text, pos)
        if self.minimum() <= value <= self.maximum():
            return (QValidator.State.Acceptable, text, pos)
        return (QValidator.State.Intermediate, text, pos)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.setValue(min(max(self.value() * 10 ** (steps / 4), self.minimum()), self.maximum()))


class ProblemPanel(QWidget):
    """Edits a session's problem and settings; emits what the user changed."""

    problemEdited = Signal(str, str, object)   # function, loss, {name: ParamSpec}
    hyperChanged = Signal(str, object)
    optimizerChanged = Signal(str, object)     # name, hypers
    stepsChanged = Signal(int)
    tolChanged = Signal(object)                # float or None
    seedChanged = Signal(int)
    deviceChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._params: dict[str, ParamSpec] = {}
        self._hyper_widgets: dict[str, QWidget] = {}
        self._debounce = QTimer(self, singleShot=True, interval=_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._emit_problem)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        problem = QGroupBox("Problem")
        form = QFormLayout(problem)
        self.functionEdit = QLineEdit(objectName="functionEdit")
        self.functionEdit.setFont(mono)
        self.functionEdit.setToolTip(_FUNCTION_HELP.format(functions="see Help"))
        self.functionEdit.setPlaceholderText("e.g. X + 1")
        self.functionError = self._error_label(mono, "functionError")
        self.lossEdit = QLineEdit(objectName="lossEdit")
        self.lossEdit.setFont(mono)
        self.lossEdit.setToolTip(_LOSS_HELP)
        self.lossEdit.setPlaceholderText("y")
        self.lossError = self._error_label(mono, "lossError")
        form.addRow("y =", self.functionEdit)
        form.addRow(self.functionError)
        form.addRow("loss =", self.lossEdit)
        form.addRow(self.lossError)
        self.functionEdit.textEdited.connect(self._on_text_edited)
        self.lossEdit.textEdited.connect(self._on_text_edited)

        self.paramsTable = QTableWidget(0, 4, objectName="paramsTable")
        self.paramsTable.setHorizontalHeaderLabels(["Parameter", "Initial value", "Shape", "Frozen"])
        self.paramsTable.verticalHeader().setVisible(False)
        header = self.paramsTable.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.paramsTable.setToolTip("One row per parameter, filled from the function's names.\n"
                                    "Initial value: a number, [1, 2], rand(SHAPE), randn(SHAPE), "
                                    "zeros(SHAPE), ones(SHAPE) or full(SHAPE, VALUE).\n"
                                    "Frozen: keep the parameter fixed (no gradient).")
        self.paramsTable.setMinimumHeight(90)
        self.paramsTable.itemChanged.connect(self._on_params_table_item_changed)
        form.addRow(self.paramsTable)
        self.paramsError = self._error_label(mono, "paramsError")
        form.addRow(self.paramsError)
        layout.addWidget(problem)

        optim = self.optimizerGroup = QGroupBox("Optimizer")
        oform = QFormLayout(optim)
        self.optimizerCombo = QComboBox(objectName="optimizerCombo")
        for spec in OPTIMIZERS.values():
            self.optimizerCombo.addItem(spec.title, spec.name)
            self.optimizerCombo.setItemData(self.optimizerCombo.count() - 1, spec.description,
                                            Qt.ItemDataRole.ToolTipRole)
        self.optimizerCombo.setToolTip("The update rule. Changing it mid-run continues from "
                                       "the current point with a fresh optimizer state.")
        self.optimizerCombo.currentIndexChanged.connect(self._on_optimizer_combo_changed)
        oform.addRow("Method", self.optimizerCombo)
        lr_row = QHBoxLayout()
        self.lrSpin = LogSpinBox(1e-8, 100.0, objectName="lrSpin")
        self.lrSpin.setToolTip("Learning rate: the size of each step. Arrows multiply or divide "
                               "by 10^(1/4); takes effect at the next step, also mid-run.")
        # room for a rate such as 0.000251 whole (it was cut to "0.0002")
        self.lrSpin.setMinimumWidth(self.lrSpin.fontMetrics().horizontalAdvance("0.0000251") + 34)
        self.lrSlider = QSlider(Qt.Orientation.Horizontal, objectName="lrSlider")
        self.lrSlider.setRange(-160, 40)  # log10(lr) * 20: 1e-8 .. 100
        self.lrSlider.setToolTip("Learning rate on a log scale")
        self.lrSpin.valueChanged.connect(self._on_lr_spin_changed)
        self.lrSlider.valueChanged.connect(self._on_lr_slider_changed)
        lr_row.addWidget(self.lrSpin)
        lr_row.addWidget(self.lrSlider, 1)
        oform.addRow("Learning rate", lr_row)
        # the stability limit at the selected run's point (from its curvature)
        self.lrLimitLabel = QLabel(objectName="lrLimitLabel")
        self.lrLimitLabel.setWordWrap(True)
        self.lrLimitLabel.setStyleSheet("color: #666;")
        self.lrLimitLabel.hide()
        oform.addRow(self.lrLimitLabel)
        self._lr_tip = self.lrSpin.toolTip()
        self._lr_limit = None
        self.lr_past_limit = False
        self._hyper_box = QWidget()
        self._hyper_form = QFormLayout(self._hyper_box)
        self._hyper_form.setContentsMargins(0, 0, 0, 0)
        oform.addRow(self._hyper_box)
        # the schedule and the clip of the selected run (announced by scheduleBox itself)
        self.scheduleBox = ScheduleBox()
        oform.addRow(self.scheduleBox)
        layout.addWidget(optim)

        run = QGroupBox("Run")
        rform = QFormLayout(run)
        self.stepsSpin = QSpinBox(objectName="stepsSpin")
        self.stepsSpin.setRange(1, MAX_STEPS)
        self.stepsSpin.setGroupSeparatorShown(True)
        self.stepsSpin.setKeyboardTracking(False)
        self.stepsSpin.setToolTip("Step limit: Play stops here")
        self.stepsSpin.valueChanged.connect(self.stepsChanged)
        self.tolEdit = QLineEdit(objectName="tolEdit")
        self.tolEdit.setPlaceholderText("none")
        self.tolEdit.setToolTip("Stop once the loss is at or below this number (empty: never)")
        self.tolEdit.editingFinished.connect(self._on_tol_edit_finished)
        self.seedSpin = QSpinBox(objectName="seedSpin")
        self.seedSpin.setRange(0, 2**31 - 1)
        self.seedSpin.setKeyboardTracking(False)
        self.seedSpin.setToolTip("Random seed for initial values such as rand(1): the same seed "
                                 "gives the same start")
        self.seedSpin.valueChanged.connect(self.seedChanged)
        self.deviceCombo = QComboBox(objectName="deviceCombo")
        self.deviceCombo.addItem("CPU", "cpu")
        self.deviceCombo.addItem("CUDA", "cuda")
        self.deviceCombo.setToolTip("Where the tensors live")
        self.cuda_reason: str | None = None
        self.deviceCombo.currentIndexChanged.connect(
            lambda _i: self.deviceChanged.emit(self.deviceCombo.currentData()))
        rform.addRow("Step limit", self.stepsSpin)
        rform.addRow("Tolerance", self.tolEdit)
        rform.addRow("Seed", self.seedSpin)
        rform.addRow("Device", self.deviceCombo)
        layout.addWidget(run)
        layout.addStretch(1)

    def configure(self, functions: list[str], cuda_reason: str | None) -> None:
        """What the language offers (for the help) and why CUDA cannot be chosen, if so."""
        self.functionEdit.setToolTip(_FUNCTION_HELP.format(functions=", ".join(functions)))
        self.cuda_reason = cuda_reason
        item = self.deviceCombo.model().item(1)
        item.setEnabled(cuda_reason is None)
        if cuda_reason:
            item.setToolTip(f"CUDA is unavailable: {cuda_reason}")
            self.deviceCombo.setToolTip(f"Where the tensors live. CUDA is unavailable: {cuda_reason}")

    @staticmethod
    def _error_label(font, name: str) -> QLabel:
        label = QLabel(objectName=name)
        label.setFont(font)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setStyleSheet("color: #c62828;")
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()
        return label

    # --- model -> widgets ---------------------------------------------------------------

    def show_session(self, session: "Session", shapes: dict[str, tuple[int, ...]] | None) -> None:
        """Show ``session``'s problem and shared settings without echoing signals back.
        Without ``shapes`` (the problem is still being built) the table lists the session's
        parameters with their shapes to come."""
        blockers = [QSignalBlocker(w) for w in (self.functionEdit, self.lossEdit, self.stepsSpin,
                                                 self.seedSpin, self.deviceCombo, self.tolEdit)]
        for edit, text in ((self.functionEdit, session.function), (self.lossEdit, session.loss)):
            if edit.text() != text:  # never move the cursor of a field being typed in
                edit.setText(text)
        self.stepsSpin.setValue(session.steps)
        self.seedSpin.setValue(session.seed)
        self.tolEdit.setText("" if session.tol is None else f"{session.tol:g}")
        index = self.deviceCombo.findData("cuda" if session.device.startswith("cuda") else "cpu")
        if session.device == "auto":
            index = 1 if self.cuda_reason is None else 0
        self.deviceCombo.setCurrentIndex(index)
        del blockers
        self._params = dict(session.params)
        self._fill_table(list(shapes) if shapes is not None else list(session.params), shapes)
        self.clear_errors()

    def show_run(self, optimizer: str, hypers: dict[str, Any], label: str, several: bool,
                 schedule: Schedule | None = None, clip_norm: float | None = None) -> None:
        """Show the selected run's optimizer settings (what the optimizer group edits)."""
        # A group box is as wide as its title: a long label (a schedule, a clip) is cut
        # short there, whole in the tooltip, so the panel never outgrows its column.
        short = label if len(label) <= 34 else label[:33].rstrip(" ,") + "…"
        self.optimizerGroup.setTitle(f"Optimizer of {short}" if several else "Optimizer")
        self.optimizerGroup.setToolTip(f"The optimizer of {label}" if several else "")
        self.scheduleBox.show_schedule(schedule or Schedule(), clip_norm)
        if self.optimizerCombo.currentData() != optimizer or self.hypers() != hypers:
            blocker = QSignalBlocker(self.optimizerCombo)
            self.optimizerCombo.setCurrentIndex(self.optimizerCombo.findData(optimizer))
            del blocker
            self._build_hypers(optimizer, hypers)

    def show_error(self, field: str, message: str, column: int) -> None:
        label = {"function": self.functionError, "loss": self.lossError}.get(field, self.paramsError)
        edit = {"function": self.functionEdit, "loss": self.lossEdit}.get(field)
        for other in (self.functionError, self.lossError, self.paramsError):
            if other is not label:
                other.hide()
        label.setText(error_html(message, edit.text() if edit is not None else "", column))
        label.show()

    def clear_errors(self) -> None:
        for label in (self.functionError, self.lossError, self.paramsError):
            label.hide()

    # --- widgets -> signals -------------------------------------------------------------

    def _on_text_edited(self, _text: str) -> None:
        self._debounce.start()

    def flush(self) -> None:
        """Validate now instead of waiting for the debounce."""
        if self._debounce.isActive():
            self._debounce.stop()
            self._emit_problem()

    def _emit_problem(self) -> None:
        # The controller builds the problem; the table follows what it loads (show_session).
        self.problemEdited.emit(self.functionEdit.text(), self.lossEdit.text(),
                                self.current_params())

    def current_params(self) -> dict[str, ParamSpec]:
        return dict(self._params)

    def _fill_table(self, names: list[str], shapes: dict[str, tuple[int, ...]] | None) -> None:
        table = self.paramsTable
        blocker = QSignalBlocker(table)
        old_shapes = {table.item(r, 0).text(): table.item(r, 2).text()
                      for r in range(table.rowCount()) if table.item(r, 0)}
        table.setRowCount(len(names))
        for row, name in enumerate(names):
            spec = self._params.setdefault(name, ParamSpec())
            name_item = QTableWidgetItem(name)
            name_item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            init_item = QTableWidgetItem(spec.init)
            init_item.setToolTip("Initial value: a number, [1, 2], rand(SHAPE), randn(SHAPE), "
                                 "zeros(SHAPE), ones(SHAPE) or full(SHAPE, VALUE)")
            shape = shapes.get(name) if shapes is not None else None
            shape_text = (_shape_text(shape) if shape is not None else old_shapes.get(name, "?"))
            shape_item = QTableWidgetItem(shape_text)
            shape_item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            frozen_item = QTableWidgetItem()
            frozen_item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            frozen_item.setCheckState(Qt.CheckState.Checked if spec.frozen else Qt.CheckState.Unchecked)
            frozen_item.setToolTip("Frozen: kept fixed, no gradient (requires_grad off)")
            for col, item in enumerate((name_item, init_item, shape_item, frozen_item)):
                table.setItem(row, col, item)
        self._params = {n: self._params[n] for n in names}
        del blocker

    def _on_params_table_item_changed(self, item: QTableWidgetItem) -> None:
        name = self.paramsTable.item(item.row(), 0).text()
        init = self.paramsTable.item(item.row(), 1).text().strip()
        frozen = self.paramsTable.item(item.row(), 3).checkState() == Qt.CheckState.Checked
        self._params[name] = ParamSpec(init or ParamSpec().init, frozen)
        self._emit_problem()

    # --- optimizer ----------------------------------------------------------------------

    def _build_hypers(self, name: str, values: dict[str, Any]) -> None:
        spec = OPTIMIZERS[name]
        merged = {**spec.defaults(), **values}
        with_blocked = [QSignalBlocker(self.lrSpin), QSignalBlocker(self.lrSlider)]
        self.lrSpin.setValue(float(merged["lr"]))
        self.lrSlider.setValue(round(math.log10(max(float(merged["lr"]), 1e-8)) * 20))
        del with_blocked
        self._show_lr_check()
        while self._hyper_form.rowCount():
            self._hyper_form.removeRow(0)
        self._hyper_widgets = {}
        for hyper in spec.hypers:
            if hyper.name == "lr":
                continue
            widget = self._hyper_widget(hyper, merged[hyper.name])
            self._hyper_widgets[hyper.name] = widget
            self._hyper_form.addRow(hyper.name.replace("_", " ").capitalize(), widget)

    def _hyper_widget(self, hyper: Hyper, value: Any) -> QWidget:
        if hyper.kind == "bool":
            widget = QCheckBox()
            widget.setChecked(bool(value))
            widget.toggled.connect(lambda v, n=hyper.name: self.hyperChanged.emit(n, bool(v)))
        else:
            widget = LogSpinBox(hyper.minimum or 1e-12, hyper.maximum) if hyper.log else QDoubleSpinBox()
            if not hyper.log:
                widget.setDecimals(4)
                widget.setRange(hyper.minimum, min(hyper.maximum, 1e6))
                widget.setSingleStep(0.01 if hyper.maximum <= 1 else 0.1)
                widget.setKeyboardTracking(False)
            widget.setValue(float(value))
            widget.valueChanged.connect(lambda v, n=hyper.name: self.hyperChanged.emit(n, float(v)))
        widget.setObjectName(f"{hyper.name}Hyper")
        widget.setToolTip(hyper.help)
        return widget

    def _on_optimizer_combo_changed(self, _index: int) -> None:
        name = self.optimizerCombo.currentData()
        lr = self.lrSpin.value()
        self._build_hypers(name, {"lr": lr})
        self.optimizerChanged.emit(name, self.hypers())

    def hypers(self) -> dict[str, Any]:
        out: dict[str, Any] = {"lr": self.lrSpin.value()}
        for name, widget in self._hyper_widgets.items():
            out[name] = widget.isChecked() if isinstance(widget, QCheckBox) else widget.value()
        return out

    def _on_lr_spin_changed(self, value: float) -> None:
        blocker = QSignalBlocker(self.lrSlider)
        self.lrSlider.setValue(round(math.log10(max(value, 1e-8)) * 20))
        del blocker
        self._show_lr_check()
        self.hyperChanged.emit("lr", float(value))

    def show_lr_limit(self, limit) -> None:
        """The largest stable learning rate at the selected run's point, from its curvature
        (an object with ``limit``, ``note`` and ``reason(lr)``; None: not known). The lr field
        turns red past it, its tooltip saying why."""
        self._lr_limit = limit
        self._show_lr_check()

    def _show_lr_check(self) -> None:
        limit = self._lr_limit
        lr = self.lrSpin.value()
        past = limit is not None and limit.limit is not None and lr > limit.limit
        if limit is None:
            self.lrLimitLabel.hide()
        else:
            self.lrLimitLabel.setText(limit.note)
            self.lrLimitLabel.setStyleSheet("color: #c62828;" if past else "color: #666;")
            self.lrLimitLabel.show()
        if past == self.lr_past_limit and not past:
            return
        self.lr_past_limit = past
        if past:
            self.lrSpin.setStyleSheet("QDoubleSpinBox { background: #ffcdd2; color: #b71c1c; "
                                      "border: 1px solid #c62828; }")
            self.lrSpin.setToolTip(limit.reason(lr))
        else:
            self.lrSpin.setStyleSheet("")
            self.lrSpin.setToolTip(self._lr_tip)

    def _on_lr_slider_changed(self, position: int) -> None:
        value = float(f"{10 ** (position / 20):.3g}")
        self.lrSpin.setValue(value)  # emits hyperChanged through the spin box

    def _on_tol_edit_finished(self) -> None:
        text = self.tolEdit.text().strip()
        if not text or text.lower() == "none":
            self.paramsError.hide()
            self.tolChanged.emit(None)
            return
        try:
            tol = float(text)
            if not math.isfinite(tol) or tol < 0:
                raise ValueError
        except ValueError:
            self.show_error("tol", f"tolerance: '{text}' is not a number >= 0 (leave it empty "
                            "for none)", 0)
            return
        self.paramsError.hide()
        self.tolChanged.emit(tol)


def error_html(message: str, text: str, column: int, width: int = 44) -> str:
    """The message (wrapping as the panel needs), then the typed text around the column
    and a caret under it, in a block that never wraps: the caret always points at the
    character it means, however long the message or the text."""
    head = html.escape(message + (f" (column {column})" if column else ""), quote=False)
    if not column or not text:
        return f"<p>{head}</p>"
    start = max(0, min(column - 1 - width // 2, len(text) - width))
    excerpt = text[start:start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    caret = " " * (len(prefix) + column - 1 - start) + "^"
    return f"<p>{head}</p><pre>{html.escape(prefix + excerpt + suffix, quote=False)}\n{caret}</pre>"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if len(shape) == 0 else "×".join(str(s) for s in shape)
