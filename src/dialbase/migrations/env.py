"""Alembic environment: runs on the async engine dialbase itself uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import dialbase.models  # noqa: F401  (registers every table)
from dialbase.db import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from dialbase.config import Settings
    from dialbase.db import create_engine

    async def _main() -> None:
        url = config.get_main_option("sqlalchemy.url") or Settings().database_url
        engine = create_engine(Settings(database_url=url))
        async with engine.connect() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_main())


run_migrations_online()
