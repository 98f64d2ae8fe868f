"""Reads only the console makes: counts by state, the attempts chart, the leads table,
a lead's detail, an import's rejected rows. No web framework here; every rule (explain,
forecast, deletion, imports, accounts, campaigns) stays in its own service.

Every read is scoped to one account: a campaign, lead or import of another account is
``NotFound``, the same as one that does not exist.

Costs at a million leads in a campaign (docs/performance.md, "Console"):

- counts by state: one ``GROUP BY status`` over the index ``ix_leads_wake``
  (campaign_id, status, due_at): an index-only scan, no table rows read. It runs at most
  once per campaign per second in each worker (``console.cache``).
- the leads table pages by keyset, never by offset: by id (``ix_leads_campaign_id_id``),
  by (due_at, id) when filtered by state (``ix_leads_wake``), by id within one number
  (``ix_leads_campaign_e164``). A name search (a part of the name, any letter case) reads
  a window of ``NAME_WINDOW`` leads per page in id order and shows up to a page of the
  matches in it; "Next" continues after the last match shown, or after the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase import phones
from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.compat import fields
from dialbase.db import session_scope
from dialbase.dialer import insight
from dialbase.dialer.explain import Explained, Forecast
from dialbase.dialer.models import Lease, Outcome
from dialbase.errors import Invalid, NotFound
from dialbase.imports.models import Import, ImportResult, RowResult
from dialbase.leads.models import Lead, LeadStatus

STATES = tuple(s.value for s in LeadStatus if s is not LeadStatus.DELETED)
PAGE = 50
NAME_WINDOW = 10_000
MAX_QUERY_CHARS = 100
CHART_HOURS = 24
NO_CAMPAIGN = "No such campaign in this account."
NO_LEAD = "No such lead in this campaign."
NO_IMPORT = "No such import in this account."
BAD_CURSOR = "That page link is not one this console made; start again from the first page."
_CURSOR = re.compile(r"(?P<kind>[ins])(?P<id>\d{1,19})(?:\.(?P<due>\d{1,20}))?")


# Lookups scoped to the account ---------------------------------------------------------


async def own_campaign(session: AsyncSession, account: Account, campaign_id: int) -> Campaign:
    campaign = await session.scalar(
        select(Campaign).where(Campaign.id == campaign_id, Campaign.account_id == account.id)
    )
    if campaign is None:
        raise NotFound(NO_CAMPAIGN)
    return campaign


async def own_campaigns(session: AsyncSession, account: Account) -> list[Campaign]:
    rows = await session.scalars(
        select(Campaign).where(Campaign.account_id == account.id).order_by(Campaign.name)
    )
    return list(rows)


async def own_import(session: AsyncSession, account: Account, import_id: int) -> Import:
    record = await session.get(Import, import_id)
    if record is None or record.account_id != account.id:
        raise NotFound(NO_IMPORT)
    return record


# Counts and the chart (read in their own transaction: they are cached per worker) -------


async def state_counts(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int
) -> dict[str, int]:
    """The campaign's leads by stored state (deleted ones left out)."""
    async with session_scope(sessionmaker, read_only=True) as session:
        rows = await session.execute(
            select(Lead.status, func.count())
            .where(Lead.campaign_id == campaign_id)
            .group_by(Lead.status)
        )
        found = {status: int(count) for status, count in rows}
    return {state: found.get(state, 0) for state in STATES}


@dataclass(frozen=True, slots=True)
class HourBar:
    start: datetime
    attempts: int
    connects: int


def _hour(column: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer) / 3600
    return cast(func.floor(extract("epoch", column) / 3600), Integer)


async def attempts_by_hour(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int, now: datetime
) -> list[HourBar]:
    """Attempts (leases) and connects in each of the last 24 hours, oldest first."""
    first = int(now.timestamp() // 3600) - CHART_HOURS + 1
    async with session_scope(sessionmaker, read_only=True) as session:
        hour = _hour(Lease.leased_at, session.get_bind().dialect.name).label("hour")
        connected = func.sum(cast(Lease.outcome == Outcome.CONNECTED.value, Integer))
        rows = await session.execute(
            select(hour, func.count(), connected)
            .where(
                Lease.campaign_id == campaign_id,
                Lease.leased_at >= datetime.fromtimestamp(first * 3600, UTC),
            )
            .group_by("hour")
        )
        found = {int(h): (int(n), int(c or 0)) for h, n, c in rows}
    return [
        HourBar(datetime.fromtimestamp(h * 3600, UTC), *found.get(h, (0, 0)))
        for h in range(first, first + CHART_HOURS)
    ]


async def campaign_forecast(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int, now: datetime
) -> Forecast:
    """The forecast service's answer (``dialer.insight``) for the campaign."""
    async with session_scope(sessionmaker, read_only=True) as session:
        campaign = await session.get(Campaign, campaign_id)
        account = await session.get(Account, campaign.account_id) if campaign else None
        if campaign is None or account is None:
            raise NotFound(NO_CAMPAIGN)
        return await insight.campaign_forecast(session, account, campaign, now)


# The leads table -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadQuery:
    text: str = ""  # a number or (part of) a name
    state: str = ""  # one of STATES, or "" for all
    after: str = ""  # the cursor of the page before

    def check(self) -> None:
        if len(self.text) > MAX_QUERY_CHARS or "\x00" in self.text:
            raise Invalid(f"Search: at most {MAX_QUERY_CHARS} characters.")
        if self.state and self.state not in STATES:
            raise Invalid(f"State: one of {', '.join(STATES)}.")
        if self.after and not _CURSOR.fullmatch(self.after):
            raise Invalid(BAD_CURSOR)


@dataclass(frozen=True, slots=True)
class LeadPage:
    leads: list[Lead]
    next_after: str | None  # the cursor of the next page; None on the last
    searched_by: str  # "all" | "state" | "number" | "name"


def _cursor(after: str, kind: str) -> tuple[int, datetime | None]:
    if not after:
        return 0, None
    match = _CURSOR.fullmatch(after)
    if match is None or match["kind"] != kind:
        raise Invalid(BAD_CURSOR)
    due = match["due"]
    if kind == "s" and due is None:
        raise Invalid(BAD_CURSOR)
    when = datetime.fromtimestamp(int(due) / 1_000_000, UTC) if due is not None else None
    return int(match["id"]), when


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


async def leads_page(
    session: AsyncSession, account: Account, campaign: Campaign, query: LeadQuery
) -> LeadPage:
    query.check()
    live = (Lead.campaign_id == campaign.id, Lead.status != LeadStatus.DELETED.value)
    text = query.text.strip()
    state = (Lead.status == query.state,) if query.state else ()
    if text and fields.phone_number(text) is not None:
        after, _ = _cursor(query.after, "n")
        e164 = phones.e164(fields.phone_number(text) or text, account.default_country)
        rows = await session.scalars(
            select(Lead)
            .where(*live, *state, Lead.phone_e164 == e164, Lead.id > after)
            .order_by(Lead.id)
            .limit(PAGE + 1)
        )
        return _page(list(rows), "number", lambda lead: f"n{lead.id}")
    if text:
        return await _name_page(session, campaign, text, query, live, state)
    if query.state:
        after, due = _cursor(query.after, "s")
        statement = select(Lead).where(*live, *state)
        if due is not None:
            statement = statement.where(
                (Lead.due_at > due) | ((Lead.due_at == due) & (Lead.id > after))
            )
        rows = await session.scalars(statement.order_by(Lead.due_at, Lead.id).limit(PAGE + 1))
        return _page(list(rows), "state", lambda lead: f"s{lead.id}.{_micros(lead.due_at)}")
    after, _ = _cursor(query.after, "i")
    rows = await session.scalars(
        select(Lead).where(*live, Lead.id > after).order_by(Lead.id).limit(PAGE + 1)
    )
    return _page(list(rows), "all", lambda lead: f"i{lead.id}")


def _page(rows: list[Lead], kind: str, cursor: Any) -> LeadPage:
    shown = rows[:PAGE]
    return LeadPage(shown, cursor(shown[-1]) if len(rows) > PAGE else None, kind)


async def _name_page(
    session: AsyncSession,
    campaign: Campaign,
    text: str,
    query: LeadQuery,
    live: tuple[Any, ...],
    state: tuple[Any, ...],
) -> LeadPage:
    after, _ = _cursor(query.after, "i")
    window = (
        select(Lead.id, Lead.name)
        .where(*live, *state, Lead.id > after)
        .order_by(Lead.id)
        .limit(NAME_WINDOW)
        .subquery()
    )
    matching = func.lower(window.c.name).contains(text.lower(), autoescape=True)
    found = list(
        await session.scalars(
            select(window.c.id).where(matching).order_by(window.c.id).limit(PAGE + 1)
        )
    )
    shown = found[:PAGE]
    leads = (
        list(await session.scalars(select(Lead).where(Lead.id.in_(shown)).order_by(Lead.id)))
        if shown
        else []
    )
    if len(found) > PAGE:
        next_after: str | None = f"i{shown[-1]}"
    else:
        last, scanned = (await session.execute(select(func.max(window.c.id), func.count()))).one()
        next_after = f"i{last}" if scanned == NAME_WINDOW else None
    return LeadPage(leads, next_after, "name")


# A lead --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadDetail:
    lead: Lead
    attempts: list[Lease]
    explained: Explained | None


async def lead_detail(
    session: AsyncSession, account: Account, campaign: Campaign, lead_id: int, now: datetime
) -> LeadDetail:
    lead = await own_lead(session, campaign, lead_id)
    leases = await session.scalars(
        select(Lease).where(Lease.lead_id == lead.id).order_by(Lease.leased_at, Lease.id)
    )
    number = lead.phone_e164 or lead.phone_number
    explained = await insight.explain_number(session, account, campaign, number, now)
    mine = next((item for item in explained if item.lead_id == lead.id), None)
    return LeadDetail(lead, list(leases), mine)


async def own_lead(session: AsyncSession, campaign: Campaign, lead_id: int) -> Lead:
    lead = await session.scalar(
        select(Lead).where(
            Lead.id == lead_id,
            Lead.campaign_id == campaign.id,
            Lead.status != LeadStatus.DELETED.value,
        )
    )
    if lead is None:
        raise NotFound(NO_LEAD)
    return lead


# Imports -------------------------------------------------------------------------------

REJECTED_SHOWN = 100


async def recent_imports(session: AsyncSession, campaign: Campaign, limit: int = 5) -> list[Import]:
    rows = await session.scalars(
        select(Import)
        .where(Import.campaign_id == campaign.id)
        .order_by(Import.id.desc())
        .limit(limit)
    )
    return list(rows)


async def rejected_rows(session: AsyncSession, record: Import) -> list[ImportResult]:
    """The first ``REJECTED_SHOWN`` rejected rows of the import, in row order."""
    rows = await session.scalars(
        select(ImportResult)
        .where(
            ImportResult.import_id == record.id,
            ImportResult.result == RowResult.REJECTED.value,
        )
        .order_by(ImportResult.idx)
        .limit(REJECTED_SHOWN)
    )
    return list(rows)


def rows_per_second(record: Import, now: datetime) -> float | None:
    """Rows handled per second since the import started (until it finished)."""
    if record.started_at is None:
        return None
    done = record.added + record.duplicates + record.rejected
    end = record.finished_at or now
    seconds = max((end - record.started_at) / timedelta(seconds=1), 0.001)
    return done / seconds
