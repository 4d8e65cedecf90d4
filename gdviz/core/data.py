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
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"'{shown}' is not a text (UTF-8) CSV file: byte {exc.start} cannot "
                        "be read") from None
    return parse_csv(text, str(path))


def parse_csv(text: str, source: str = "") -> Dataset:
    shown = Path(source).name if source else "the data"
    if "\x00" in text:
        raise DataError(f"'{shown}' is not a text CSV file (it holds NUL bytes)")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") and "\t" not in sample else \
        ("\t" if sample.count("\t") > sample.count(",") else ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = []
    try:
        for line in reader:
            if not line or all(not c.strip() for c in line):
                continue  # blank lines
            rows.append(line)
            if len(rows) > MAX_ROWS + 1:
                raise DataError(f"'{shown}' has more than {MAX_ROWS:,} rows; gdviz fits at most "
                                f"{MAX_ROWS:,}")
    except csv.Error as exc:
        raise DataError(f"'{shown}' is not a readable CSV file (line {reader.line_num}: "
                        f"{exc})") from None
    if not rows:
        raise DataError(f"'{shown}' is empty")
    # a trailing delimiter on every line (as some spreadsheets write) is not a column
    while rows[0] and not rows[0][-1].strip() and all(
            len(r) == len(rows[0]) and not r[-1].strip() for r in rows):
        rows = [r[:-1] for r in rows]
    header = [h.strip() for h in rows[0]]
    if all(_is_number(h) for h in header):
        raise DataError(f"'{shown}' has no header row: its first line must name the columns "
                        "(for example x,t)")
    if len(header) > MAX_COLUMNS:
        raise DataError(f"'{shown}' has {len(header)} columns; gdviz takes at most {MAX_COLUMNS}")
    body = rows[1:]
    if not body:
        raise DataError(f"'{shown}' has a header but no data rows")
    for k, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"row {k + 2} of '{shown}' has {len(row)} cell"
                            f"{'s' * (len(row) != 1)}; the header has {len(header)}")
    names = [variable_name(h, i) for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(f"columns {seen[name] + 1} and {i + 1} of '{shown}' would both be "
                            f"called '{name}'; rename one in the header")
        seen[name] = i
    columns: dict[str, np.ndarray] = {}
    for i, (name, head) in enumerate(zip(names, header)):
        cells = [row[i] for row in body]
        columns[name] = _column(cells, head or f"column {i + 1}", shown)
    notes = tuple(f"column '{h}' is used as {n}" + (" (y is the function's value)" if h == "y"
                                                      else "")
                  for h, n in zip(header, names) if h != n)
    return Dataset(columns, source, dict(zip(names, header)), notes)


def _column(cells: list[str], header: str, shown: str) -> np.ndarray:
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        for k, cell in enumerate(cells):
            if not _is_number(cell):
                what = "is empty" if not cell.strip() else f"is '{cell.strip()[:30]}', not a number"
                raise DataError(f"row {k + 2}, column '{header}' of '{shown}' {what}") from None
        raise  # pragma: no cover - np.array failed, so some cell is not a number
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        k = int(bad[0])
        raise DataError(f"row {k + 2}, column '{header}' of '{shown}' is {cells[k].strip()}; "
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

