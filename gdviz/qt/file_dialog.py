"""File dialogs that cannot hang.

Qt's own file dialog guesses a file's type for its icon, and for files without a known
suffix it reads their first bytes: completing a path into /proc reads /proc/kmsg, which
blocks for good. A plain icon provider (folder or file, by name only) avoids every read.
The dialog starts where the caller says (the folder last used), never in an odd place.
"""

from __future__ import annotations

from PySide6.QtCore import QFileInfo
from PySide6.QtGui import QAbstractFileIconProvider  # QtGui in Qt 6, not QtWidgets
from PySide6.QtWidgets import QFileDialog, QWidget


class PlainIconProvider(QAbstractFileIconProvider):
    """Icons from the kind of entry only: folder or file."""

    def icon(self, what):  # noqa: D401 - Qt override
        if isinstance(what, QFileInfo):
            kind = (QAbstractFileIconProvider.IconType.Folder if what.isDir()
                    else QAbstractFileIconProvider.IconType.File)
            return super().icon(kind)
        return super().icon(what)

    def type(self, info: QFileInfo) -> str:  # noqa: A003 - Qt override
        return "Folder" if info.isDir() else "File"


def ask_file(parent: QWidget, title: str, suggested: str, filters: str, save: bool) -> str | None:
    dialog = QFileDialog(parent, title, suggested, filters)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setOption(QFileDialog.Option.DontUseCustomDirectoryIcons, True)
    dialog.setIconProvider(PlainIconProvider())
    if save:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.selectFile(suggested)
    else:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    if dialog.exec() != QFileDialog.DialogCode.Accepted:
        return None
    files = dialog.selectedFiles()
    return files[0] if files else None
