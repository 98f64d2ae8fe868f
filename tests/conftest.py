"""Database fixtures: every test that asks for ``backend`` runs on each configured store.

- ``sqlite``: always; a fresh SQLite file per test (copied from a migrated template).
- ``postgres``: when ``DIALBASE_TEST_POSTGRES_URL`` is set (a server URL; each test gets
  its own fresh database, cloned from a migrated template). If the variable is set and
  the server cannot be reached, the tests fail rather than skip.
- Rate-limit counters live in Redis on the PostgreSQL backend when
  ``DIALBASE_TEST_REDIS_URL`` is set (each test has its own key prefix); the test ids
  then read ``postgres+redis``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.db import create_engine
from dialbase.migrate import upgrade

POSTGRES_URL = os.environ.get("DIALBASE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("DIALBASE_TEST_REDIS_URL")
RUN_ID = uuid.uuid4().hex[:8]
CLIENT_ADDRESS = "203.0.113.7"

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="DIALBASE_TEST_POSTGRES_URL is not set"
)
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="DIALBASE_TEST_REDIS_URL is not set")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres", id="postgres+redis" if REDIS_URL else "postgres", marks=needs_postgres
    ),
]


def _migrate(url: str) -> None:
    async def main() -> None:
        engine = create_engine(Settings(database_url=url))
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(main())


def pg_database_url(name: str) -> str:
    assert POSTGRES_URL
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def pg_admin(sql: str) -> None:
    """Run one statement on the server's maintenance database."""

    async def main() -> None:
        dsn = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(main())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    name = f"dialbase_t_{RUN_ID}_template"
    pg_admin(f'CREATE DATABASE "{name}"')
    _migrate(pg_database_url(name))
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_sqlite(tmp_path: Path, template: Path) -> str:
    path = tmp_path / "dialbase.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str | None
    redis_prefix: str

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "redis_prefix": self.redis_prefix,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    prefix = f"dialbase-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        yield Backend("sqlite", _fresh_sqlite(tmp_path, template), None, prefix)
        return
    template = request.getfixturevalue("postgres_template")
    name = f"dialbase_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield Backend("postgres", pg_database_url(name), REDIS_URL, prefix)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def client_for_app(app: object) -> httpx.AsyncClient:
    """An HTTP client calling the ASGI app in process, from ``CLIENT_ADDRESS``."""
    transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDRESS, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://dialbase.test")


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for_app(app) as c:
        yield c


@pytest.fixture
def sessionmaker(app: object):  # type: ignore[no-untyped-def]
    return app.state.sessionmaker  # type: ignore[attr-defined]
