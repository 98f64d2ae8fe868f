"""Reading what ``dialer.explain`` reasons about: a number's leads, a campaign's queue.

Read-only, like the statistics: nothing is settled or written. A forecast reads the
campaign's queued leads once, grouped (zone key, state, the minute they come due, the
minute they expire, whether the number is listed), so its cost grows with the queue but
its memory with the number of distinct groups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, exists, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from dialbase import phones
from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.dialer import hours
from dialbase.dialer.explain import (
    QUEUED,
    CampaignFacts,
    Explained,
    Forecast,
    LeadFacts,
    LeadGroup,
    NumberFacts,
    explain,
    forecast,
)
from dialbase.dialer.leasing import DAY
from dialbase.dialer.models import Lease
from dialbase.dnc.models import DncEntry
from dialbase.dnc.service import find_entry, in_force
from dialbase.leads.models import Lead, LeadStatus

MAX_EXPLAINED = 100


def campaign_facts(account: Account, campaign: Campaign) -> CampaignFacts:
    return CampaignFacts(
        running=campaign.running,
        hours=hours.parse(campaign.calling_hours or ""),
        max_attempts=campaign.max_attempts,
        daily_cap=account.max_daily_attempts,
    )


async def explain_number(
    session: AsyncSession, account: Account, campaign: Campaign, number: str, now: datetime
) -> list[Explained]:
    """The campaign's leads of that number (compared in E.164 form), explained at ``now``;
    deleted leads are gone from this view as from every other."""
    e164 = phones.e164(number.strip(), account.default_country)
    leads = (
        await session.scalars(
            select(Lead)
            .where(
                Lead.campaign_id == campaign.id,
                Lead.phone_e164 == e164,
                Lead.status != LeadStatus.DELETED.value,
            )
            .order_by(Lead.id)
            .limit(MAX_EXPLAINED)
        )
    ).all()
    if not leads:
        return []
    facts = campaign_facts(account, campaign)
    recent, oldest = (
        await session.execute(
            select(func.count(), func.min(Lease.leased_at)).where(
                Lease.account_id == account.id,
                Lease.phone_e164 == e164,
                Lease.leased_at > now - DAY,
            )
        )
    ).one()
    listed = await find_entry(session, account.id, e164) is not None
    number_facts = NumberFacts(listed, recent, oldest)
    return [explain(_facts(lead), facts, number_facts, now) for lead in leads]


def _facts(lead: Lead) -> LeadFacts:
    return LeadFacts(
        id=lead.id,
        phone_number=lead.phone_number,
        status=lead.status,
        attempts=lead.attempts,
        due_at=lead.due_at,
        expires_at=lead.expires_at,
        time_zones=lead.time_zones,
        callback_at=lead.callback_at,
        callback_agent=lead.callback_agent,
        closed_reason=lead.closed_reason,
    )


def _minute(column: Any, dialect: str) -> ColumnElement[Any]:
    """The whole minute (since the epoch) of an instant, on either backend."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer) / 60
    return cast(func.floor(extract("epoch", column) / 60), Integer)


async def campaign_forecast(
    session: AsyncSession, account: Account, campaign: Campaign, now: datetime
) -> Forecast:
    dialect = session.get_bind().dialect.name
    listed = exists().where(
        DncEntry.account_id == account.id, DncEntry.number == Lead.phone_e164, in_force(now)
    )
    keys: tuple[Any, ...] = (
        Lead.status,
        Lead.attempts,
        Lead.time_zones,
        Lead.callback_at.is_not(None),
        Lead.callback_agent,
        listed,
        _minute(Lead.due_at, dialect),
        _minute(Lead.expires_at, dialect),
    )
    labelled = [key.label(f"k{n}") for n, key in enumerate(keys)]
    rows = await session.execute(
        select(*labelled, func.max(Lead.due_at), func.min(Lead.expires_at), func.count())
        .where(Lead.campaign_id == campaign.id, Lead.status.in_(QUEUED))
        .group_by(*(f"k{n}" for n in range(len(keys))))
    )
    groups = [_group(*row) for row in rows]
    return forecast(campaign_facts(account, campaign), groups, now)


def _group(
    status: str,
    attempts: int,
    zones: str,
    is_callback: bool,
    agent: str | None,
    listed: bool,
    _due_minute: int,
    _expiry_minute: int | None,
    due_at: datetime,
    expires_at: datetime | None,
    count: int,
) -> LeadGroup:
    """A forecast group as ``explain`` sees it: its latest due time, earliest expiry."""
    facts = LeadFacts(
        id=0,
        phone_number="",
        status=status,
        attempts=attempts,
        due_at=due_at,
        expires_at=expires_at,
        time_zones=zones,
        callback_at=due_at if is_callback else None,
        callback_agent=agent,
        closed_reason=None,
    )
    return LeadGroup(facts, bool(listed), count)
