"""The dialer queue's rules as the ORM reads them, for statistics and the CLI.

Leasing and outcomes run in the queue stores (``dialer.stores``, rules in
``dialer.leasing``). Statistics never settle: they count each lead in the state the
stores' settle would give it now (``settled_status``), so reading them takes no write lock.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, or_
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.campaigns.models import Campaign
from dialbase.db import IMMEDIATE, SQLITE_BEGIN
from dialbase.dialer.leasing import CALLBACK, DONE, EXPIRED, HELD, LEASED, PENDING, RETRY
from dialbase.leads.models import Lead


async def lock_for_writing(session: AsyncSession) -> None:
    """On SQLite, make sure the session's transaction holds the database's write lock.

    A deferred transaction that reads and then writes fails at once with "database is
    locked" when another connection wrote in between (SQLite cannot wait to upgrade a read
    lock). ``session_scope`` begins its transactions that way; a session that has not
    begun yet is begun that way here; one that began deferred (read-only) is a bug.
    PostgreSQL needs nothing here: its row locks do the work.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    if not session.in_transaction():
        await session.connection(execution_options={SQLITE_BEGIN: IMMEDIATE})
        return
    connection = (await session.connection()).sync_connection
    assert connection is not None  # the session just procured it
    if connection.get_execution_options().get(SQLITE_BEGIN) != IMMEDIATE:
        raise RuntimeError("a dialer write in a read-only transaction")


def settled_status(campaign: Campaign, now: datetime) -> ColumnElement[str]:
    """The status the stores' settle would give a lead now, computed without writing it.

    Wake first (lapsed leases, retries and holds come due: ``done`` when the attempts are
    used up, a lapsed callback a ``callback`` again, else ``pending``), then expire (queued
    leads past their expiry)."""
    woken = and_(Lead.status.in_((LEASED, RETRY, HELD)), Lead.due_at <= now)
    expirable = or_(woken, Lead.status.in_((PENDING, RETRY, HELD, CALLBACK)))
    used_up = and_(
        woken,
        Lead.status != HELD,
        Lead.callback_at.is_(None),
        Lead.attempts >= campaign.max_attempts,
    )
    return case(
        (used_up, DONE),
        (and_(expirable, Lead.expires_at <= now), EXPIRED),
        (and_(woken, Lead.callback_at.is_not(None)), CALLBACK),
        (woken, PENDING),
        else_=Lead.status,
    )
