"""Apply the Alembic migrations shipped inside the package, and tell where a database is.

Safe to run from many processes at once: on PostgreSQL an advisory lock lets one
process migrate while the others wait; on SQLite the file's write lock, taken before
the schema version is read, does the same.

Who may change a schema: ``dialbase serve`` and ``dialbase db upgrade`` migrate; the
CLI's writing commands only create the schema in a new SQLite file or an empty database;
reading commands never touch it (see ``dialbase.cli_common``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6469616C  # "dial"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migration"
    return head


def known_revisions() -> set[str]:
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: its Alembic revision (None: none) and whether it has tables."""

    current: str | None
    head: str
    has_tables: bool

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        """No table at all: a database dialbase may create its schema in."""
        return not self.has_tables


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def schema_state(connection: Connection) -> SchemaState:
    """Read-only: the revision in ``alembic_version`` and whether any table exists."""
    tables = inspect(connection).get_table_names()
    return SchemaState(current_revision(connection), head_revision(), bool(tables))


@dataclass(frozen=True)
class Migration:
    """What ``upgrade`` did: the revision before (None: no schema) and after."""

    before: str | None
    after: str | None

    def describe(self) -> str:
        if self.before is None:
            return f"created dialbase's schema (revision {self.after})"
        if self.before != self.after:
            return f"migrated from {self.before} to {self.after}"
        return f"up to date at {self.after}"


def _upgrade(connection: Connection, revision: str) -> Migration:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    else:  # take the file's write lock before reading the schema version
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    before = current_revision(connection)
    command.upgrade(cfg, revision)
    return Migration(before, current_revision(connection))


async def upgrade(engine: AsyncEngine, revision: str = "head") -> Migration:
    async with engine.begin() as conn:
        return await conn.run_sync(_upgrade, revision)
