"""``dialbase leads import FILE``: the file checked and copied, added here with a progress
bar, a one-line summary; rejected rows in FILE.rejected.csv and exit status 1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from openpyxl import Workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from dialbase.cli import app
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.imports.models import Import
from dialbase.leads.models import Lead
from tests.conftest import Backend
from tests.factories import campaign_running, make_account, make_campaign

CSV = (
    "PhoneNumber,Name,Priority,City\r\n"
    "9876543210,Asha,2,Pune\r\n"
    "not-a-number,Bad,1,Goa\r\n"
    "9876543210,Again,1,Goa\r\n"
    "9876543211,Ravi,,\r\n"
)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    settings = backend.settings(import_dir=str(tmp_path / "imports"))

    async def seed() -> None:
        engine = create_engine(settings)
        sessions = make_sessionmaker(engine)
        await make_account(sessions)
        await make_campaign(sessions)
        await make_campaign(sessions, "Inbound", direction="inbound")
        await engine.dispose()

    asyncio.run(seed())
    return settings


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(
        app,
        ["leads", "import", *args, "--username", "acme", "--database-url", settings.database_url],
        env={"DIALBASE_DATABASE_URL": None, "DIALBASE_IMPORT_DIR": settings.import_dir},
    )


def state(settings: Settings) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        engine = create_engine(settings)
        sessions = make_sessionmaker(engine)
        try:
            async with session_scope(sessions) as session:
                leads = (await session.execute(select(Lead.phone_number, Lead.name))).all()
                imports = await session.scalar(select(func.count()).select_from(Import))
            return {
                "leads": sorted((str(n), nm) for n, nm in leads),
                "imports": imports,
                "running": await campaign_running(sessions),
            }
        finally:
            await engine.dispose()

    return asyncio.run(main())


def staged(settings: Settings) -> list[str]:
    folder = Path(settings.import_dir) / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_rejected_rows_go_to_a_csv_beside_the_file_and_exit_1(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(CSV, newline="")
    result = run(settings, str(source), "--campaign", "Sales", "--check-duplicate")
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        f"{source}: 4 rows: 2 added, 1 duplicates, 1 rejected (import 1);"
        f" rejected rows in {source}.rejected.csv\n"
    )
    assert (tmp_path / "leads.csv.rejected.csv").read_bytes() == (
        b"PhoneNumber,Name,Priority,City,reason\r\n"
        b"not-a-number,Bad,1,Goa,phone number should be numeric and must be between 3 to 16"
        b" digits and allows prefix +\r\n"
    )
    assert state(settings) == {
        "leads": [("9876543210", "Asha"), ("9876543211", "Ravi")],
        "imports": 1,
        "running": False,
    }
    assert source.read_bytes() == CSV.encode()  # the input is never touched
    assert staged(settings) == []  # the copy is gone once the import is done


def test_a_clean_file_exits_0_with_the_summary_and_start_starts_the_campaign(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "good.csv"
    source.write_text("phonenumber,Name\n9876543210,Asha\n9876543210,Twice\n")
    result = run(settings, str(source), "--campaign", "Sales", "--start")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{source}: 2 rows: 2 added, 0 duplicates, 0 rejected (import 1)\n"
    assert not (tmp_path / "good.csv.rejected.csv").exists()
    assert state(settings) == {
        "leads": [("9876543210", "Asha"), ("9876543210", "Twice")],
        "imports": 1,
        "running": True,
    }


def test_an_xlsx_file_is_imported(settings: Settings, tmp_path: Path) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["PhoneNumber", "Name"])
    sheet.append([9876543210, "Asha"])
    source = tmp_path / "leads.xlsx"
    book.save(source)
    result = run(settings, str(source), "--campaign", "Sales")
    assert result.exit_code == 0, result.output
    assert state(settings)["leads"] == [("9876543210", "Asha")]


@pytest.mark.parametrize(
    ("name", "content", "campaign", "error"),
    [
        ("a.csv", "Phone,Name\n1,2\n", "Sales", "{file}: no PhoneNumber column: the first"),
        ("a.csv", b"PhoneNumber\n98\xe9\n", "Sales", "{file}: line 2 is not UTF-8 text"),
        ("a.csv", "PhoneNumber\n9876543210\n", "Nope", "account 'acme' has no campaign named"),
        ("a.csv", "PhoneNumber\n9876543210\n", "Inbound", "campaign 'Inbound' is not outbound"),
        ("a.txt", "PhoneNumber\n9876543210\n", "Sales", "{file}: not a .csv or .xlsx file"),
        ("a.xlsx", "PhoneNumber\n9876543210\n", "Sales", "{file}: not a readable XLSX"),
    ],
    ids=["no-phone-column", "not-utf8", "unknown-campaign", "inbound", "extension", "not-xlsx"],
)
def test_a_refused_file_is_one_line_and_queues_nothing(
    settings: Settings,
    tmp_path: Path,
    name: str,
    content: str | bytes,
    campaign: str,
    error: str,
) -> None:
    source = tmp_path / name
    if isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content)
    result = run(settings, str(source), "--campaign", campaign)
    assert one_line_error(result).startswith("error: " + error.format(file=source))
    assert state(settings) == {"leads": [], "imports": 0, "running": False}
    assert staged(settings) == []


def test_a_missing_file_is_one_line(settings: Settings, tmp_path: Path) -> None:
    result = run(settings, str(tmp_path / "absent.csv"), "--campaign", "Sales")
    assert one_line_error(result).startswith(f"error: cannot copy {tmp_path / 'absent.csv'} to ")


def test_an_unreachable_database_is_one_line_and_leaves_no_copy(tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(CSV)
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:9/none",
        import_dir=str(tmp_path / "imports"),
    )
    result = run(settings, str(source), "--campaign", "Sales")
    assert one_line_error(result).startswith("error: cannot use the database: ")
    assert staged(settings) == []


def test_a_relative_import_dir_is_stored_as_an_absolute_path(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server resuming the import may run in another directory."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_text("PhoneNumber\n9876543210\n")
    relative = settings.model_copy(update={"import_dir": "relative-imports"})
    assert run(relative, str(source), "--campaign", "Sales").exit_code == 0

    async def stored_path() -> str | None:
        engine = create_engine(settings)
        try:
            async with session_scope(make_sessionmaker(engine)) as session:
                return await session.scalar(select(Import.file_path))
        finally:
            await engine.dispose()

    path = asyncio.run(stored_path())
    assert path is not None
    assert Path(path).is_absolute()
    assert Path(path).parent == tmp_path / "relative-imports" / "uploads"
