"""A database connection lost while an outbox row is written: the change and its event
are both absent (the request answered 503), and a retry stores both (both backends).

The session paths (campaign start, deletions, imports) lose the connection through
``tests.faults.lost`` (the driver's error raised before the statement). The hot paths
write through their own drivers: on PostgreSQL a trigger on ``webhook_events`` ends the
writing connection's server process (``pg_terminate_backend``: a real lost connection,
mid-statement); on SQLite the writer's sqlite3 connection raises the driver's disk I/O
error at the outbox statement.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from dialbase.campaigns.models import Campaign
from dialbase.db import asyncpg_dsn, session_scope
from dialbase.leads.models import Lead
from dialbase.sqlite_writer import SQLiteWriter
from tests.conftest import Backend
from tests.dialer.helpers import lease, report
from tests.factories import body, make_account, make_campaign
from tests.faults.lost import fails_at, lost_connection
from tests.webhooks.support import AUTH, client_of, hook_settings, outbox, running, set_webhook

ADD = "/ca_apis/AddCampaignData"
HOOK = "http://127.0.0.1:9/never-called"  # the dispatcher sleeps in these tests


class _LosingConnection:
    """A sqlite3 connection that loses the database at the outbox statement."""

    def __init__(self, conn: sqlite3.Connection, backend: Backend) -> None:
        self._conn = conn
        self._backend = backend

    def _check(self, sql: str) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO WEBHOOK_EVENTS"):
            raise lost_connection(self._backend)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@contextlib.asynccontextmanager
async def outbox_insert_lost(
    app: Any, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    """While open, the hot paths lose their connection writing an outbox row."""
    if backend.name == "sqlite":
        writer: SQLiteWriter = app.services.dialer.store._writer  # the process's one writer
        original = SQLiteWriter._connect

        def connect(self: SQLiteWriter, timeout: float) -> Any:
            return _LosingConnection(original(self, timeout), backend)

        opened = (writer._inline, writer._waiting)
        with monkeypatch.context() as patch:
            patch.setattr(SQLiteWriter, "_connect", connect)
            for name, conn in zip(("_inline", "_waiting"), opened, strict=True):
                if conn is not None:
                    patch.setattr(writer, name, _LosingConnection(conn, backend))
            yield
        for name in ("_inline", "_waiting"):  # connections opened meanwhile: unwrapped
            conn = getattr(writer, name)
            if isinstance(conn, _LosingConnection):
                setattr(writer, name, conn._conn)
        return
    conn = await asyncpg.connect(asyncpg_dsn(backend.database_url))
    try:
        await conn.execute(
            "CREATE FUNCTION dialbase_test_drop() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;"
            " CREATE TRIGGER dialbase_test_drop BEFORE INSERT ON webhook_events"
            " FOR EACH ROW EXECUTE FUNCTION dialbase_test_drop()"
        )
        yield
    finally:
        await conn.execute(
            "DROP TRIGGER IF EXISTS dialbase_test_drop ON webhook_events;"
            " DROP FUNCTION IF EXISTS dialbase_test_drop()"
        )
        await conn.close()


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch


async def _leads(app: Any) -> list[Lead]:
    async with session_scope(app.services.sessionmaker, read_only=True) as session:
        return list(await session.scalars(select(Lead).order_by(Lead.id)))


async def _running(app: Any) -> bool:
    async with session_scope(app.services.sessionmaker, read_only=True) as session:
        return bool(await session.scalar(select(Campaign.running).where(Campaign.name == "Sales")))


async def _acme(app: Any, client: Any) -> None:
    await make_account(app.services.sessionmaker)
    await make_campaign(app.services.sessionmaker)
    await set_webhook(client, HOOK)


async def test_a_campaign_start_and_its_event_are_both_lost_or_both_kept(backend: Backend):
    async with running(hook_settings(backend.settings())) as app, client_of(app) as client:
        await _acme(app, client)
        with fails_at(app, backend, "INSERT INTO WEBHOOK_EVENTS"):
            failed = await client.post("/v1/campaigns/Sales/start", auth=AUTH)
        assert failed.status_code == 503, failed.text
        assert failed.json()["detail"] == (
            "The database is unavailable; nothing was stored. Try again shortly."
        )
        assert not await _running(app) and await outbox(app.services.sessionmaker) == []
        again = await client.post("/v1/campaigns/Sales/start", auth=AUTH)
        assert again.status_code == 200, again.text
        assert await _running(app)
        assert [row.type for row in await outbox(app.services.sessionmaker)] == ["campaign.started"]


async def test_a_deletion_and_its_events_are_both_lost_or_both_kept(backend: Backend):
    async with running(hook_settings(backend.settings())) as app, client_of(app) as client:
        await _acme(app, client)
        assert (await client.post(ADD, json=body())).status_code == 200
        params = {"phoneNumber": "9876543210"}
        with fails_at(app, backend, "INSERT INTO WEBHOOK_EVENTS"):
            failed = await client.delete("/v1/campaigns/Sales/leads", params=params, auth=AUTH)
        assert failed.status_code == 503, failed.text
        assert [lead.status for lead in await _leads(app)] == ["pending"]
        assert [row.type for row in await outbox(app.services.sessionmaker)] == ["lead.added"]
        again = await client.delete("/v1/campaigns/Sales/leads", params=params, auth=AUTH)
        assert again.status_code == 200, again.text
        assert [lead.status for lead in await _leads(app)] == ["deleted"]
        types = [row.type for row in await outbox(app.services.sessionmaker)]
        assert types == ["lead.added", "lead.deleted"]


async def test_an_added_lead_and_its_event_are_both_lost_or_both_kept(
    backend: Backend, strict: pytest.MonkeyPatch
):
    async with running(hook_settings(backend.settings())) as app, client_of(app) as client:
        await _acme(app, client)
        async with outbox_insert_lost(app, backend, strict):
            failed = await client.post(ADD, json=body())
        assert failed.status_code == 503, failed.text
        assert failed.json()["status"] == "false"
        assert await _leads(app) == [] and await outbox(app.services.sessionmaker) == []
        again = await client.post(ADD, json=body())
        assert again.json()["status"] == "Success", again.text
        [lead] = await _leads(app)
        [event] = await outbox(app.services.sessionmaker)
    assert (event.type, event.lead_id) == ("lead.added", lead.id)


async def test_an_outcome_and_its_event_are_both_lost_or_both_kept(
    backend: Backend, strict: pytest.MonkeyPatch
):
    async with running(hook_settings(backend.settings())) as app, client_of(app) as client:
        await _acme(app, client)
        await client.post(ADD, json=body())
        await client.post("/v1/campaigns/Sales/start", auth=AUTH)
        lease_id = (await lease(client)).json()["leases"][0]["leaseId"]
        async with outbox_insert_lost(app, backend, strict):
            failed = await report(client, lease_id, "busy")
        assert failed.status_code == 503, failed.text
        assert [(lead.status, lead.attempts) for lead in await _leads(app)] == [("leased", 1)]
        types = [row.type for row in await outbox(app.services.sessionmaker)]
        assert types == ["lead.added", "campaign.started"]
        again = await report(client, lease_id, "busy")
        assert again.status_code == 200, again.text
        assert [lead.status for lead in await _leads(app)] == ["retry"]
        types = [row.type for row in await outbox(app.services.sessionmaker)]
        assert types == ["lead.added", "campaign.started", "lead.outcome"]
