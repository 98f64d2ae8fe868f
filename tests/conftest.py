"""Database fixtures: every test that asks for ``backend`` runs on each configured store.

- ``sqlite``: always; a fresh SQLite file per test (copied from a migrated template).
- ``postgres``: when ``DIALBASE_TEST_POSTGRES_URL`` is set (a server URL). One database
  per test session (per xdist worker, if any), migrated once and emptied before each test:
  every table but ``alembic_version`` emptied, its sequences restarted and the rows the
  migrations seed put back (``PostgresReset``); the state a freshly migrated database
  has, without ``CREATE DATABASE`` per test (a checkpoint each: most of the suite's time).
  If emptying fails (a leftover connection holds a lock, a test dropped the database),
  the database is dropped and created again. If the variable is set and the server cannot
  be reached, the tests fail rather than skip. Tests that need a whole database of their
  own (an empty one, a server process migrating it) still create one (tests/deploy).
- Rate-limit counters live in Redis on the PostgreSQL backend when
  ``DIALBASE_TEST_REDIS_URL`` is set (each test has its own key prefix); the test ids
  then read ``postgres+redis``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.db import create_engine
from dialbase.migrate import upgrade
from tests.deploy.processes import pipe

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


@dataclass
class PostgresReset:
    """What emptying a migrated database takes back to its freshly migrated state."""

    tables: list[str]  # every table but alembic_version, children before their parents
    seeded: dict[str, tuple[list[str], list[tuple[object, ...]]]]  # rows the migrations add
    sequences: dict[str, tuple[int, bool]]  # last_value, is_called

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> PostgresReset:
        names = [
            row["tablename"]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'alembic_version'"
            )
        ]
        children: dict[str, set[str]] = {name: set() for name in names}
        for row in await conn.fetch(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent"
            " FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
        ):
            if row["child"] != row["parent"]:
                children.setdefault(row["parent"], set()).add(row["child"])
        seeded = {}
        for name in names:
            rows = await conn.fetch(f'SELECT * FROM "{name}"')
            if rows:
                seeded[name] = (list(rows[0].keys()), [tuple(r.values()) for r in rows])
        sequences = {
            row["name"]: (row["last_value"], row["is_called"])
            for row in await conn.fetch(
                "SELECT format('%I.%I', schemaname, sequencename) AS name,"
                " coalesce(last_value, start_value) AS last_value, last_value IS NOT NULL"
                " AS is_called FROM pg_sequences WHERE schemaname = 'public'"
            )
        }
        return cls(list(TopologicalSorter(children).static_order()), seeded, sequences)

    async def apply(self, conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET lock_timeout = '{RESET_LOCK_TIMEOUT}'")
        async with conn.transaction():
            await conn.execute("".join(f'DELETE FROM "{name}";' for name in self.tables))
            for sequence, (value, called) in self.sequences.items():
                await conn.execute("SELECT setval($1::regclass, $2, $3)", sequence, value, called)
            for name, (columns, rows) in self.seeded.items():
                marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
                names = ", ".join(f'"{c}"' for c in columns)
                await conn.executemany(f'INSERT INTO "{name}" ({names}) VALUES ({marks})', rows)


RESET_LOCK_TIMEOUT = "5s"


async def _pg_connect(url: str) -> asyncpg.Connection:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.connect(dsn, timeout=10)


def _pg_fresh(name: str) -> PostgresReset:
    """(Re)create database ``name``, migrate it, and read what resetting it takes."""
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    _migrate(pg_database_url(name))

    async def main() -> PostgresReset:
        conn = await _pg_connect(pg_database_url(name))
        try:
            return await PostgresReset.read(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


class SharedPostgres:
    """This session's database, emptied before each test that uses it."""

    def __init__(self) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.name = f"dialbase_t_{RUN_ID}_{worker}"
        self.url = pg_database_url(self.name)
        self.reset_plan = _pg_fresh(self.name)
        self.used = False

    def reset(self) -> None:
        if not self.used:  # just migrated
            self.used = True
            return

        async def main() -> None:
            conn = await _pg_connect(self.url)
            try:
                await self.reset_plan.apply(conn)
            finally:
                await conn.close()

        try:
            asyncio.run(main())
        except (OSError, asyncpg.PostgresError) as exc:
            warnings.warn(f"emptying {self.name} failed ({exc!r}): made again", stacklevel=1)
            self.reset_plan = _pg_fresh(self.name)

    def drop(self) -> None:
        pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def shared_postgres() -> Iterator[SharedPostgres]:
    database = SharedPostgres()
    yield database
    database.drop()


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
    database = request.getfixturevalue("shared_postgres")
    database.reset()
    yield Backend("postgres", database.url, REDIS_URL, prefix)


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    # The database is already at head (a migrated template, or the shared database).
    application = create_app(settings, migrate=False)
    async with application.lifespan():
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
    return app.services.sessionmaker  # type: ignore[attr-defined]


class FakeClock:
    """A monotonic clock that moves only when a test says so (``clock.now += 5``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RedisPeer:
    """A TCP peer on 127.0.0.1 in the test's event loop, standing in for Redis.

    Until ``relay_to(url)`` it accepts connections and never answers (a hung Redis: the
    host is up, the process is stuck); after it, new connections are relayed to that Redis.
    """

    def __init__(self) -> None:
        self.target: tuple[str, int] | None = None
        self.database = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.database}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def relay_to(self, redis_url: str) -> None:
        url = make_url(redis_url)
        self.target = (url.host or "127.0.0.1", url.port or 6379)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0.01)  # let the connections' handlers see the end

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.target is None:
                while await reader.read(65536):
                    pass  # swallow every command, answer none
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.transport.abort()


@pytest.fixture
async def redis_peer() -> AsyncIterator[RedisPeer]:
    """A hung Redis (see ``RedisPeer``); ``relay_to`` turns it into the real one."""
    peer = RedisPeer()
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()
