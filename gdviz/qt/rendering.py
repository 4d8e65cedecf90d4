"""Painting into a PNG or an SVG file: the one place figures and the graph share."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator

from ..core.atomic import atomic_write_bytes
from ..core.errors import GdvizError

Draw = Callable[[QPainter, QRectF], None]  # paints into the given target rectangle


def paint_image(width: float, height: float, scale: float, draw: Draw) -> QImage:
    """A white image ``scale`` times (width, height) with ``draw`` painted over it."""
    image = QImage(max(1, round(width * scale)), max(1, round(height * scale)),
                   QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    draw(painter, QRectF(0, 0, image.width(), image.height()))
    painter.end()
    return image


def paint_svg(width: float, height: float, title: str, draw: Draw) -> bytes:
    """``draw`` as SVG text of the given size."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(round(width), round(height)))
    generator.setViewBox(QRectF(0, 0, width, height))
    generator.setTitle(title)
    painter = QPainter(generator)
    draw(painter, QRectF(0, 0, width, height))
    painter.end()
    buffer.close()
    return bytes(data)


def save_image(image: QImage, path: str | Path) -> None:
    """Save a QImage as PNG atomically, with a clear error on failure."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise GdvizError(f"cannot encode {Path(path).name} as PNG")
    buffer.close()
    atomic_write_bytes(path, bytes(data))


def save_svg(data: bytes, path: str | Path) -> None:
    atomic_write_bytes(path, data)
