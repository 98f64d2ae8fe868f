"""``dialbase leads import``: a CSV or XLSX file of leads added in this process.

The same import as an upload to ``POST /v1/campaigns/{campaign}/imports`` (the same
checks, per row, the same duplicate rule, source ``cli``), run here to the end with a
progress bar instead of by a server's runner:

1. the file is checked (a PhoneNumber column; a CSV file read through once) and copied
   under ``DIALBASE_IMPORT_DIR`` (the import reads the copy and deletes it when done: the
   input file is never touched);
2. the import is queued (committed) and added chunk by chunk (``imports.engine``), each
   chunk committed with its results: stopped half-way (Ctrl-C, a lost database), what was
   committed stays and a running server's runner finishes the rest (nothing twice);
3. a one-line summary; when rows were rejected, ``FILE.rejected.csv`` beside the input
   holds them (the file's columns and a ``reason`` column) and the exit status is 1.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.service import get_account
from dialbase.campaigns.models import Direction
from dialbase.campaigns.service import get_account_campaign
from dialbase.cli_common import (
    DatabaseURL,
    Username,
    fail,
    run_async,
    settings_for,
    with_session,
)
from dialbase.config import Settings
from dialbase.db import create_engine, make_sessionmaker, session_scope
from dialbase.errors import Invalid
from dialbase.imports.files import UPLOADS, FileError, check_file, format_of
from dialbase.imports.models import Import
from dialbase.imports.service import ImportRequest, failed_csv, queue_file, run_import

ImportFile = Annotated[
    Path,
    typer.Argument(
        help="A CSV (UTF-8) or XLSX file; its first row names the columns, one PhoneNumber.",
        show_default=False,
    ),
]


def register(leads_app: typer.Typer) -> None:
    leads_app.command("import")(import_command)


def import_command(
    file: ImportFile,
    username: Username,
    campaign: Annotated[str, typer.Option("--campaign", help="The campaign's name.")],
    check_duplicate: Annotated[
        bool,
        typer.Option(
            "--check-duplicate",
            help="Skip a number already in the campaign, or earlier in the file.",
        ),
    ] = False,
    start: Annotated[
        bool, typer.Option("--start", help="Start the campaign after the last row.")
    ] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Add the leads of a CSV or XLSX file to a campaign, with a progress bar.

    Exit status 0 when every row was added or was a duplicate; 1 when rows were rejected
    (they are written to FILE.rejected.csv with a reason) or the import could not run.
    """
    file_format = format_of(file.name)
    if file_format is None:
        fail(f"{file}: not a .csv or .xlsx file")
    settings = settings_for(database_url)
    staged, header = _stage(file, file_format, Path(settings.import_dir).resolve() / UPLOADS)
    request = _Request(username, campaign, header, check_duplicate, start)
    try:
        import_id = _queue(settings, staged, file_format, request)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    try:
        record, rejected_csv = _run(settings, import_id, file.name)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: the rows added so far are committed; import {import_id} resumes"
            " where it stopped in a running dialbase server (nothing is added twice)",
            err=True,
        )
        raise typer.Exit(130) from None
    summary = (
        f"{file}: {record.total} rows: {record.added} added, {record.duplicates} duplicates,"
        f" {record.rejected} rejected (import {import_id})"
    )
    if record.rejected and rejected_csv is not None:
        out = file.with_name(file.name + ".rejected.csv")
        out.write_text(rejected_csv, encoding="utf-8", newline="")
        typer.echo(f"{summary}; rejected rows in {out}")
        raise typer.Exit(1)
    typer.echo(summary)


@dataclass(frozen=True, slots=True)
class _Request:
    username: str
    campaign: str
    columns: list[str]
    check_duplicate: bool
    start: bool


def _stage(file: Path, file_format: str, folder: Path) -> tuple[Path, list[str]]:
    """The file copied where the import reads it (and deletes it), then checked there;
    the copy and its header row."""
    staged = folder / f"{uuid.uuid4().hex}.{file_format}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, staged)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        fail(f"cannot copy {file} to {folder}: {exc.strerror or exc}")
    try:
        return staged, check_file(staged, file_format)
    except FileError as exc:
        staged.unlink(missing_ok=True)
        fail(f"{file}: {exc.message}")


def _queue(settings: Settings, staged: Path, file_format: str, asked: _Request) -> int:
    async def work(session: AsyncSession) -> int:
        account = await get_account(session, asked.username)
        found = await get_account_campaign(session, account, asked.campaign)
        if found.direction != Direction.OUTBOUND:
            raise Invalid(f"campaign {found.name!r} is not outbound: it cannot import leads")
        request = ImportRequest(
            account_id=account.id,
            campaign_id=found.id,
            source="cli",
            columns=asked.columns,
            check_duplicate=asked.check_duplicate,
            start=asked.start,
        )
        return await queue_file(session, request, staged, file_format)

    return with_session(settings, work, access="write")


def _run(settings: Settings, import_id: int, name: str) -> tuple[Import, str | None]:
    """Add the import's rows here with a progress bar; the import and its rejected rows."""

    async def main() -> tuple[Import, str | None]:
        engine = create_engine(settings)
        try:
            sessions = make_sessionmaker(engine)
            with _progress() as progress:
                task = progress.add_task(name, total=None)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                await run_import(sessions, settings, import_id, advance)
            async with session_scope(sessions, read_only=True) as session:
                record = await session.get(Import, import_id)
                assert record is not None  # queued above, never deleted by an import
                rejected = None
                if record.rejected:
                    rejected = await failed_csv(session, record.account_id, import_id)
                return record, rejected
        finally:
            await engine.dispose()

    return run_async(main())


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


def _progress() -> Progress:
    columns: list[Any] = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=Console(stderr=True), transient=True)
