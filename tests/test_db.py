"""SQLite transactions are begun by one mechanism: SQLAlchemy's ``begin`` event, deferred
unless the connection asks for ``BEGIN IMMEDIATE`` (``db.SQLITE_BEGIN``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from dialbase.config import Settings
from dialbase.db import IMMEDIATE, SQLITE_BEGIN, create_engine


def _other_writer_can_lock(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    await engine.dispose()


async def test_a_read_runs_in_a_deferred_transaction_that_takes_no_write_lock(engine, tmp_path):
    async with engine.connect() as conn:
        await conn.execute(text("SELECT count(*) FROM t"))
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw.in_transaction  # type: ignore[union-attr]  # BEGIN sent by SQLAlchemy
        assert _other_writer_can_lock(tmp_path / "db.sqlite")


async def test_an_immediate_transaction_holds_the_write_lock_from_its_begin(engine, tmp_path):
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{SQLITE_BEGIN: IMMEDIATE})
        await conn.begin()
        assert not _other_writer_can_lock(tmp_path / "db.sqlite")
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        await conn.commit()
    assert _other_writer_can_lock(tmp_path / "db.sqlite")


async def test_a_transaction_may_still_open_itself_with_its_own_begin(engine, tmp_path):
    """As ``migrate.py`` does: its BEGIN IMMEDIATE takes the place of the deferred one."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        assert not _other_writer_can_lock(tmp_path / "db.sqlite")
        await conn.execute(text("INSERT INTO t VALUES (2)"))
    async with engine.connect() as conn:
        assert (await conn.scalar(text("SELECT count(*) FROM t"))) == 1
