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
from sqlalchemy.engine import Dialect, make_url
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


SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def sqlite_instant(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores for an aware instant (as UTC)."""
    return value.astimezone(UTC).strftime(SQLITE_FORMAT)


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


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings.database_url)
    if backend_name(settings.database_url) == "sqlite":
        sqlite_path(settings.database_url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        pragmas = sqlite_pragmas(settings)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(pragma)
            cursor.close()

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
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The one owner of transactions: commits once on success, rolls back on error."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
