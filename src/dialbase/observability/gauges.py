"""The gauges a scrape of ``/metrics`` brings up to date: is the database up, and how many
leads each campaign holds in each state.

The database is asked ``SELECT 1`` on every scrape (``PROBE_SECONDS`` at most).

Leads by state are one grouped count over the leads table (campaigns without leads
included), made at most every ``DIALBASE_METRICS_COUNT_SECONDS`` per worker and
single-flight: a scrape that finds the count older than that starts one count, and every
scrape meanwhile waits for that same count (``COUNT_WAIT_SECONDS`` at most, then answers
with the previous one). A failed count keeps the previous numbers;
``dialbase_leads_counted_timestamp_seconds`` says how old they are. The state is the
stored one: a lease that lapsed is counted ``leased`` and a retry come due ``retry`` until
the next lease of the campaign settles them (the statistics endpoint computes the settled
state, at the cost of a heavier query).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.errors import database_unavailable, outages
from dialbase.leads.models import Lead, LeadStatus
from dialbase.observability import metrics
from dialbase.webhooks.service import events_by_status

log = logging.getLogger("dialbase.metrics")

PROBE_SECONDS = 2.0
COUNT_WAIT_SECONDS = 5.0
STATES = [s.value for s in LeadStatus if s is not LeadStatus.DELETED]


@dataclass(frozen=True, slots=True)
class CampaignCount:
    account: str
    campaign: str
    running: bool
    leads: dict[str, int]


async def count_leads(session: AsyncSession) -> list[CampaignCount]:
    """Every campaign with its leads by stored state (deleted leads left out)."""
    rows = await session.execute(
        select(Account.username, Campaign.name, Campaign.running, Lead.status, func.count(Lead.id))
        .select_from(Campaign)
        .join(Account, Account.id == Campaign.account_id)
        .outerjoin(Lead, Lead.campaign_id == Campaign.id)
        .group_by(Account.username, Campaign.name, Campaign.running, Lead.status)
    )
    found: dict[tuple[str, str], CampaignCount] = {}
    for username, name, running, status, count in rows:
        entry = found.get((username, name))
        if entry is None:
            entry = CampaignCount(username, name, bool(running), dict.fromkeys(STATES, 0))
            found[(username, name)] = entry
        if status in entry.leads:
            entry.leads[status] += count
    return list(found.values())


class ScrapeGauges:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        count_seconds: float,
    ) -> None:
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._count_seconds = count_seconds
        self._counted_at = float("-inf")  # monotonic
        self._counting: asyncio.Task[None] | None = None

    async def update(self) -> None:
        """Before a scrape: probe the database, count leads if the last count is too old."""
        up = await self._probe()
        metrics.DATABASE_UP.set(1 if up else 0)
        if not up:
            return
        if self._counting is None and time.monotonic() - self._counted_at >= self._count_seconds:
            self._counting = asyncio.create_task(self._count(), name="dialbase-metrics-count")
        if self._counting is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._counting), COUNT_WAIT_SECONDS)

    async def _probe(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                async with self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "down"; an outage is reported as such
            if database_unavailable(exc):
                outages.failed(exc)
            return False
        return True

    async def _count(self) -> None:
        try:
            async with self._sessionmaker() as session:
                counts = await count_leads(session)
                events = await events_by_status(session)
        except Exception as exc:  # keep the previous numbers; the timestamp shows their age
            log.warning("counting leads for /metrics failed: %s", type(exc).__name__)
        else:
            self._counted_at = time.monotonic()
            for entry in counts:
                running = 1 if entry.running else 0
                metrics.CAMPAIGN_RUNNING.labels(entry.account, entry.campaign).set(running)
                for state, count in entry.leads.items():
                    metrics.LEADS.labels(entry.account, entry.campaign, state).set(count)
            for status, count in events.items():
                metrics.WEBHOOK_EVENTS.labels(status).set(count)
            metrics.WEBHOOK_BACKLOG.set(events.get("pending", 0))
            metrics.LEADS_COUNTED_AT.set(time.time())
        finally:
            self._counting = None

    async def close(self) -> None:
        if self._counting is not None:
            self._counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._counting
