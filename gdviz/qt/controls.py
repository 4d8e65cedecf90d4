"""Play/Pause, Step (with a count), Reset and the speed control."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QStyle,
                               QWidget)

#: Speed slider positions in steps per second; 0 means as fast as the machine goes.
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 0)
#: Where the slider starts: the seed example's 10,000 steps take five seconds to watch.
DEFAULT_SPEED = 2000


class ControlsBar(QWidget):
    """Announces intent: playToggled, stepRequested(n), resetRequested, speedChanged."""

    playToggled = Signal()
    stepRequested = Signal(int)
    resetRequested = Signal()
    speedChanged = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        style = self.style()
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.playButton = QPushButton(self._play_icon, "Play", objectName="playButton")
        self.playButton.setToolTip("Run to the step limit, or pause (Space)")
        self.playButton.setMinimumWidth(90)
        self.playButton.clicked.connect(self.playToggled)
        self.stepButton = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward),
                                      "Step", objectName="stepButton")
        self.stepButton.setToolTip("Take the given number of optimizer steps (Right arrow)")
        self.stepCountSpin = QSpinBox(objectName="stepCountSpin")
        self.stepCountSpin.setRange(1, 1_000_000)
        self.stepCountSpin.setToolTip("How many steps one press of Step takes")
        self.stepButton.clicked.connect(lambda: self.stepRequested.emit(self.stepCountSpin.value()))
        self.resetButton = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_BrowserReload),
                                       "Reset", objectName="resetButton")
        self.resetButton.setToolTip("Back to the initial values: same seed, same start (R)")
        self.resetButton.clicked.connect(self.resetRequested)

        self.speedSlider = QSlider(Qt.Orientation.Horizontal, objectName="speedSlider")
        self.speedSlider.setRange(0, len(SPEEDS) - 1)
        self.speedSlider.setValue(SPEEDS.index(DEFAULT_SPEED))
        self.speedSlider.setPageStep(1)
        self.speedSlider.setMinimumWidth(140)
        self.speedSlider.setToolTip("Speed: from slow motion (1 step a second, to watch each "
                                    "step) up to full speed")
        self.speedLabel = QLabel(objectName="speedLabel")
        self.speedLabel.setMinimumWidth(90)
        self.speedSlider.valueChanged.connect(self._on_speed_slider_changed)
        self._on_speed_slider_changed(self.speedSlider.value(), emit=False)
        self.fullSpeedButton = QPushButton("Full speed", objectName="fullSpeedButton")
        self.fullSpeedButton.setToolTip("As fast as the machine goes (the slider's far right)")
        self.fullSpeedButton.clicked.connect(lambda: self.speedSlider.setValue(len(SPEEDS) - 1))

        for w in (self.playButton, self.stepButton, self.stepCountSpin, self.resetButton):
            layout.addWidget(w)
        layout.addSpacing(16)
        layout.addWidget(QLabel("Speed"))
        layout.addWidget(self.speedSlider)
        layout.addWidget(self.speedLabel)
        layout.addWidget(self.fullSpeedButton)
        layout.addStretch(1)

    def speed(self) -> float:
        return float(SPEEDS[self.speedSlider.value()])

    def _on_speed_slider_changed(self, position: int, emit: bool = True) -> None:
        value = SPEEDS[position]
        self.speedLabel.setText("full speed" if value == 0 else
                                f"{value:,} step{'s' if value != 1 else ''}/s")
        if hasattr(self, "fullSpeedButton"):
            self.fullSpeedButton.setEnabled(value != 0)
        if emit:
            self.speedChanged.emit(float(value))

    def show_running(self, running: bool, can_run: bool) -> None:
        """Play becomes Pause while running; Step waits; nothing runs while the problem has
        an error."""
        self.playButton.setText("Pause" if running else "Play")
        self.playButton.setIcon(self._pause_icon if running else self._play_icon)
        self.playButton.setEnabled(can_run or running)
        self.stepButton.setEnabled(can_run and not running)
