"""A database that cannot be used is a 503 with the documented body on every API family,
logged once per outage, and the service recovers by itself (issue #8, defect 3)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest
import sqlalchemy.exc

from dialbase.app import create_app
from dialbase.db import asyncpg_dsn
from dialbase.errors import database_unavailable
from tests.conftest import (
    Backend,
    client_for_app,
    needs_postgres,
    pg_admin,
    pg_database_url,
)
from tests.factories import all_leads, body, make_account, make_campaign

URL = "/ca_apis/AddCampaignData"


async def admin(sql: str) -> None:
    await asyncio.to_thread(pg_admin, sql)


DOWN = {
    "status": "false",
    "message": "The database is unavailable; nothing was stored. Try again shortly.",
    "data": None,
}
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}


@pytest.mark.parametrize(
    "sqlstate",
    ["08006", "08001", "53300", "53100", "57P01", "57P03", "3D000", "57014", "42P01"],
)
def test_these_sqlstates_mean_the_database_is_unavailable(sqlstate):
    error = asyncpg.PostgresError.new({"C": sqlstate, "M": "x", "S": "FATAL"})
    wrapped = sqlalchemy.exc.DBAPIError("SELECT 1", None, error)
    assert database_unavailable(error) and database_unavailable(wrapped)


@pytest.mark.parametrize("sqlstate", ["23505", "22P02", "42601", "40P01"])
def test_data_and_syntax_errors_are_not_an_outage(sqlstate):
    error = asyncpg.PostgresError.new({"C": sqlstate, "M": "x", "S": "ERROR"})
    assert not database_unavailable(error)


def test_a_plain_os_error_is_not_an_outage():
    assert not database_unavailable(OSError("no such file"))
    assert database_unavailable(ConnectionRefusedError(111, "refused"))


@needs_postgres
async def test_a_database_that_does_not_exist_answers_503_everywhere_logged_once(caplog):
    missing = pg_database_url(f"dialbase_missing_{uuid.uuid4().hex[:8]}")
    app = create_app(Backend("postgres", missing, None, "x").settings(), migrate=False)
    caplog.set_level(logging.ERROR)
    async with app.lifespan(), client_for_app(app) as client:
        adds = [await client.post(URL, json=body()) for _ in range(20)]
        lease = await client.post("/v1/campaigns/Sales/leases", auth=("acme", "acme-secret-key"))
    assert {(r.status_code, r.content) for r in adds} == {(503, adds[0].content)}
    assert adds[0].json() == DOWN
    assert lease.status_code == 503
    assert lease.headers["content-type"] == "application/problem+json"
    assert lease.json()["detail"] == DOWN["message"]
    outage_lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage_lines) == 1, [r.getMessage() for r in caplog.records]
    assert not any(r.exc_info for r in caplog.records)


@needs_postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_too_many_connections_answers_503_and_the_writer_recovers(backend):
    """A role allowed five connections (the pool, the lead writer, the import runner and
    the webhook dispatcher each hold one): beyond them PostgreSQL refuses (53300)."""
    role = f"dialbase_few_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 5')
    owner = await asyncpg.connect(asyncpg_dsn(backend.database_url))
    try:
        database = backend.database_url.rsplit("/", 1)[1]
        await owner.execute(f'GRANT ALL ON DATABASE "{database}" TO "{role}"')
        await owner.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        await owner.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        url = backend.database_url.replace("postgres@", f"{role}@", 1)
        limited = Backend("postgres", url, None, backend.redis_prefix)
        app = create_app(limited.settings(db_pool_timeout=1.0), migrate=False)
        async with app.lifespan():
            sessions = app.services.sessionmaker
            await make_account(sessions, rate_limit=1_000_000)
            await make_campaign(sessions)
            hogs = await _take_every_connection(url)
            async with client_for_app(app) as client:
                during = await client.post(URL, json=body(phoneNumber="9000000001"))
                for hog in hogs:
                    await hog.close()
                after = [
                    await client.post(URL, json=body(phoneNumber=f"900000010{i}")) for i in range(3)
                ]
            await app.services.engine.dispose()  # close the pool before counting
            stored = [lead.phone_number for lead in await all_leads(sessions)]
    finally:
        await owner.execute(f'DROP OWNED BY "{role}"')
        await owner.close()
        await admin(f'DROP ROLE "{role}"')
    assert during.status_code == 503 and during.json() == DOWN
    assert [r.json() for r in after] == [STORED] * 3
    assert sorted(stored) == [f"900000010{i}" for i in range(3)]


async def _take_every_connection(url: str) -> list[asyncpg.Connection]:
    """Connect as the role until PostgreSQL refuses (SQLSTATE 53300)."""
    hogs: list[asyncpg.Connection] = []
    while True:
        try:
            hogs.append(await asyncpg.connect(asyncpg_dsn(url)))
        except asyncpg.TooManyConnectionsError:
            return hogs


async def test_a_sqlite_file_that_cannot_be_opened_answers_503(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/folder/dialbase.db"
    app = create_app(Backend("sqlite", url, None, "x").settings(), migrate=False)
    async with app.lifespan(), client_for_app(app) as client:
        add = await client.post(URL, json=body())
        stats = await client.get("/v1/campaigns/Sales/stats", auth=("acme", "acme-secret-key"))
    assert (add.status_code, add.json()) == (503, DOWN)
    assert stats.status_code == 503 and stats.json()["title"] == "Service Unavailable"
