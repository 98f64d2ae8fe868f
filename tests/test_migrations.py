"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Alembic's autogenerate compares a database migrated to head with the models' metadata
(the comparison ``alembic revision --autogenerate`` makes, with the options
``migrations/env.py`` gives it): an empty difference means no migration is missing.
"""

from __future__ import annotations

from pprint import pformat
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import dialbase.models  # noqa: F401  (registers every table, as migrations/env.py does)
from dialbase.db import Base, create_engine
from dialbase.migrate import alembic_config
from tests.conftest import Backend


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"render_as_batch": connection.dialect.name == "sqlite"}
    )
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert context.get_current_revision() == head
    return list(compare_metadata(context, Base.metadata))


async def test_a_database_migrated_to_head_matches_the_models(backend: Backend):
    engine = create_engine(backend.settings())
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == [], pformat(differences)
