"""``dialbase dnc add|remove|list|import`` (run as ``dnc_app``, in process)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker
from dialbase.dnc.cli import dnc_app
from tests.dnc.helpers import acme, add_raw_entry, minutes_ago

NUMBER = "+919876543210"


def dnc(url: str, *args: str) -> Result:
    """``dialbase dnc ARGS --username acme --database-url URL``; stdout and stderr apart."""
    return CliRunner().invoke(
        dnc_app,
        [*args, "--username", "acme", "--database-url", url],
        env={"DIALBASE_DATABASE_URL": None},
    )


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def _seed(settings: Settings, *, country: str | None = "IN", expired: str | None = None) -> None:
    async def main() -> None:
        engine = create_engine(settings)
        sessions = make_sessionmaker(engine)
        await acme(sessions, country=country)
        if expired is not None:
            await add_raw_entry(sessions, expired, expires_at=minutes_ago(1))
        await engine.dispose()

    asyncio.run(main())


@pytest.fixture
def url(backend) -> str:  # type: ignore[no-untyped-def]
    settings = backend.settings()
    _seed(settings)
    return settings.database_url


def _listed(url: str) -> list[dict]:
    result = dnc(url, "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_list_and_remove_a_number(url):
    added = dnc(url, "add", "09876543210")
    assert added.exit_code == 0, added.output
    assert added.stdout == f"{NUMBER} added to the do-not-call list of 'acme'\n"
    again = dnc(url, "add", "9876543210", "--note", "asked", "--expires-at", "2099-01-01T00:00Z")
    assert again.exit_code == 0, again.output
    assert "already listed" in again.stdout
    [entry] = _listed(url)
    assert entry["number"] == NUMBER and entry["note"] == "asked"
    assert entry["expiresAt"] == "2099-01-01T00:00:00Z"
    table = dnc(url, "list").stdout.splitlines()
    assert table[0].split() == ["number", "expiresAt", "note", "createdAt"]
    assert table[1].startswith(NUMBER)
    removed = dnc(url, "remove", NUMBER)
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"{NUMBER} removed from the do-not-call list of 'acme'\n"
    assert _listed(url) == []
    assert dnc(url, "list").stdout == "the do-not-call list of 'acme' is empty\n"


def test_removing_a_number_not_listed_fails_with_one_line(url):
    line = one_line_error(dnc(url, "remove", "9876543210"))
    assert line == f"error: {NUMBER} is not on the do-not-call list of 'acme'"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["add", "98765-43210"], "is not a phone number"),
        (["add", NUMBER, "--expires-at", "tomorrow"], "not an ISO 8601"),
        (["add", NUMBER, "--expires-at", "2001-01-01T00:00+00:00"], "in the future"),
        (["add", NUMBER, "--expires-at", "2099-01-01T00:00"], "UTC offset"),
        (["add", NUMBER, "--note", "x" * 1001], "1000 characters"),
        (["remove", "abc"], "is not a phone number"),
    ],
)
def test_bad_values_fail_with_one_line_and_change_nothing(url, args, words):
    assert words in one_line_error(dnc(url, *args))
    assert _listed(url) == []


def test_an_unknown_account_fails_with_one_line(url):
    result = CliRunner().invoke(
        dnc_app, ["add", NUMBER, "--username", "nobody", "--database-url", url]
    )
    assert "no account named 'nobody'" in one_line_error(result)


def test_list_leaves_out_expired_entries(backend):
    settings = backend.settings()
    _seed(settings, expired="+919876500009")
    assert _listed(settings.database_url) == []


def test_import_a_csv_with_a_header_counts_added_already_listed_and_invalid(
    backend, tmp_path: Path
):
    settings = backend.settings()
    _seed(settings, expired="+919876500004")
    url = settings.database_url
    assert dnc(url, "add", "+919876500001").exit_code == 0
    source = tmp_path / "numbers.csv"
    source.write_text(
        "name,phoneNumber,city\n"
        "Asha,+919876500001,Pune\n"  # listed before
        "Ravi,09876500002,Delhi\n"
        "Ravi again,9876500002,Delhi\n"  # the same number
        "Nobody,not a number,Goa\n"
        "\n"
        'Quoted,"  +919876500003 ",Agra\n'
        "Short row\n"
        "Back,9876500004,Pune\n",  # expired before: listed anew
        encoding="utf-8-sig",
    )
    result = dnc(url, "import", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "added           3",
        "already listed  2",
        "invalid         2",
    ]
    assert "line 5: not a phone number: 'not a number'" in result.stderr
    assert "line 8: not a phone number: ''" in result.stderr
    assert [e["number"] for e in _listed(url)] == [f"+91987650000{n}" for n in (1, 2, 3, 4)]
    rerun = dnc(url, "import", str(source))
    assert rerun.stdout.splitlines()[:2] == ["added           0", "already listed  5"]


def test_import_a_text_file_of_one_number_a_line(url, tmp_path: Path):
    source = tmp_path / "numbers.txt"
    source.write_bytes(b"+919876500001\r\n9876500002\r\n\r\n+919876500001\r\n12\r\n")
    result = dnc(url, "import", str(source))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "added           2",
        "already listed  1",
        "invalid         1",
    ]


def test_import_a_csv_without_a_header_reads_the_first_column(url, tmp_path: Path):
    source = tmp_path / "numbers.csv"
    source.write_text("9876500001,Asha\n9876500002,Ravi\n")
    result = dnc(url, "import", str(source))
    assert result.stdout.splitlines()[0] == "added           2"
    assert [e["number"] for e in _listed(url)] == ["+919876500001", "+919876500002"]


def test_import_of_a_missing_file_fails_with_one_line(url, tmp_path: Path):
    line = one_line_error(dnc(url, "import", str(tmp_path / "nope.csv")))
    assert line.startswith("error: cannot read") and "nope.csv" in line
