"""Reading an import file (CSV or XLSX) a row at a time, never the whole file in memory.

``open_rows(path, format)`` answers the header row (the column names, as written) and an
iterator of ``(line, cells)`` for each data row, ``line`` being the row's line in the file
(the header is line 1; in a CSV file a quoted value may span lines: a row's line is the one
it starts on). Rows whose every cell is blank are skipped (a spreadsheet's empty rows, a
trailing empty line). Cells are text, or ``None`` for an empty cell; trailing empty cells are
dropped, so a row may be shorter than the header.

CSV: UTF-8 with or without a byte order mark, any line ending, comma separated, ``"``
quoting. Text that is not UTF-8 is refused (``FileError`` naming the line) rather than
guessed at.

XLSX: the first worksheet, read with openpyxl's read-only (streaming) mode. python-calamine
is faster but builds the whole sheet in memory (170 MB for 300,000 rows of 6 cells measured
here), which an upload of a million rows must not do. Spreadsheet values become the text a
person sees: whole numbers without ``.0`` (a phone number typed as a number stays a number),
dates as ``YYYY-MM-DD`` (midnight) or ``YYYY-MM-DD HH:MM:SS``, booleans as ``true`` /
``false``.

Every problem with the file itself is a ``FileError`` with a message fit to show the user;
it may be raised by ``open_rows`` (unreadable, empty, not this format) or while iterating
(a bad line further down).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

FORMATS = ("csv", "xlsx")
MAX_CELL_CHARS = 100_000  # one CSV value; far beyond a lead's 2,000 characters per row
READ_CHUNK = 64 * 1024

Row = tuple[int, list[Any]]

UPLOADS = "uploads"  # the folder of import_dir where files wait for their import


class FileError(Exception):
    """The file cannot be read as an import file; ``message`` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def format_of(filename: str | None, content_type: str | None = None) -> str | None:
    """``"csv"`` or ``"xlsx"`` from a file name's extension, else from a media type."""
    name = (filename or "").lower()
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    media = (content_type or "").split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv"):
        return "csv"
    if media == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
        return "xlsx"
    return None


def open_rows(path: Path, file_format: str) -> tuple[list[str], Iterator[Row]]:
    """The header row and the data rows of an import file (see the module's description)."""
    if file_format == "csv":
        return _open_csv(path)
    if file_format == "xlsx":
        return _open_xlsx(path)
    raise FileError(f"unknown file format {file_format!r}: use csv or xlsx")


def header_error(header: list[str]) -> str | None:
    """Why a header row cannot name an import's columns, or ``None`` when it can."""
    if not header:
        return "the first row must name the columns"
    if not any(name.strip().lower() == "phonenumber" for name in header):
        return "no PhoneNumber column: the first row must name one column PhoneNumber"
    return None


def check_file(path: Path, file_format: str) -> list[str]:
    """The header of a file that can be imported (``FileError`` if it cannot). A CSV file
    is read through once (a million rows take a second or two), so text that is not UTF-8
    or a broken line is found before anything is queued; an XLSX file only to its header
    (reading a big workbook takes minutes: a part damaged further down fails there)."""
    header, rows = open_rows(path, file_format)
    try:
        if (problem := header_error(header)) is not None:
            raise FileError(problem)
        if file_format == "csv":
            for _ in rows:
                pass
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return header


def _trimmed(cells: list[Any]) -> list[Any]:
    end = len(cells)
    while end and (cells[end - 1] is None or cells[end - 1] == ""):
        end -= 1
    return cells[:end]


def _blank(cells: list[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


# --- CSV ---------------------------------------------------------------------------------


class _Lines:
    """A binary file's text, a line at a time, decoded strictly (the line read last known).

    A line ends at a newline byte, which is never inside a UTF-8 sequence."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.line = 0
        self.first = True

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.line += 1
            if self.first:
                self.first = False
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield raw.decode()
            except UnicodeDecodeError:
                raise FileError(
                    f"line {self.line} is not UTF-8 text: save the file as CSV UTF-8"
                ) from None


def _open_csv(path: Path) -> tuple[list[str], Iterator[Row]]:
    try:
        handle = path.open("rb", buffering=READ_CHUNK)
    except OSError as exc:
        raise FileError(f"cannot read the file: {exc.strerror or exc}") from None
    lines = _Lines(handle)
    reader = csv.reader(lines, strict=False)
    rows = _csv_rows(reader, lines)
    try:
        first = next(rows, None)
    except BaseException:
        handle.close()
        raise
    if first is None:
        handle.close()
        raise FileError("the file is empty: the first row must name the columns")
    header = [cell.strip() for cell in first[1]]
    return header, _closing(rows, handle)


def _csv_rows(reader: Any, lines: _Lines) -> Iterator[Row]:
    while True:
        start = lines.line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(f"line {start}: {exc}") from None
        if not cells or _blank(cells):
            continue
        if any(len(cell) > MAX_CELL_CHARS for cell in cells):
            raise FileError(f"line {start}: a value longer than {MAX_CELL_CHARS} characters")
        yield start, _trimmed(cells)


def _closing(rows: Iterator[Row], handle: Any) -> Iterator[Row]:
    try:
        yield from rows
    finally:
        handle.close()


csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS + 1))


# --- XLSX --------------------------------------------------------------------------------


def _open_xlsx(path: Path) -> tuple[list[str], Iterator[Row]]:
    import openpyxl  # imported here: only file imports need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # not a zip, a missing or malformed part: openpyxl's own types
        raise FileError(f"not a readable XLSX workbook ({type(exc).__name__})") from None
    if not book.worksheets:
        book.close()
        raise FileError("the workbook has no worksheet")
    sheet = book.worksheets[0]
    sheet.reset_dimensions()  # trust the rows, not a dimension some writers get wrong
    rows = _xlsx_rows(sheet)
    try:
        first = next(rows, None)
    except BaseException:
        book.close()
        raise
    if first is None:
        book.close()
        raise FileError("the worksheet is empty: the first row must name the columns")
    line, cells = first
    if line != 1:
        book.close()
        raise FileError("the first row of the worksheet must name the columns")
    header = ["" if cell is None else cell.strip() for cell in cells]
    return header, _closing(rows, book)


def _xlsx_rows(sheet: Any) -> Iterator[Row]:
    try:
        for row in sheet.iter_rows():
            cells = [_xlsx_text(cell.value) for cell in row]
            if not cells or _blank(cells):
                continue
            line = next((c.row for c in row if getattr(c, "row", None)), None)
            if line is None:
                continue
            yield line, _trimmed(cells)
    except FileError:
        raise
    except Exception as exc:  # a damaged part further down the sheet
        raise FileError(f"the workbook is damaged ({type(exc).__name__})") from None


def _xlsx_text(value: Any) -> str | None:
    """A spreadsheet value as the text a person sees in it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)
