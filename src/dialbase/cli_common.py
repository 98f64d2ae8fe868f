"""What every CLI command shares: the database option, one session, clean errors."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import alembic.util
import asyncpg
import orjson
import sqlalchemy.exc
import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from dialbase import __version__
from dialbase.config import Settings
from dialbase.db import (
    DatabaseURLError,
    async_url,
    backend_name,
    create_engine,
    make_sessionmaker,
    session_scope,
    sqlite_path,
)
from dialbase.errors import DialbaseError
from dialbase.migrate import Migration, SchemaState, known_revisions, schema_state, upgrade
from dialbase.observability.logs import json_line

T = TypeVar("T")
# What a command may do to the schema of the database it is pointed at:
# - "read": nothing; the database must be at dialbase's current schema.
# - "write": create the schema in a new SQLite file or a database without tables.
# - "upgrade": create or migrate it (``serve`` and ``db upgrade`` only).
Access = Literal["read", "write", "upgrade"]
UPGRADE_HINT = "run `dialbase db upgrade`"
# What an unreachable, refusing or broken database raises: one line, exit 1.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection within DIALBASE_DB_POOL_TIMEOUT
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
    OSError,
    asyncio.TimeoutError,
)

DatabaseURL = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="DIALBASE_DATABASE_URL",
        help="sqlite:///FILE or postgresql://user@host:port/db [default: sqlite:///./dialbase.db]",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Username = Annotated[str, typer.Option("--username", help="The account's user name.")]


class SchemaRefused(Exception):
    """The database is not at a schema this command may use (one line, exit 1)."""


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def settings_for(database_url: str | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"DIALBASE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"bad setting: {problems}")


def run_async(work: Awaitable[T]) -> T:
    """Run a coroutine; turn every expected failure into one line on stderr."""
    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except BrokenPipeError:  # e.g. `dialbase leads export | head`: the reader left
        _quiet_stdout()
        raise typer.Exit(0) from None
    except SchemaRefused as exc:
        fail(str(exc))
    except DialbaseError as exc:
        fail(exc.message)
    except DatabaseURLError as exc:
        fail(str(exc))
    except DATABASE_ERRORS as exc:
        fail(f"cannot use the database: {exc.__class__.__name__}: {_first_line(exc)}")
    except alembic.util.CommandError as exc:
        fail(f"cannot migrate the database: {_first_line(exc)}")


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test runner's capture)
        pass
    finally:
        os.close(devnull)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


def shown_url(url: str) -> str:
    """A database URL fit to print (no password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (an unparsable URL is refused later, by create_engine)
        return url


def with_session(
    settings: Settings,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    access: Access = "read",
) -> T:
    """Run ``work`` in one committed transaction, on a database at dialbase's schema.

    ``access`` says what the command may do to the schema first (see ``Access``); a
    database it may not use answers one line naming ``dialbase db upgrade``.
    """
    new_file = _missing_sqlite_file(settings.database_url, access)

    async def main() -> T:
        engine = create_engine(settings)
        try:
            if access == "upgrade" or new_file or await _may_create(engine, settings, access):
                _report(settings, await upgrade(engine))
            sessions = make_sessionmaker(engine)
            async with session_scope(sessions, read_only=access == "read") as session:
                return await work(session)
        finally:
            await engine.dispose()

    return run_async(main())


def migrate_database(settings: Settings) -> Migration:
    """``dialbase db upgrade``: create or migrate the schema; what was done."""

    async def main() -> Migration:
        engine = create_engine(settings)
        try:
            return await upgrade(engine)
        finally:
            await engine.dispose()

    return run_async(main())


def _missing_sqlite_file(url: str, access: Access) -> bool:
    """Whether ``url`` names a SQLite file that does not exist yet (checked before any
    connection: SQLite creates the file on connect). A reading command stops here."""
    try:
        if backend_name(url) != "sqlite" or Path(sqlite_path(url)).exists():
            return False
    except DatabaseURLError as exc:
        fail(str(exc))
    if access == "read":
        fail(f"there is no database at {sqlite_path(url)}: create it with `dialbase db upgrade`")
    return True


async def _may_create(engine: AsyncEngine, settings: Settings, access: Access) -> bool:
    """Check the schema of an existing database; whether to create it (empty database)."""
    state = await _read_state(engine, settings)
    if state.at_head:
        return False
    shown = shown_url(settings.database_url)
    if state.current is None and state.empty and access == "write":
        return True
    if state.current is None:
        raise SchemaRefused(f"{shown} has no dialbase schema: {UPGRADE_HINT} to create it")
    if state.current not in known_revisions():
        raise SchemaRefused(
            f"{shown} is at schema revision {state.current}, which dialbase {__version__}"
            " does not know: use the dialbase that migrated it, or a newer one"
        )
    raise SchemaRefused(
        f"{shown} is at schema revision {state.current}, older than this dialbase's"
        f" {state.head}: {UPGRADE_HINT} to migrate it"
    )


async def _read_state(engine: AsyncEngine, settings: Settings) -> SchemaState:
    if backend_name(settings.database_url) != "sqlite":
        async with engine.connect() as conn:
            return await conn.run_sync(schema_state)
    # dialbase's SQLite engine sets PRAGMAs on connect (journal_mode=WAL changes the
    # file): read a database that may not be ours through a bare connection.
    bare = create_async_engine(async_url(settings.database_url), poolclass=NullPool)
    try:
        async with bare.connect() as conn:
            return await conn.run_sync(schema_state)
    finally:
        await bare.dispose()


def _report(settings: Settings, migration: Migration) -> None:
    """One line on stderr when the schema was created or migrated."""
    if migration.before == migration.after:
        return
    message = f"{migration.describe()} in {shown_url(settings.database_url)}"
    if settings.log_format == "json":  # `serve`'s log is JSON from its first line
        message = json_line("dialbase.migrate", message)
    typer.echo(message, err=True)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def shown_value(item: Any) -> str:
    """A value as the plain-text output shows it: lists comma-separated, nothing as "-"."""
    if item is None:
        return "-"
    if isinstance(item, list):
        return ", ".join(map(str, item)) or "-"
    return str(item)


def print_fields(value: dict[str, Any]) -> None:
    width = max(len(k) for k in value)
    for key, item in value.items():
        typer.echo(f"{key.ljust(width)}  {shown_value(item)}")


def print_table(rows: list[dict[str, Any]], empty: str) -> None:
    """Rows as aligned columns under their keys; ``empty`` when there is none."""
    if not rows:
        typer.echo(empty)
        return
    keys = list(rows[0])
    cells = [[shown_value(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(line[i]) for line in cells)) for i, k in enumerate(keys)]
    for line in [keys, *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
