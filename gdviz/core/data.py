"""Data to fit: CSV columns as variables of the function and the loss.

A :class:`Dataset` is a set of equally long float columns, each under the name the
expressions use. Columns are data, not parameters: they have no gradient, are never
recorded in the history, and are moved to the run's device once.

Names. A column is used by its header when that is a plain name (``x``, ``target``). A
header that is not a name becomes one (``height (cm)`` becomes ``height_cm``), and a
header that means something already (``y``, the function's value; ``loss``; a function
such as ``sum``; the constants ``pi`` and ``e``) gets ``_data`` added: the usual two-column
CSV with columns ``x,y`` is fitted with the function ``w*x + b`` and the loss
``mse(y, y_data)``. Each renaming is reported (:attr:`Dataset.notes`).

Reading is a validation boundary: every way a file can be wrong (missing, empty, no
header, a cell that is not a number, ragged rows, NaN or infinity) raises a
:class:`DataError` that names the row and column.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import GdvizError
from .vocabulary import CONSTANT_NAMES, FUNCTION_NAMES, RESERVED_NAMES

MAX_ROWS = 10_000_000
MAX_COLUMNS = 64
MAX_FILE_BYTES = 1024 * 1024 * 1024
#: Names a column cannot keep: they already mean something in an expression.
TAKEN = RESERVED_NAMES | FUNCTION_NAMES | CONSTANT_NAMES
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


class DataError(GdvizError):
    """Data that cannot be used, with where in the file it went wrong."""


@dataclass(frozen=True)
class Dataset:
    """Columns of equal length, by variable name, with where they came from."""

    columns: dict[str, np.ndarray]           # float64, shape (rows,)
    source: str = ""                          # a path, or "bundled:NAME"
    headers: dict[str, str] = field(default_factory=dict)   # name -> the header it came from
    notes: tuple[str, ...] = ()              # renamings, for the user

    def __post_init__(self) -> None:
        if not self.columns:
            raise DataError("the data has no columns")
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) != 1:
            raise DataError("the data's columns differ in length")

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def describe(self) -> str:
        name = Path(self.source).name if self.source and not self.source.startswith("bundled:") \
            else self.source.removeprefix("bundled:")
        return f"{name or 'data'}: {self.rows:,} rows of {', '.join(self.names)}"


def variable_name(header: str, index: int) -> str:
    """The name an expression uses for a column with this header (see the module doc)."""
    # accents go, letters stay: température is temperature, not temp_rature
    plain = "".join(c for c in unicodedata.normalize("NFKD", header.strip())
                    if not unicodedata.combining(c))
    name = _NOT_NAME.sub("_", plain).strip("_")
    while "__" in name:
        name = name.replace("__", "_")
    if not name:
        name = f"column{index + 1}"
    if name[0].isdigit():
        name = "c" + name
    if name in TAKEN:
        name += "_data"
    return name


#: the last file read, by (path, modification time, size): the window rebuilds its problem
#: on every edit of the function, and a file of a million rows takes seconds to parse
_last_read: tuple[tuple, Dataset] | None = None


def read_csv(path: str | Path) -> Dataset:
    """A CSV file with a header row, every other cell a finite number. An unchanged file
    read again is not parsed again."""
    global _last_read
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key is not None and _last_read is not None and _last_read[0] == key:
        return _last_read[1]
    data = _read_csv(path)
    if key is not None:
        _last_read = (key, data)
    return data


def _read_csv(path: Path) -> Dataset:
    shown = path.name or str(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise DataError(f"'{shown}' is a folder, not a CSV file")
        if size > MAX_FILE_BYTES:
            raise DataError(f"'{shown}' is {size / 1e9:.1f} GB; gdviz reads data files of up "
                            f"to {MAX_FILE_BYTES / 1e9:.0f} GB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"the data file '{path}' does not exist") from None
    except PermissionError:
        raise DataError(f"cannot read the data file '{path}': permission denied") from None
    except OSError as exc:
        raise DataError(f"cannot read the data file '{path}': {exc.strerror or exc}") from None
    if b"\x00" in raw:
        raise DataError(f"'{shown}' is not a text CSV file (it holds NUL bytes)")
    try:
        sample = raw.decode("utf-8-sig")[:4096]  # and every byte is checked
    except UnicodeDecodeError as exc:
        raise DataError(f"'{shown}' is not a text (UTF-8) CSV file: byte {exc.start} cannot "
                        "be read") from None
    # read line by line from the bytes: the text whole, and a list of its lines, would
    # each be as big again
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    return _parse(lines, sample, shown, str(path))


def parse_csv(text: str, source: str = "") -> Dataset:
    """The columns of a CSV text with a header row."""
    shown = Path(source).name if source else "the data"
    if "\x00" in text:
        raise DataError(f"'{shown}' is not a text CSV file (it holds NUL bytes)")
    # newline="": lines end at \n, \r\n or \r, as they do read from a file
    return _parse(io.StringIO(text, newline=""), text[:4096], shown, source)


def _parse(lines: Iterable[str], sample: str, shown: str, source: str) -> Dataset:
    """The columns of a CSV's lines (``sample``: its start, to tell the delimiter). Rows are
    converted to numbers a block at a time, so that reading holds the columns' numbers and
    not a Python string per cell (a million rows as lists of strings took 360 MB)."""
    delimiter = ";" if sample.count(";") > sample.count(",") and "\t" not in sample else \
        ("\t" if sample.count("\t") > sample.count(",") else ",")
    with _collector_paused():
        header, blocks, rows = _read_blocks(csv.reader(lines, delimiter=delimiter), shown)
    if not rows:
        raise DataError(f"'{shown}' has a header but no data rows")
    # a trailing delimiter on every line (as some spreadsheets write) is not a column
    while header and not header[-1].strip() and all(
            not isinstance(part, np.ndarray) and all(not c.strip() for c in part)
            for part in blocks[-1]):
        header, blocks = header[:-1], blocks[:-1]
    header = [h.strip() for h in header]
    names = [variable_name(h, i) for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(f"columns {seen[name] + 1} and {i + 1} of '{shown}' would both be "
                            f"called '{name}'; rename one in the header")
        seen[name] = i
    columns = {name: _column(parts, head or f"column {i + 1}", shown)
               for i, (name, head, parts) in enumerate(zip(names, header, blocks))}
    notes = tuple(f"column '{h}' is used as {n}" + (" (y is the function's value)" if h == "y"
                                                      else "")
                  for h, n in zip(header, names) if h != n)
    return Dataset(columns, source, dict(zip(names, header)), notes)


def _read_blocks(reader, shown: str) -> tuple[list[str], list[list], int]:
    """The header, each column's blocks (float64 arrays, or a block's cells where one is
    not a number) and the number of data rows."""
    rows = 0
    try:
        header = next((line for line in reader if not _blank(line)), None)
        if header is None:
            raise DataError(f"'{shown}' is empty")
        header = _checked_header(header, shown)
        blocks: list[list] = [[] for _ in header]
        while lines_read := list(itertools.islice(reader, _BLOCK_ROWS)):
            block = [line for line in lines_read if not _blank(line)]
            if set(map(len, block)) - {len(header)}:
                ragged = next(k for k, line in enumerate(block) if len(line) != len(header))
                cells = len(block[ragged])
                raise DataError(f"row {rows + ragged + 2} of '{shown}' has {cells} cell"
                                f"{'s' * (cells != 1)}; the header has {len(header)}")
            rows += len(block)
            if rows > MAX_ROWS:
                raise DataError(f"'{shown}' has more than {MAX_ROWS:,} rows; gdviz fits at most "
                                f"{MAX_ROWS:,}")
            for i, column in enumerate(blocks if block else ()):  # (a block of blank lines)
                column.append(_numbers_or_cells([line[i] for line in block]))
    except csv.Error as exc:
        raise DataError(f"'{shown}' is not a readable CSV file (line {reader.line_num}: "
                        f"{exc})") from None
    return header, blocks, rows


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused: reading makes a million short-lived lists (and no
    cycles), and with torch loaded every collection they trigger walks all of its objects
    too (half of the reading time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: lines converted to numbers at a time while reading
_BLOCK_ROWS = 65_536


def _blank(line: list[str]) -> bool:
    return not line or not line[0].strip() and all(not c.strip() for c in line)


def _checked_header(line: list[str], shown: str) -> list[str]:
    named = list(line)
    while named and not named[-1].strip():  # trailing delimiters: see _parse
        named.pop()
    if all(_is_number(h) for h in named):
        raise DataError(f"'{shown}' has no header row: its first line must name the columns "
                        "(for example x,t)")
    if len(named) > MAX_COLUMNS:
        raise DataError(f"'{shown}' has {len(named)} columns; gdviz takes at most {MAX_COLUMNS}")
    return line


def _numbers_or_cells(cells: list[str]) -> np.ndarray | list[str]:
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        return cells  # kept to say which cell, if the column is not dropped


def _column(parts: list, header: str, shown: str) -> np.ndarray:
    """One column's numbers from its blocks; the first cell that is not a finite number
    is named by row and column."""
    arrays, first = [], 0
    for part in parts:
        if not isinstance(part, np.ndarray):
            for k, cell in enumerate(part):
                if not _is_number(cell):
                    what = "is empty" if not cell.strip() else \
                        f"is '{cell.strip()[:30]}', not a number"
                    raise DataError(f"row {first + k + 2}, column '{header}' of '{shown}' {what}")
            part = np.array([float(c) for c in part])  # Python reads what numpy would not
        arrays.append(part)
        first += len(part)
    values = np.concatenate(arrays)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        k = int(bad[0])
        raise DataError(f"row {k + 2}, column '{header}' of '{shown}' is {values[k]}; "
                        "gdviz needs finite numbers (remove the row or fill the cell)")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def bundled_datasets() -> list[str]:
    from ..resources import resources_dir

    folder = resources_dir() / "data"
    return sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []


def load_bundled(name: str) -> Dataset:
    from ..resources import resources_dir

    if name not in bundled_datasets():
        raise DataError(f"unknown bundled dataset '{name[:40]}'; the datasets are "
                        f"{', '.join(bundled_datasets())}")
    data = read_csv(resources_dir() / "data" / f"{name}.csv")
    return Dataset(data.columns, f"bundled:{name}", data.headers, data.notes)


def from_columns(columns: dict[str, list | np.ndarray], source: str = "embedded") -> Dataset:
    """Columns given as lists (a session's embedded data), checked like a file's."""
    out = {}
    if not isinstance(columns, dict) or len(columns) > MAX_COLUMNS:
        raise DataError(f"embedded data must be an object of at most {MAX_COLUMNS} columns")
    for name, values in columns.items():
        if not isinstance(name, str) or variable_name(name, 0) != name:
            raise DataError(f"'{str(name)[:40]}' cannot name a data column (use a plain name "
                            "that is not y, loss, a function or a constant)")
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"column '{name}' must be a list of numbers") from None
        if not np.isfinite(arr).all():
            raise DataError(f"column '{name}' holds a value that is not a finite number")
        out[name] = arr
    return Dataset(out, source)

