"""Reading import files: CSV and XLSX, a row at a time, with clear errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from dialbase.imports.files import FileError, format_of, header_error, open_rows


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path, fmt: str) -> tuple[list[str], list[tuple[int, list[object]]]]:
    header, rows = open_rows(path, fmt)
    return header, list(rows)


def xlsx(tmp_path: Path, rows: list[list[object]], name: str = "leads.xlsx") -> Path:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    book.save(path)
    return path


def test_csv_header_then_rows_with_their_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path, "a.csv", b"PhoneNumber,Name\r\n9876543210,Asha\r\n+919876543211,Ravi\r\n"
    )
    assert read_all(path, "csv") == (
        ["PhoneNumber", "Name"],
        [(2, ["9876543210", "Asha"]), (3, ["+919876543211", "Ravi"])],
    )


def test_csv_with_a_byte_order_mark_reads_the_first_column_name_plainly(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "\ufeffPhoneNumber,Name\n9876543210,Zoë\n".encode())
    assert read_all(path, "csv") == (["PhoneNumber", "Name"], [(2, ["9876543210", "Zoë"])])


def test_csv_blank_rows_are_skipped_and_lines_still_count_them(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"PhoneNumber,Name\n\n9876543210,A\n,\n 9876543211 ,B\n\n")
    assert read_all(path, "csv") == (
        ["PhoneNumber", "Name"],
        [(3, ["9876543210", "A"]), (5, [" 9876543211 ", "B"])],
    )


def test_csv_a_quoted_value_over_two_lines_keeps_the_line_it_starts_on(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b'PhoneNumber,Note\n9876543210,"two\nlines"\n9876543211,x\n')
    assert read_all(path, "csv") == (
        ["PhoneNumber", "Note"],
        [(2, ["9876543210", "two\nlines"]), (4, ["9876543211", "x"])],
    )


def test_csv_short_rows_stay_short_and_trailing_empty_cells_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"PhoneNumber,Name,Priority\n9876543210\n9876543211,,\n")
    assert read_all(path, "csv") == (
        ["PhoneNumber", "Name", "Priority"],
        [(2, ["9876543210"]), (3, ["9876543211"])],
    )


def test_csv_text_that_is_not_utf8_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"PhoneNumber,Name\n9876543210,Jos\xe9\n")
    header, rows = open_rows(path, "csv")
    assert header == ["PhoneNumber", "Name"]
    with pytest.raises(FileError) as caught:
        list(rows)
    assert caught.value.message == "line 2 is not UTF-8 text: save the file as CSV UTF-8"


def test_csv_header_that_is_not_utf8_is_refused_when_opening(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"T\xe9l\xe9phone,Name\n1,2\n")
    with pytest.raises(FileError) as caught:
        open_rows(path, "csv")
    assert caught.value.message == "line 1 is not UTF-8 text: save the file as CSV UTF-8"


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    for data in (b"", b"\n\n", b"\xef\xbb\xbf"):
        with pytest.raises(FileError) as caught:
            open_rows(write(tmp_path, "a.csv", data), "csv")
        assert caught.value.message == "the file is empty: the first row must name the columns"


def test_csv_a_value_over_the_cell_limit_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b"PhoneNumber,Name\n1,2\n3," + b"x" * 100_001 + b"\n")
    header, rows = open_rows(path, "csv")
    with pytest.raises(FileError) as caught:
        list(rows)
    assert caught.value.message == "line 3: a value longer than 100000 characters"


def test_csv_a_stray_quote_is_read_as_text_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b'PhoneNumber,Name\n9876543210,Sam "the" man\n')
    assert read_all(path, "csv")[1] == [(2, ["9876543210", 'Sam "the" man'])]


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileError) as caught:
        open_rows(write(tmp_path, "a.txt", b"x"), "txt")
    assert caught.value.message == "unknown file format 'txt': use csv or xlsx"


def test_xlsx_values_become_the_text_a_person_sees(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path,
        [
            ["PhoneNumber", "Name", "Priority", "ExpiryDate", "Ratio", "Flag"],
            [919876543210, "Asha", 2, datetime(2027, 1, 31, 0, 0), 0.5, True],
            ["+919876543211", None, 3.0, datetime(2027, 2, 1, 18, 30, 5), None, False],
            [],
            [None, None],
            ["9876543212", "Only two"],
        ],
    )
    assert read_all(path, "xlsx") == (
        ["PhoneNumber", "Name", "Priority", "ExpiryDate", "Ratio", "Flag"],
        [
            (2, ["919876543210", "Asha", "2", "2027-01-31", "0.5", "true"]),
            (3, ["+919876543211", None, "3", "2027-02-01 18:30:05", None, "false"]),
            (6, ["9876543212", "Only two"]),
        ],
    )


def test_xlsx_a_date_cell_reads_as_a_date(tmp_path: Path) -> None:
    path = xlsx(tmp_path, [["PhoneNumber", "ExpiryDate"], ["9876543210", date(2027, 3, 4)]])
    assert read_all(path, "xlsx")[1] == [(2, ["9876543210", "2027-03-04"])]


def test_xlsx_a_sheet_starting_below_row_one_is_refused(tmp_path: Path) -> None:
    path = xlsx(tmp_path, [[], ["PhoneNumber"], ["9876543210"]])
    with pytest.raises(FileError) as caught:
        open_rows(path, "xlsx")
    assert caught.value.message == "the first row of the worksheet must name the columns"


def test_xlsx_an_empty_sheet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileError) as caught:
        open_rows(xlsx(tmp_path, []), "xlsx")
    assert caught.value.message == "the worksheet is empty: the first row must name the columns"


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    for data in (b"PhoneNumber\n1\n", b"PK\x03\x04broken"):
        with pytest.raises(FileError) as caught:
            open_rows(write(tmp_path, "a.xlsx", data), "xlsx")
        assert caught.value.message.startswith("not a readable XLSX workbook (")


def test_header_needs_a_phone_number_column_in_any_case() -> None:
    assert header_error(["phonenumber", "Name"]) is None
    assert header_error([" PHONENUMBER "]) is None
    assert header_error(["Phone", "Name"]) == (
        "no PhoneNumber column: the first row must name one column PhoneNumber"
    )
    assert header_error([]) == "the first row must name the columns"


def test_format_comes_from_the_extension_then_the_media_type() -> None:
    assert format_of("Leads.CSV") == "csv"
    assert format_of("leads.xlsx", "text/csv") == "xlsx"
    assert format_of("upload", "text/csv; charset=utf-8") == "csv"
    sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert format_of(None, sheet) == "xlsx"
    assert format_of("leads.xls", "application/vnd.ms-excel") is None
    assert format_of("leads.txt", None) is None


READ_BIG = """
import resource, sys
from pathlib import Path
from dialbase.imports.files import open_rows
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
header, rows = open_rows(Path(sys.argv[1]), sys.argv[2])
count = sum(1 for _ in rows)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(count, grown)
"""


def test_csv_reading_does_not_hold_the_file_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("PhoneNumber,Name,Note\n")
        for i in range(400_000):
            out.write(f"98{i:08d},Name {i},{'x' * 100}\n")
    assert path.stat().st_size > 45_000_000
    done = subprocess.run(
        [sys.executable, "-c", READ_BIG, str(path), "csv"], capture_output=True, text=True
    )
    count, grown_kib = (int(x) for x in done.stdout.split())
    assert count == 400_000
    assert grown_kib < 10_000, f"reading grew the process by {grown_kib} KiB"
