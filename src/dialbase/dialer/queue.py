"""The dialing queue's statements: settle time-driven changes, pick the due leads.

Queue rules (docs/api.md, "Queue rules"): a lead is due when its campaign runs, it is ``pending``
(new, or its retry time came, or its lease lapsed) and it has not expired. Order:
priority high to low, then earlier ``due_at``, then arrival (id). Every statement is
served by an index declared in ``dialer.models`` (no scan of the campaign's leads).

Exactly-once: on PostgreSQL rows are taken with ``FOR UPDATE SKIP LOCKED``, so
concurrent transactions never pick the same lead; on SQLite the transaction is begun
with ``BEGIN IMMEDIATE`` (``session_scope``, checked by ``lock_for_writing``), so they
run one after another.

Statistics never settle: they count each lead in the state ``settled_status`` computes,
so reading them takes no write lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.campaigns.models import Campaign, Routing
from dialbase.db import IMMEDIATE, SQLITE_BEGIN
from dialbase.leads.models import Lead, LeadStatus

PENDING = LeadStatus.PENDING.value
LEASED = LeadStatus.LEASED.value
RETRY = LeadStatus.RETRY.value
DONE = LeadStatus.DONE.value
EXPIRED = LeadStatus.EXPIRED.value

LEAD_COLUMNS = (
    Lead.id,
    Lead.phone_number,
    Lead.name,
    Lead.priority,
    Lead.agent_id,
    Lead.skill,
    Lead.extra,
    Lead.attempts,
)


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
    """The status ``settle`` would give a lead now, computed without writing it.

    Wake first (lapsed leases and retries come due: ``done`` when the attempts are used up,
    else ``pending``), then expire (``pending`` and ``retry`` leads past their expiry)."""
    woken = and_(Lead.status.in_((LEASED, RETRY)), Lead.due_at <= now)
    expirable = or_(woken, Lead.status.in_((PENDING, RETRY)))
    return case(
        (and_(woken, Lead.attempts >= campaign.max_attempts), DONE),
        (and_(expirable, Lead.expires_at <= now), EXPIRED),
        (woken, PENDING),
        else_=Lead.status,
    )


def _locked_ids(*conditions: Any) -> Select[int]:
    return select(Lead.id).where(*conditions).with_for_update(skip_locked=True)


def wake(campaign: Campaign, now: datetime) -> Update:
    """Lapsed leases and retries whose time came: ``pending`` again, or ``done`` when the
    campaign's attempts are used up."""
    woken = _locked_ids(
        Lead.campaign_id == campaign.id, Lead.status.in_((LEASED, RETRY)), Lead.due_at <= now
    )
    used_up = Lead.attempts >= campaign.max_attempts
    return (
        update(Lead)
        .where(Lead.id.in_(woken))
        .values(status=case((used_up, DONE), else_=PENDING))
        .execution_options(synchronize_session=False)
    )


def expire(campaign: Campaign, now: datetime) -> Update:
    """Pending and retry leads past their expiry: ``expired``."""
    expired = _locked_ids(
        Lead.campaign_id == campaign.id,
        Lead.status.in_((PENDING, RETRY)),
        Lead.expires_at <= now,
    )
    return (
        update(Lead)
        .where(Lead.id.in_(expired))
        .values(status=EXPIRED)
        .execution_options(synchronize_session=False)
    )


async def settle(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """Apply what time decided since the last call, for one campaign (wake, then expire)."""
    await session.execute(wake(campaign, now))
    await session.execute(expire(campaign, now))


def due_leads(
    campaign: Campaign, agent_id: str | None, skill: str | None, now: datetime, count: int
) -> Select[Any]:
    """The first ``count`` due leads in queue order, locked (skipping locked rows)."""
    query = select(*LEAD_COLUMNS).where(
        Lead.campaign_id == campaign.id,
        Lead.status == PENDING,
        or_(Lead.expires_at.is_(None), Lead.expires_at > now),
    )
    if campaign.routing == Routing.AGENTWISE:
        query = query.where(Lead.agent_id == agent_id)
    elif campaign.routing == Routing.SKILLWISE:
        query = query.where(Lead.skill == skill)
    return (
        query.order_by(Lead.priority.desc(), Lead.due_at, Lead.id)
        .limit(count)
        .with_for_update(skip_locked=True)
    )


async def mark_leased(session: AsyncSession, ids: list[int], deadline: datetime) -> None:
    """The picked leads are leased until ``deadline``; their attempt counts from now."""
    await session.execute(
        update(Lead)
        .where(Lead.id.in_(ids))
        .values(status=LEASED, attempts=Lead.attempts + 1, due_at=deadline)
        .execution_options(synchronize_session=False)
    )
