"""Statistics are read-only: lapsed leases, retries come due and expiry are counted as the
queue would settle them, without writing, so polling them never takes SQLite's write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from dialbase.accounts.service import get_account
from dialbase.app import create_app
from dialbase.campaigns.service import get_campaign
from dialbase.db import session_scope, sqlite_path
from dialbase.leads.models import Lead
from tests.conftest import client_for_app
from tests.dialer.helpers import add_leads, lease, minutes_from_now, running_campaign, stats

PAST = -1  # minutes from now
FUTURE = 60


def _lead(phone: str, status: str, attempts: int, due: float, expires: float | None) -> dict:
    return {
        "phone_number": phone,
        "status": status,
        "attempts": attempts,
        "due_at": minutes_from_now(due),
        "expires_at": None if expires is None else minutes_from_now(expires),
    }


def _leads() -> list[dict]:
    """One lead in each case settle distinguishes (the campaign allows 3 attempts)."""
    return [
        _lead("7000000001", "pending", 0, PAST, FUTURE),  # pending
        _lead("7000000002", "pending", 0, PAST, PAST),  # expired
        _lead("7000000003", "leased", 1, PAST, None),  # lease lapsed: pending again
        _lead("7000000004", "leased", 3, PAST, None),  # lapsed on its last attempt: done
        _lead("7000000005", "leased", 1, PAST, PAST),  # lapsed, then expired
        _lead("7000000006", "leased", 1, FUTURE, PAST),  # open lease: still leased
        _lead("7000000007", "retry", 1, 30, None),  # waiting for its retry
        _lead("7000000008", "retry", 1, 10, PAST),  # expired while waiting
        _lead("7000000009", "retry", 1, PAST, FUTURE),  # retry time came: pending
        _lead("7000000010", "done", 2, PAST, None),  # done
    ]


EXPECTED = {
    "total": 10,
    "pending": 3,
    "leased": 1,
    "retryScheduled": 1,
    "callbackScheduled": 0,
    "held": 0,
    "done": 2,
    "expired": 3,
}


async def _statuses(sessionmaker) -> list[tuple[str, str]]:
    async with session_scope(sessionmaker) as session:
        rows = await session.execute(select(Lead.phone_number, Lead.status).order_by(Lead.id))
        return [(phone, status) for phone, status in rows]


async def _settle(app, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """What the queue store writes first on every lease."""
    async with session_scope(sessionmaker) as session:
        campaign = await get_campaign(session, "acme", "Sales")
    await app.services.dialer.store.settle(campaign.id)


async def test_stats_count_leads_as_settled_without_writing_them(app, client, sessionmaker):
    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, *_leads())
    before = await _statuses(sessionmaker)
    read_only = await stats(client)
    assert await _statuses(sessionmaker) == before  # nothing written
    assert read_only["leads"] == EXPECTED
    next_retry = datetime.fromisoformat(read_only["nextRetryAt"].replace("Z", "+00:00"))
    assert abs(next_retry - minutes_from_now(30)) < timedelta(minutes=1)
    assert read_only["byPriority"][0]["attempts"] == 11

    await _settle(app, sessionmaker)  # what a lease call would write first
    assert await _statuses(sessionmaker) != before
    settled = await stats(client)
    assert settled["leads"] == read_only["leads"]
    assert settled["byPriority"] == read_only["byPriority"]
    assert settled["nextRetryAt"] == read_only["nextRetryAt"]


async def test_stats_in_the_cli_service_are_read_only_too(sessionmaker):
    from dialbase.dialer.stats import campaign_stats

    await running_campaign(sessionmaker)
    await add_leads(sessionmaker, *_leads())
    before = await _statuses(sessionmaker)
    async with session_scope(sessionmaker) as session:
        account = await get_account(session, "acme")
        found = await campaign_stats(session, account, "Sales")
    assert found.leads["expired"] == 3 and found.leads["pending"] == 3
    assert await _statuses(sessionmaker) == before


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # SQLite's file-wide lock
async def test_stats_answer_while_another_connection_holds_the_write_lock(backend):
    """A dialer polling statistics never waits for SQLite's write lock; a lease does."""
    busy_ms = 2000
    app = create_app(backend.settings(sqlite_busy_timeout_ms=busy_ms), migrate=False)
    async with app.lifespan(), client_for_app(app) as client:
        await running_campaign(app.services.sessionmaker)
        await add_leads(app.services.sessionmaker, *_leads())
        holder = sqlite3.connect(
            sqlite_path(backend.database_url), isolation_level=None, check_same_thread=False
        )
        try:
            # Off the event loop: a background task's transaction in flight (the app's
            # runners) must be able to commit while this waits for the lock.
            await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
            started = time.monotonic()
            body = await stats(client)
            assert time.monotonic() - started < busy_ms / 1000 * 0.75
            assert body["leads"] == EXPECTED
            waited = await lease(client)  # takes the write lock: waits, then gives up
            assert waited.status_code == 503, waited.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (await lease(client)).status_code == 200
