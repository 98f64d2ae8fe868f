"""What every CLI command shares: the database option, one session, clean errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import alembic.util
import asyncpg
import orjson
import sqlalchemy.exc
import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.config import Settings
from dialbase.db import (
    DATABASE_ERRORS,
    DatabaseURLError,
    create_engine,
    make_sessionmaker,
    session_scope,
)
from dialbase.errors import DialbaseError
from dialbase.migrate import upgrade

T = TypeVar("T")

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
    except DialbaseError as exc:
        fail(exc.message)
    except DatabaseURLError as exc:
        fail(str(exc))
    except (*DATABASE_ERRORS, sqlalchemy.exc.DBAPIError, asyncpg.PostgresError) as exc:
        fail(f"cannot use the database: {exc.__class__.__name__}: {_first_line(exc)}")
    except alembic.util.CommandError as exc:
        fail(f"cannot migrate the database: {_first_line(exc)}")
    except BrokenPipeError:  # e.g. `dialbase leads export | head`
        sys.stderr.close()
        raise typer.Exit(0) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate the database if needed, then run ``work`` in one committed transaction."""

    async def main() -> T:
        engine = create_engine(settings)
        try:
            await upgrade(engine)
            async with session_scope(make_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return run_async(main())


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_fields(value: dict[str, Any]) -> None:
    width = max(len(k) for k in value)
    for key, item in value.items():
        shown = ", ".join(map(str, item)) if isinstance(item, list) else item
        typer.echo(f"{key.ljust(width)}  {shown}")
