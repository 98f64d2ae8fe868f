"""PostgreSQL faults while leads are written: no lead stored twice, no success lost, no 500.

Issue #8, defect 1: a batch whose connection failed after its commit was sent used to be
written again lead by lead, storing leads twice and answering a first-time add with
"Number Already Exist". Defect 2: after the database was dropped and recreated, a cached
account's old key still added leads, into another account's campaign.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select

from dialbase.accounts.models import ConfigRevision
from dialbase.app import create_app
from dialbase.campaigns.models import Campaign
from dialbase.db import asyncpg_dsn, session_scope
from dialbase.errors import DatabaseUnavailable
from dialbase.leads.batch import NewLead, Outcome, WriteResult
from dialbase.leads.stores.postgres import PostgresBatchStore
from dialbase.migrate import upgrade
from tests.conftest import Backend, client_for_app, needs_postgres, pg_admin
from tests.factories import all_leads, body, make_account, make_campaign

pytestmark = [needs_postgres, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]
URL = "/ca_apis/AddCampaignData"
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
DUPLICATE = {"status": "SUCCESS", "message": "Number Already Exist"}
INVALID_USER = {"status": "false", "message": "Invalid User Details", "data": None}
NOTHING_STORED = "The database is unavailable; nothing was stored. Try again shortly."


@pytest.fixture
def postgres(backend: Backend) -> Backend:
    assert backend.name == "postgres"
    return backend


@contextlib.asynccontextmanager
async def running(backend: Backend, **settings: object) -> AsyncIterator[object]:
    app = create_app(backend.settings(**settings))
    async with app.lifespan():
        yield app


@contextlib.asynccontextmanager
async def sales(backend: Backend) -> AsyncIterator[tuple[object, int, int]]:
    """A running app with acme's campaign "Sales": its sessions, the campaign's id and the
    configuration revision."""
    async with running(backend) as app:
        sessions = app.services.sessionmaker  # type: ignore[attr-defined]
        await make_account(sessions)
        await make_campaign(sessions)
        yield (sessions, *await _campaign(sessions))


async def _campaign(sessions) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == "Sales"))
        revision = await session.scalar(select(ConfigRevision.value))
    assert campaign_id is not None and revision is not None
    return campaign_id, revision


def _lead(campaign_id: int, revision: int, phone: str) -> NewLead:
    return NewLead(
        campaign_id, revision, phone, None, 1, None, None, None, {}, True, None, phone, "UTC"
    )


class LosesConnection(PostgresBatchStore):
    """Loses its connection just after (or just before) the batch statement ran."""

    def __init__(self, *args: object, after_commit: bool) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.after_commit = after_commit
        self.failures = 1

    async def _write_leads(self, conn, batch, batch_id):  # type: ignore[no-untyped-def]
        if self.failures and not self.after_commit:
            self.failures -= 1
            raise asyncpg.ConnectionDoesNotExistError("connection lost before the statement")
        results: list[WriteResult] = await super()._write_leads(conn, batch, batch_id)
        if self.failures:
            self.failures -= 1
            raise asyncpg.ConnectionDoesNotExistError("connection lost after the commit")
        return results


async def test_a_batch_lost_after_its_commit_is_settled_as_stored_never_written_again(postgres):
    async with sales(postgres) as (sessions, campaign_id, revision):
        store = LosesConnection(postgres.settings(), after_commit=True)
        try:
            batch = [_lead(campaign_id, revision, f"90000000{i:02d}") for i in range(4)]
            results = await store.write(batch)
        finally:
            await store.close()
        assert [r.outcome for r in results] == [Outcome.STORED] * 4
        assert sorted(lead.phone_number for lead in await all_leads(sessions)) == sorted(
            lead.phone_number for lead in batch
        )


async def test_a_batch_lost_before_its_commit_stores_nothing_and_never_commits_later(postgres):
    async with sales(postgres) as (sessions, campaign_id, revision):
        store = LosesConnection(postgres.settings(), after_commit=False)
        try:
            with pytest.raises(DatabaseUnavailable):
                await store.write([_lead(campaign_id, revision, "9000000001")])
            assert await all_leads(sessions) == []
            # The batch's id is a tombstone now: the same batch can never commit.
            again = await store.write([_lead(campaign_id, revision, "9000000001")])
        finally:
            await store.close()
        assert [r.outcome for r in again] == [Outcome.STORED]
        assert len(await all_leads(sessions)) == 1


async def _terminate_backends(dsn: str, database: str, stop: asyncio.Event) -> int:
    """Terminate every session of ``database`` every 0.3 s until ``stop``; how many."""
    admin = await asyncpg.connect(dsn)
    killed = 0
    try:
        while not stop.is_set():
            killed += len(
                await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.3)
    finally:
        await admin.close()
    return killed


async def test_terminated_connections_never_store_a_lead_twice_nor_lose_a_success(postgres):
    """Distinct numbers with the duplicate check on, while every connection of the
    database is terminated every 0.3 s: every success is stored once, every "nothing was
    stored" is not stored, no first add is called a duplicate, and nothing answers 500."""
    async with running(postgres, db_connect_timeout=2.0, db_pool_timeout=2.0) as app:
        sessions = app.services.sessionmaker  # type: ignore[attr-defined]
        await make_account(sessions, rate_limit=1_000_000)
        await make_campaign(sessions)
        database = postgres.database_url.rsplit("/", 1)[1]
        stop = asyncio.Event()
        killer = asyncio.create_task(
            _terminate_backends(asyncpg_dsn(postgres.database_url), database, stop)
        )
        answers: dict[str, tuple[int, dict[str, object]]] = {}
        numbers = iter(f"98{i:08d}" for i in range(100_000))

        async with client_for_app(app) as client:

            async def add_many(count: int) -> None:
                for _ in range(count):
                    number = next(numbers)
                    response = await client.post(
                        URL, json=body(phoneNumber=number, checkDuplicate="true")
                    )
                    answers[number] = (response.status_code, response.json())

            await asyncio.gather(*(add_many(60) for _ in range(20)))
        stop.set()
        killed = await killer
        stored = collections.Counter(lead.phone_number for lead in await all_leads(sessions))

    statuses = collections.Counter(status for status, _ in answers.values())
    assert killed > 0 and statuses[200] > 0
    assert set(statuses) <= {200, 503}, statuses
    assert [n for n, count in stored.items() if count > 1] == []
    for number, (status, answer) in answers.items():
        if status == 200:
            assert answer == STORED, (number, answer)  # never DUPLICATE for a first add
            assert stored[number] == 1, number
        elif answer["message"] == NOTHING_STORED:
            assert stored[number] == 0, number


async def test_a_recreated_database_never_takes_leads_with_a_cached_key(postgres):
    async with running(postgres) as app:
        sessions = app.services.sessionmaker  # type: ignore[attr-defined]
        await make_account(sessions)  # acme / acme-secret-key
        await make_campaign(sessions)
        for _ in range(3):  # a few settings changes
            await make_account(sessions, f"filler{_}", f"filler-key-{_}")
        async with client_for_app(app) as client:
            assert (await client.post(URL, json=body())).json() == STORED  # acme is cached

            database = postgres.database_url.rsplit("/", 1)[1]
            await asyncio.to_thread(pg_admin, f'DROP DATABASE "{database}" WITH (FORCE)')
            await asyncio.to_thread(pg_admin, f'CREATE DATABASE "{database}"')
            await upgrade(app.services.engine)  # type: ignore[attr-defined]
            await make_account(sessions, "other", "other-secret-key")
            await make_campaign(sessions, username="other")  # "Sales" of "other": id 1 again
            await make_account(sessions, "acme", "acme-new-key-123")

            old_key = await client.post(URL, json=body(phoneNumber="9111111111"))
            new_key = await client.post(
                URL, json=body(phoneNumber="9222222222", apiKey="acme-new-key-123")
            )
        assert old_key.status_code == 200 and old_key.json() == INVALID_USER
        # acme has no campaign "Sales" in the new database; other's campaign got nothing.
        assert new_key.json() == {
            "status": "FAIL",
            "message": "No User Found or Campaign Name is Invalid",
        }
        assert await all_leads(sessions) == []
