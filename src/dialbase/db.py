"""Engine, session scope and the shared schema conventions.

One schema serves SQLite and PostgreSQL: no PostgreSQL-only column types, named
constraints (Alembic needs them on SQLite), instants stored in UTC.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import DateTime, TypeDecorator

from dialbase.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def sqlite_instant(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores for an aware instant (as UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant; stored as UTC, always read back aware (UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime needs an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseURLError(ValueError):
    pass


def async_url(url: str) -> str:
    """Map a plain ``sqlite:///`` or ``postgresql://`` URL to its async driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a long text
        raise DatabaseURLError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise DatabaseURLError(
            f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://..."
        )
    return parsed.render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """A PostgreSQL URL as asyncpg takes it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backend_name(url: str) -> str:
    return "sqlite" if make_url(async_url(url)).get_backend_name() == "sqlite" else "postgresql"


def sqlite_path(url: str) -> str:
    """The file behind a SQLite URL."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise DatabaseURLError("dialbase needs a SQLite file, not an in-memory database")
    return database


def sqlite_pragmas(settings: Settings) -> list[str]:
    return [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={settings.sqlite_synchronous.upper()}",
        f"PRAGMA busy_timeout={settings.sqlite_busy_timeout_ms}",
        "PRAGMA foreign_keys=ON",
    ]


# SQLite transactions are begun by SQLAlchemy, never by the driver (the SQLite dialect's
# documented recipe, "Using SQLAlchemy to emit BEGIN in lieu of SQLite's transaction
# control", for sqlite3 and aiosqlite): the driver's own transaction handling is off
# (``isolation_level = None``) and every transaction starts with an explicit BEGIN,
# chosen by the connection's execution option ``SQLITE_BEGIN``:
#
# - ``DEFERRED`` (the default): a plain ``BEGIN``; reads take no lock, and never wait for
#   a writer (WAL). Statistics, the ingestion directory, ``session_scope(read_only=True)``.
# - ``IMMEDIATE``: ``BEGIN IMMEDIATE`` takes the file's write lock at once (waiting up to
#   the busy timeout for it), so a transaction that reads and then writes can never fail
#   to upgrade its lock. ``session_scope`` asks for it unless ``read_only``.
#
# The ``begin`` event picks the BEGIN. ``BEGIN IMMEDIATE`` is sent at once: taking the lock
# is its point. A plain BEGIN is sent with the transaction's first statement (the same
# thing for SQLite, whose deferred BEGIN does nothing until then), unless that statement
# is a BEGIN of its own, which takes its place: ``migrate.py`` opens its transaction with
# ``BEGIN IMMEDIATE`` by hand, before alembic reads the schema version.
SQLITE_BEGIN = "dialbase_sqlite_begin"
DEFERRED = "DEFERRED"
IMMEDIATE = "IMMEDIATE"
_PENDING_BEGIN = "dialbase_pending_begin"


def _sqlite_events(engine: AsyncEngine, pragmas: list[str]) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing itself
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        mode = options.get(SQLITE_BEGIN, DEFERRED)
        if mode == IMMEDIATE:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, now
        elif mode == DEFERRED:
            conn.info[_PENDING_BEGIN] = mode
        else:
            raise ValueError(f"{SQLITE_BEGIN} must be {DEFERRED!r} or {IMMEDIATE!r}, not {mode!r}")

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _on_statement(conn: Connection, cursor: Any, statement: str, *_args: Any) -> None:
        if conn.info.pop(_PENDING_BEGIN, None) and statement.lstrip()[:5].upper() != "BEGIN":
            cursor.execute("BEGIN")

    def _on_end(conn: Connection) -> None:
        conn.info.pop(_PENDING_BEGIN, None)

    event.listen(sync_engine, "commit", _on_end)
    event.listen(sync_engine, "rollback", _on_end)


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    if backend_name(settings.database_url) == "sqlite":
        sqlite_path(settings.database_url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _sqlite_events(engine, sqlite_pragmas(settings))
        return engine
    server_settings = {"statement_timeout": str(settings.db_statement_timeout_ms)}
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args={"timeout": settings.db_connect_timeout, "server_settings": server_settings},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession], *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """The one owner of transactions: commits once on success, rolls back on error.

    On SQLite a unit of work begins with the file's write lock (``BEGIN IMMEDIATE``): one
    that reads, then writes, waits its turn instead of failing to upgrade a read lock.
    ``read_only=True`` (statistics, commands that only show) begins a plain ``BEGIN``
    that takes no lock and never waits for a writer. PostgreSQL ignores the difference.
    """
    async with sessionmaker() as session:
        try:
            if not read_only:
                await session.connection(execution_options={SQLITE_BEGIN: IMMEDIATE})
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
