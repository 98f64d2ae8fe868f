"""Helpers of the CLI tests: run a command in process, make databases in any state."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import Result
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from dialbase.cli import app
from dialbase.config import Settings
from dialbase.db import create_engine
from dialbase.migrate import upgrade
from tests.conftest import POSTGRES_URL, pg_admin, pg_database_url


def cli(*args: str) -> Result:
    """``dialbase ARGS`` in this process; stdout and stderr apart."""
    return CliRunner().invoke(app, list(args), env={"DIALBASE_DATABASE_URL": None})


def one_line_error(result: Result) -> str:
    """The single stderr line of a clean failure (never a traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return lines[0]


def migrate_to(url: str, revision: str) -> None:
    async def main() -> None:
        engine = create_engine(Settings(database_url=url))
        await upgrade(engine, revision)
        await engine.dispose()

    asyncio.run(main())


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def pg_tables(url: str) -> set[str]:
    async def main() -> set[str]:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        finally:
            await conn.close()
        return {row["table_name"] for row in rows}

    return asyncio.run(main())


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A new PostgreSQL database without any table; dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("DIALBASE_TEST_POSTGRES_URL is not set")
    name = f"dialbase_cli_{uuid.uuid4().hex[:12]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_database_url(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
