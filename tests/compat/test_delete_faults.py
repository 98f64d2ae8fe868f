"""Deleting leads when things fail: a connection lost at any statement or at the commit
answers 503 and deletes nothing; a hung Redis does not break the endpoints; a bulk
deletion of an account while another one runs is "Max limit exceeded"."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import select

from dialbase.accounts.models import Account
from dialbase.db import asyncpg_dsn, session_scope
from dialbase.leads.models import CampaignNumber, Lead
from tests.compat.helpers import client_for, running_app
from tests.conftest import Backend, RedisPeer, needs_postgres
from tests.factories import make_account, make_campaign
from tests.faults.lost import fails_at

ADD = "/ca_apis/AddCampaignData"
ONE = "/ca_apis/deleteCampaignData"
BULK = "/ca_apis/DeleteBulkData"
HEADERS = {"apiKey": "acme-secret-key", "content-type": "application/json"}
STORED = {"status": "Success", "message": "SuccessFully Updated Progressive Campaign"}
DELETED = {"status": "Success", "message": "Deleted Successfully"}
MAX_LIMIT = {"status": "Error", "message": "Max limit exceeded"}
DOWN = {
    "status": "false",
    "message": "The database is unavailable; nothing was stored. Try again shortly.",
    "data": None,
}
NUMBERS = ["9000000001", "9000000002"]


async def _setup(app: Any) -> None:
    sessions = app.services.sessionmaker
    await make_account(sessions)
    await make_campaign(sessions)
    await make_campaign(sessions, "Renewals")


async def _add_all(client: httpx.AsyncClient) -> None:
    for campaign in ("Sales", "Renewals"):
        for number in NUMBERS:
            body = {"userName": "acme", "campaignName": campaign, "phoneNumber": number}
            response = await client.post(ADD, json=body, headers=HEADERS)
            assert response.json() == STORED


async def _state(sessions: Any) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """Every lead's (number, status) and every guard."""
    async with session_scope(sessions) as session:
        leads = [(lead.phone_number, lead.status) for lead in await session.scalars(select(Lead))]
        guards = (
            await session.execute(select(CampaignNumber.campaign_id, CampaignNumber.phone_number))
        ).all()
    return sorted(leads), sorted((int(c), str(n)) for c, n in guards)


async def _delete(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> httpx.Response:
    return await client.request("DELETE", url, content=orjson.dumps(body), headers=HEADERS)


REQUESTS = {
    "one": (ONE, {"userName": "acme", "campaignName": "Sales", "phoneNumber": NUMBERS[0]}),
    "bulk": (
        BULK,
        {"userName": "acme", "phoneNumber": NUMBERS, "campaignName": ["Sales", "Renewals"]},
    ),
}


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize(
    "point",
    ["DELETE FROM CAMPAIGN_NUMBERS", "UPDATE LEADS", "INSERT INTO CAMPAIGN_NUMBERS", "COMMIT"],
    ids=["drop-guards", "mark-leads", "guard-again", "commit"],
)
async def test_a_connection_lost_mid_way_answers_503_and_deletes_nothing(
    backend: Backend, request_name: str, point: str
):
    url, body = REQUESTS[request_name]
    async with running_app(backend.settings()) as app:
        await _setup(app)
        sessions = app.services.sessionmaker
        async with client_for(app) as client:
            await _add_all(client)
            before = await _state(sessions)
            with fails_at(app, backend, point):
                failed = await _delete(client, url, body)
            assert (failed.status_code, failed.json()) == (503, DOWN)
            assert await _state(sessions) == before
            again = await _delete(client, url, body)  # the next request works
            assert again.status_code == 200
            assert again.json()["message"] == "Deleted Successfully"


async def test_v1_delete_answers_503_as_a_problem_and_deletes_nothing(backend: Backend):
    async with running_app(backend.settings()) as app:
        await _setup(app)
        sessions = app.services.sessionmaker
        async with client_for(app) as client:
            await _add_all(client)
            before = await _state(sessions)
            with fails_at(app, backend, "COMMIT"):
                failed = await client.delete(
                    "/v1/campaigns/Sales/leads",
                    params={"phoneNumber": NUMBERS[0]},
                    auth=httpx.BasicAuth("acme", "acme-secret-key"),
                )
            assert failed.status_code == 503
            assert failed.headers["content-type"] == "application/problem+json"
            assert await _state(sessions) == before


async def test_a_hung_redis_does_not_break_deleting(backend: Backend, redis_peer: RedisPeer):
    """The limiter fails open onto in-process counters after one short timeout."""
    settings = backend.settings(redis_url=redis_peer.url, redis_timeout_ms=100)
    async with running_app(settings) as app:
        await _setup(app)
        async with client_for(app) as client:
            await _add_all(client)
            started = time.monotonic()
            one = await _delete(client, *REQUESTS["one"])
            assert (one.status_code, one.json()) == (200, DELETED)
            bulk = await _delete(client, *REQUESTS["bulk"])
            assert bulk.json() == {
                "status": "Success",
                "message": "Deleted Successfully",
                "deleted": 3,
            }
            assert time.monotonic() - started < 5
            # Still 2 a minute, counted in the process.
            assert (await _delete(client, *REQUESTS["bulk"])).json()["deleted"] == 0
            assert (await _delete(client, *REQUESTS["bulk"])).json() == MAX_LIMIT


@needs_postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_bulk_delete_while_another_of_the_account_runs_is_max_limit(backend: Backend):
    """PostgreSQL: the running one holds the account's advisory lock (any worker, any
    host); the next is refused at once and deletes nothing."""
    async with running_app(backend.settings()) as app:
        await _setup(app)
        sessions = app.services.sessionmaker
        async with client_for(app) as client:
            await _add_all(client)
            async with session_scope(sessions) as session:
                account_id = await session.scalar(select(Account.id))
            before = await _state(sessions)
            conn = await asyncpg.connect(asyncpg_dsn(backend.database_url))
            try:
                running = conn.transaction()
                await running.start()
                await conn.fetchval("SELECT pg_advisory_xact_lock($1, $2)", 0x44420001, account_id)
                assert (await _delete(client, *REQUESTS["bulk"])).json() == MAX_LIMIT
                assert await _state(sessions) == before
                await running.rollback()
            finally:
                await conn.close()
            done = await _delete(client, *REQUESTS["bulk"])
            assert done.json()["deleted"] == 4


async def test_a_bulk_delete_while_another_runs_in_the_process_is_max_limit(backend: Backend):
    """Within one process (SQLite's only guard: across processes its write lock makes a
    second bulk deletion wait and run after the first)."""
    async with running_app(backend.settings()) as app:
        await _setup(app)
        sessions = app.services.sessionmaker
        async with client_for(app) as client:
            await _add_all(client)
            assert (await _delete(client, *REQUESTS["one"])).json() == DELETED
            deletion = app.services.deletion
            before = await _state(sessions)
            deletion._bulk_running.add(1)  # the account's bulk deletion is running here
            try:
                assert (await _delete(client, *REQUESTS["bulk"])).json() == MAX_LIMIT
            finally:
                deletion._bulk_running.discard(1)
            assert await _state(sessions) == before
            assert (await _delete(client, *REQUESTS["bulk"])).json()["deleted"] == 3
