"""``dialbase dnc``: an account's do-not-call list. Thin, over ``dnc.service``.

``import`` reads a CSV file (numbers in the first column, or in a column named
phoneNumber, phone or number; a header row is optional) or a text file with one number
per line, as a stream, in one transaction: everything it lists is committed together,
or nothing. Values that are not phone numbers are counted, the first few named on
stderr, and the import goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import get_account
from dialbase.cli_common import (
    DatabaseURL,
    JsonFlag,
    Username,
    fail,
    print_fields,
    print_json,
    print_table,
    settings_for,
    with_session,
)
from dialbase.db import IMMEDIATE, SQLITE_BEGIN, utcnow
from dialbase.dnc import service
from dialbase.dnc.schemas import DncEntryOut
from dialbase.errors import Invalid

dnc_app = typer.Typer(
    help="Do-not-call lists: add, remove, list and import numbers.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Number = Annotated[str, typer.Argument(help="The number: an optional + then 3 to 16 digits.")]
HEADER_NAMES = frozenset({"phonenumber", "phone", "number"})
SHOWN_INVALID = 10  # invalid values named on stderr; the rest are only counted


def _view(entry: Any) -> dict[str, Any]:
    return DncEntryOut.of(entry).model_dump(mode="json", by_alias=True)


def _expiry(text: str | None) -> datetime | None:
    """``--expires-at`` as an instant (ISO 8601 with an offset, in the future)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"--expires-at: {text!r} is not an ISO 8601 date and time, like 2026-12-01T15:30+05:30"
        )
    try:
        return service.check_expiry(value, utcnow())
    except Invalid as exc:
        fail(f"--expires-at: {exc.message}")


def _precheck(number: str, note: str | None = None) -> None:
    """Refuse a bad number or note before the database is opened (or created)."""
    try:
        service.check_number(number)
        service.check_note(note)
    except Invalid as exc:
        fail(exc.message)


@dnc_app.command("add")
def add(
    number: Number,
    username: Username,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="When the entry stops counting: ISO 8601 with an offset. Default: never.",
            show_default=False,
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note (1000 characters).")] = None,
    database_url: DatabaseURL = None,
) -> None:
    """Put a number on the list, or replace its expiry and note."""
    _precheck(number, note)
    expiry = _expiry(expires_at)

    async def work(session: AsyncSession) -> tuple[str, bool]:
        account = await get_account(session, username)
        entry, created = await service.put_entry(session, account, number, expiry, note)
        return entry.number, created

    listed, created = with_session(settings_for(database_url), work, access="write")
    if created:
        typer.echo(f"{listed} added to the do-not-call list of {username!r}")
    else:
        typer.echo(f"{listed} was already listed: its expiry and note were replaced")


@dnc_app.command("remove")
def remove(number: Number, username: Username, database_url: DatabaseURL = None) -> None:
    """Take a number off the list."""
    _precheck(number)

    async def work(session: AsyncSession) -> tuple[str, bool]:
        account = await get_account(session, username)
        form = service.listed_form(account, number)
        return form, await service.remove_entry(session, account, number)

    listed, removed = with_session(settings_for(database_url), work, access="write")
    if not removed:
        fail(f"{listed} is not on the do-not-call list of {username!r}")
    typer.echo(f"{listed} removed from the do-not-call list of {username!r}")


@dnc_app.command("list")
def list_numbers(username: Username, database_url: DatabaseURL = None, json: JsonFlag = False):
    """List the numbers in force, by number (expired entries are left out)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        account = await get_account(session, username)
        return [_view(entry) async for entry in service.iter_entries(session, account.id)]

    views = with_session(settings_for(database_url), work)
    if json:
        print_json(views)
    else:
        print_table(views, f"the do-not-call list of {username!r} is empty")


@dnc_app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="A CSV file (numbers in the first column or in a column named phoneNumber,"
            " phone or number; header optional) or a text file with one number per line.",
            show_default=False,
        ),
    ],
    username: Username,
    database_url: DatabaseURL = None,
) -> None:
    """List every number of a file that is not listed yet (no expiry)."""
    try:
        handle = file.open("rb")
        size = file.stat().st_size
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    reader = _Reader(handle)
    invalid: list[tuple[int, str]] = []

    def note_invalid(value: str) -> None:
        if len(invalid) < SHOWN_INVALID:
            invalid.append((reader.line, value))

    async def work(session: AsyncSession) -> service.ImportCounts:
        account = await get_account(session, username)
        with _progress() as progress:
            reader.progress = (progress, progress.add_task(file.name, total=size))
            try:
                return await service.import_numbers(
                    session,
                    account,
                    reader.numbers(),
                    on_invalid=note_invalid,
                    checkpoint=lambda: commit_and_continue(session),
                )
            except csv.Error as exc:
                raise Invalid(f"{file}: line {reader.line}: {exc}") from None

    try:
        counts = with_session(settings_for(database_url), work, access="write")
    finally:
        handle.close()
    for line, value in invalid:
        shown = value if len(value) <= 40 else value[:40] + "..."
        typer.echo(f"line {line}: not a phone number: {shown!r}", err=True)
    print_fields(
        {
            "added": counts.added,
            "already listed": counts.already_listed,
            "invalid": counts.invalid,
        }
    )


async def commit_and_continue(session: AsyncSession) -> None:
    """Commit what the import listed so far and go on in a new write transaction."""
    await session.commit()
    await session.connection(execution_options={SQLITE_BEGIN: IMMEDIATE})


def _progress() -> Progress:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=True)


class _Reader:
    """The numbers of an import file, read a line at a time (bytes read drive the bar)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.progress: tuple[Progress, Any] | None = None
        self.line = 0  # the line of the record read last

    def _lines(self) -> Iterator[str]:
        for index, raw in enumerate(self.handle):
            if self.progress is not None:
                progress, task = self.progress
                progress.advance(task, len(raw))
            yield raw.decode("utf-8-sig" if index == 0 else "utf-8", errors="replace")

    def numbers(self) -> Iterator[str]:
        rows = csv.reader(self._lines())
        column: int | None = None  # decided by the first row that is not blank
        for row in rows:
            self.line = rows.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if column is None:
                column = _header_column(cells)
                if column is not None:
                    continue  # a header naming the column
                column = 0
                if not any(char.isdigit() for char in cells[0]):
                    continue  # a header without a known name: numbers come first
            yield cells[column] if column < len(cells) else ""


def _header_column(cells: list[str]) -> int | None:
    """The column a header row names as the phone number's, if it is one."""
    for index, cell in enumerate(cells):
        if cell.lower().replace("_", "").replace(" ", "") in HEADER_NAMES:
            return index
    return None
