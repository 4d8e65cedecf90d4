"""Session documents: open, save, save as, recent files, examples, drag and drop, and the
unsaved-changes prompt. The window's title follows the document."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtWidgets import QApplication

from ..core.errors import GdvizError
from ..core.presets import load_preset
from ..core.session import SUFFIX, DataSource, Session

if TYPE_CHECKING:
    from .main_window import MainWindow

MAX_RECENT = 8
SESSION_FILTER = "gdviz sessions (*.gdviz.json *.json);;All files (*)"
DATA_SUFFIXES = (".csv", ".tsv", ".txt")
DATA_FILTER = "Data with a header row (*.csv *.tsv *.txt);;All files (*)"


class Documents(QObject):
    """What the File menu does with sessions; see the module docstring."""

    def __init__(self, window: "MainWindow", settings: QSettings):
        super().__init__(window)
        self.window = window
        self.settings = settings
        self.path: Path | None = None
        self._saved = ""

    @property
    def controller(self):
        return self.window.controller

    # --- the document's state ----------------------------------------------------------

    def fingerprint(self) -> str:
        if self.controller.runset is None:
            return ""  # nothing built yet
        doc = self.controller.document(include_history=False)
        return json.dumps(doc.to_dict(include_history=False), sort_keys=True)

    def mark_saved(self) -> None:
        self._saved = self.fingerprint()
        self.update_title()

    def has_unsaved_changes(self) -> bool:
        return self.fingerprint() != self._saved

    def update_title(self) -> None:
        name = self.path.name if self.path else "untitled"
        self.window.setWindowTitle(f"{name} — gdviz")

    def confirm_discard(self) -> bool:
        """True when it is fine to replace the session (saved, discarded or unchanged)."""
        if not self.has_unsaved_changes():
            return True
        answer = self.window.ask_unsaved()
        if answer == "save":
            return self.save()
        return answer == "discard"

    # --- opening ------------------------------------------------------------------------

    @contextmanager
    def _busy(self, message: str) -> Iterator[None]:
        """A wait cursor, and ``message`` on screen, while a file is read on this thread (a
        million-row CSV takes a second or two); the cursor comes back whatever happens."""
        self.window.show_message(message)
        self.window.messageLabel.repaint()  # now: no events run until the file is read
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            yield
        finally:
            QApplication.restoreOverrideCursor()

    def open(self, path: str | Path) -> bool:
        """Open a session file; on any error the window keeps what it had and says why."""
        path = Path(path)
        try:
            with self._busy(f"Opening {path.name}…"):
                session = Session.load(path)
                self.window.pause_and_wait()
                self.controller.load_session(session)
        except GdvizError as exc:
            self.window.report_error(f"Cannot open {path.name}", str(exc))
            return False
        except (OSError, ValueError, TypeError, RecursionError, MemoryError) as exc:
            # Anything the validation missed still gets a message, never a stuck window.
            self.window.report_error(f"Cannot open {path.name}", f"{type(exc).__name__}: {exc}")
            return False
        self.path = path
        self.add_recent(path)
        self.remember_folder(path)
        self.mark_saved()
        step = self.controller.step
        self.window.show_message(f"Opened {path.name}" + (f" at step {step}" if step else ""))
        for warning in session.warnings:
            self.window.show_message(warning)
        return True

    def open_example(self, name: str) -> bool:
        if not self.confirm_discard():
            return False
        if not self.window.load_session(load_preset(name)):
            return False
        self.path = None
        self.mark_saved()
        session = self.controller.session
        self.window.show_message(f"Example: {session.name}. {session.description}")
        return True

    def ask_open(self) -> None:
        if not self.confirm_discard():
            return
        path = self.window.ask_path("Open session", self.folder(), SESSION_FILTER, save=False)
        if path:
            self.open(path)

    # --- saving -------------------------------------------------------------------------

    def save_to(self, path: str | Path, include_history: bool = True) -> bool:
        path = Path(path)
        # The saved optimizer state must match the saved step: let the run stop first.
        self.window.pause_and_wait()
        try:
            snapshot = self.controller.snapshot(include_history=include_history)
            snapshot.save(path)
        except GdvizError as exc:
            self.window.report_error("Cannot save", str(exc))
            return False
        self.path = path
        self.add_recent(path)
        self.remember_folder(path)
        self.mark_saved()
        self.window.show_message(f"Saved {path.name}")
        return True

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path, self.window.saveHistoryAction.isChecked())

    def save_as(self) -> bool:
        if self.path is not None:
            name = self.path.name
        else:
            base = self.controller.session.name or "session"
            name = "".join(c if c.isalnum() or c in "-_" else "-" for c in base) + SUFFIX
        suggested = str(Path(self.folder()) / name) if self.folder() else name
        path = self.window.ask_path("Save session", suggested, SESSION_FILTER, save=True)
        if not path:
            return False
        if not path.endswith(".json"):
            path += SUFFIX
        return self.save_to(path, self.window.saveHistoryAction.isChecked())

    # --- folders and recent files -------------------------------------------------------

    def folder(self) -> str:
        """Where file dialogs start: the folder last used (never /proc and friends)."""
        value = self.settings.value("lastFolder", "")
        folder = Path(value) if isinstance(value, str) and value else Path.home()
        return str(folder) if folder.is_dir() else str(Path.home())

    def remember_folder(self, path: Path) -> None:
        self.settings.setValue("lastFolder", str(Path(path).resolve().parent))

    def recent(self) -> list[str]:
        value = self.settings.value("recentFiles", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str)]

    def add_recent(self, path: Path) -> None:
        text = str(Path(path).resolve())
        files = [text] + [f for f in self.recent() if f != text]
        self.settings.setValue("recentFiles", files[:MAX_RECENT])
        self.refresh_recent_menu()

    def refresh_recent_menu(self) -> None:
        menu = self.window.recentMenu
        menu.clear()
        files = self.recent()
        for f in files:
            menu.addAction(Path(f).name, lambda p=f: self.confirm_discard() and self.open(p)) \
                .setToolTip(f)
        if files:
            menu.addSeparator()
            menu.addAction("Clear", lambda: (self.settings.setValue("recentFiles", []),
                                             self.refresh_recent_menu()))
        menu.setEnabled(bool(files))

    # --- data -------------------------------------------------------------------------

    def ask_open_data(self) -> bool:
        path = self.window.ask_path("Open data", self.folder(), DATA_FILTER, save=False)
        if not path:
            return False
        self.remember_folder(Path(path))
        return self.open_data(path)

    def open_data(self, path: str | Path) -> bool:
        """Fit the CSV file at ``path``; on any error the window keeps what it had and says
        why (the row and column of a bad cell)."""
        path = Path(path)
        try:
            with self._busy(f"Reading {path.name}…"):
                self.window.pause_and_wait()
                self.controller.set_data(DataSource(path=str(path.resolve())))
        except GdvizError as exc:
            self.window.report_error(f"Cannot use {path.name} as data", str(exc))
            return False
        except (OSError, ValueError, MemoryError) as exc:
            self.window.report_error(f"Cannot use {path.name} as data",
                                     f"{type(exc).__name__}: {exc}")
            return False
        return True

    def remove_data(self) -> bool:
        # the function's names become parameters again without data; the loss's cannot
        info, session = self.controller.info, self.controller.session
        if info is not None and info.data is not None:
            from ..core.expressions import compile_expression
            try:
                names = set(compile_expression(session.loss, "loss").names)
            except GdvizError:
                names = set()
            used = [n for n in info.data.names if n in names]
            if used:
                self.window.report_error(
                    "The data is still in use",
                    f"The loss reads the data's column{'s' * (len(used) > 1)} "
                    f"{', '.join(used)}. Change it first (to a loss without data, for "
                    "example y**2), then remove the data.")
                return False
        try:
            self.window.pause_and_wait()
            self.controller.set_data(None)
        except GdvizError as exc:
            self.window.report_error("Cannot remove the data", str(exc))
            return False
        return True

    # --- drag and drop ------------------------------------------------------------------

    @staticmethod
    def dropped_file(event) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        files = [u.toLocalFile() for u in urls if u.isLocalFile()]
        return files[0] if files and files[0].lower().endswith((".json", *DATA_SUFFIXES)) \
            else None

    def drop(self, event) -> None:
        """A session file opens (replacing the session); a CSV file becomes the data."""
        path = self.dropped_file(event)
        if path is None:
            return
        if path.lower().endswith(DATA_SUFFIXES):
            event.acceptProposedAction()
            self.open_data(path)
        elif self.confirm_discard():
            event.acceptProposedAction()
            self.open(path)
