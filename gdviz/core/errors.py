"""The error types core raises for anything a user typed or chose."""

from __future__ import annotations


class GdvizError(Exception):
    """Base of every error caused by user input; its message is meant for the user."""


class ExpressionError(GdvizError):
    """A mistake in a typed expression, with the field it came from and a 1-based column."""

    def __init__(self, message: str, field: str = "expression", column: int | None = None):
        self.field = field
        self.column = column
        self.bare_message = message
        where = f" in {field}" + (f" at column {column}" if column is not None else "")
        super().__init__(_insert_where(message, where))


def _insert_where(message: str, where: str) -> str:
    # "unknown name 'z'; the parameters are x" -> "unknown name 'z' in loss at column 5; ..."
    head, sep, tail = message.partition(";")
    return f"{head}{where}{sep}{tail}"


class SessionError(GdvizError):
    """A malformed session or preset; names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class DeviceError(GdvizError):
    """A device was asked for that this machine does not have."""
