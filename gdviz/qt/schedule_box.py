"""The selected run's learning-rate schedule and gradient clip, a part of the optimizer group.

A view: it shows a :class:`Schedule` and a clip norm and announces an edit with
``scheduleChanged(schedule, clip_norm)``. Only the options the chosen schedule uses are
shown (core's ``SETTINGS`` says which). Values are checked by core (``Schedule`` and
``check_clip_norm``); a mistake is named under the fields and nothing is sent.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit,
                               QSpinBox, QWidget)

from ..core.errors import GdvizError
from ..core.schedules import NAMES, SETTINGS, Schedule, check_clip_norm

TITLES = {"constant": "constant", "step": "step", "exponential": "exponential",
          "cosine": "cosine", "warmup-cosine": "warm-up + cosine", "one-cycle": "one-cycle"}
HELP = {
    "constant": "The learning rate stays as set.",
    "step": "StepLR: the rate times gamma every 'step size' steps.",
    "exponential": "ExponentialLR: the rate times gamma every step.",
    "cosine": "CosineAnnealingLR: from the rate down to 'min lr' at the step limit.",
    "warmup-cosine": "Linear warm-up from 1% of the rate over 'warm-up' steps, then cosine "
                     "down to 'min lr' at the step limit.",
    "one-cycle": "OneCycleLR: up to 'max lr' (empty: ten times the rate) over the first 30% "
                 "of the steps, then down to almost nothing at the step limit.",
}


class ScheduleBox(QWidget):
    """Schedule combo, its options, and the gradient clip (empty: off)."""

    scheduleChanged = Signal(object, object)   # Schedule, clip norm (float or None)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = self._form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.scheduleCombo = QComboBox(objectName="scheduleCombo")
        for name in NAMES:
            self.scheduleCombo.addItem(TITLES[name], name)
        self.scheduleCombo.setToolTip("How the learning rate changes over the run (stepped "
                                      "once per step; it spans the step limit)")
        self.warmupSpin = QSpinBox(objectName="warmupSpin", minimum=0, maximum=10**9)
        self.warmupSpin.setToolTip("Steps of linear warm-up before the cosine")
        self.stepSizeSpin = QSpinBox(objectName="stepSizeSpin", minimum=1, maximum=10**9)
        self.stepSizeSpin.setToolTip("Every this many steps the rate is multiplied by gamma")
        self.gammaSpin = QDoubleSpinBox(objectName="gammaSpin", decimals=4, minimum=0.0001,
                                        maximum=10.0, singleStep=0.05)
        self.gammaSpin.setToolTip("The factor the rate is multiplied by")
        self.minLrEdit = QLineEdit(objectName="minLrEdit", placeholderText="0")
        self.minLrEdit.setToolTip("Where the cosine ends (empty: 0)")
        self.maxLrEdit = QLineEdit(objectName="maxLrEdit", placeholderText="10 × lr")
        self.maxLrEdit.setToolTip("The one-cycle peak (empty: ten times the learning rate)")
        self.clipEdit = QLineEdit(objectName="clipEdit", placeholderText="off")
        self.clipEdit.setToolTip("Clip gradient norm: the gradients of a step are scaled down "
                                 "to at most this norm (torch's clip_grad_norm_); empty: off")
        self.errorLabel = QLabel(objectName="scheduleError", wordWrap=True)
        self.errorLabel.setStyleSheet("color: #c62828;")
        self.errorLabel.hide()
        self._option_rows = {"warmup": self.warmupSpin, "step_size": self.stepSizeSpin,
                             "gamma": self.gammaSpin, "min_lr": self.minLrEdit,
                             "max_lr": self.maxLrEdit}
        form.addRow("Schedule", self.scheduleCombo)
        for key, label in (("warmup", "Warm-up steps"), ("step_size", "Step size"),
                           ("gamma", "Gamma"), ("min_lr", "Min lr"), ("max_lr", "Max lr")):
            form.addRow(label, self._option_rows[key])
        form.addRow("Clip gradient norm", self.clipEdit)
        form.addRow(self.errorLabel)
        self._sent: tuple | None = None   # what was shown or announced last
        self.show_schedule(Schedule(), None)

        self.scheduleCombo.currentIndexChanged.connect(self._on_schedule_combo_changed)
        for spin in (self.warmupSpin, self.stepSizeSpin, self.gammaSpin):
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(lambda _v: self._emit())
        for edit in (self.minLrEdit, self.maxLrEdit, self.clipEdit):
            edit.editingFinished.connect(self._on_edit_finished)

    # --- model -> widgets ---------------------------------------------------------------

    def show_schedule(self, schedule: Schedule, clip_norm: float | None) -> None:
        """Show a run's schedule and clip without announcing them (fields being edited
        are left alone when the run's settings did not change)."""
        if (schedule, clip_norm) == self._sent:
            return
        widgets = (self.scheduleCombo, self.warmupSpin, self.stepSizeSpin, self.gammaSpin,
                   self.minLrEdit, self.maxLrEdit, self.clipEdit)
        blockers = [QSignalBlocker(w) for w in widgets]
        self.scheduleCombo.setCurrentIndex(self.scheduleCombo.findData(schedule.name))
        self.warmupSpin.setValue(schedule.warmup)
        self.stepSizeSpin.setValue(schedule.step_size)
        self.gammaSpin.setValue(schedule.gamma)
        self.minLrEdit.setText("" if not schedule.min_lr else f"{schedule.min_lr:g}")
        self.maxLrEdit.setText("" if schedule.max_lr is None else f"{schedule.max_lr:g}")
        self.clipEdit.setText("" if clip_norm is None else f"{clip_norm:g}")
        del blockers
        self._show_rows(schedule.name)
        self.errorLabel.hide()
        self._sent = (schedule, clip_norm)

    def _show_rows(self, name: str) -> None:
        for key, widget in self._option_rows.items():
            self._form.setRowVisible(widget, key in SETTINGS[name])
        self.scheduleCombo.setToolTip(HELP[name])

    # --- widgets -> signal --------------------------------------------------------------

    def _on_schedule_combo_changed(self, _index: int) -> None:
        self._show_rows(self.scheduleCombo.currentData())
        self._emit()

    def _on_edit_finished(self) -> None:
        self._emit()

    def current(self) -> tuple[Schedule, float | None]:
        """The schedule and clip the fields describe; GdvizError names a bad field."""
        name = self.scheduleCombo.currentData()
        used = SETTINGS[name]
        values: dict = {}
        if "warmup" in used:
            values["warmup"] = self.warmupSpin.value()
        if "step_size" in used:
            values["step_size"] = self.stepSizeSpin.value()
        if "gamma" in used:
            values["gamma"] = self.gammaSpin.value()
        if "min_lr" in used:
            values["min_lr"] = _number(self.minLrEdit.text(), "min lr", 0.0)
        if "max_lr" in used:
            values["max_lr"] = _number(self.maxLrEdit.text(), "max lr", None)
        schedule = Schedule(name, **values)
        schedule.check_settings(set(values))
        clip = check_clip_norm(_number(self.clipEdit.text(), "the gradient clip", None))
        return schedule, clip

    def _emit(self) -> None:
        try:
            schedule, clip = self.current()
        except GdvizError as exc:
            self.errorLabel.setText(str(exc))
            self.errorLabel.show()
            return
        self.errorLabel.hide()
        if (schedule, clip) == self._sent:
            return
        self._sent = (schedule, clip)
        self.scheduleChanged.emit(schedule, clip)


def _number(text: str, what: str, empty):
    """A typed number (empty: ``empty``); a word a student can act on otherwise."""
    text = text.strip()
    if not text or text.lower() in ("none", "off"):
        return empty
    try:
        value = float(text)
    except ValueError:
        raise GdvizError(f"{what}: '{text[:30]}' is not a number") from None
    if not math.isfinite(value):
        raise GdvizError(f"{what}: '{text[:30]}' is not a finite number")
    return value
