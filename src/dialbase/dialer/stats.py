"""Campaign statistics: leads by state (overall and per priority), attempts, outcomes.

A deleted lead is in no count of leads, but its attempts and leases (outcomes) are.

Read-only: a dialer polling statistics never takes SQLite's write lock, so it never
competes with ingestion. What time decided since the last lease (lapsed leases, retries
come due, expiry: the stores' settle) is not written here but computed in the query: each
lead is counted in the state ``settle`` would give it now (``queue.settled_status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.campaigns.models import Campaign
from dialbase.db import utcnow
from dialbase.dialer.leasing import RETRY
from dialbase.dialer.models import Lease, Outcome
from dialbase.dialer.queue import settled_status
from dialbase.dialer.service import account_campaign
from dialbase.leads.models import Lead, LeadStatus

LAPSED = "lapsed"


def _no_leads() -> dict[str, int]:
    return {status.value: 0 for status in LeadStatus if status is not LeadStatus.DELETED}


@dataclass(slots=True)
class PriorityStats:
    priority: int
    leads: dict[str, int] = field(default_factory=_no_leads)
    attempts: int = 0


@dataclass(slots=True)
class CampaignStats:
    campaign: Campaign
    leads: dict[str, int]
    attempts: int
    leases: dict[str, int]  # by outcome, plus "lapsed" (not reported by the deadline)
    next_retry_at: datetime | None
    by_priority: list[PriorityStats]

    @property
    def connects(self) -> int:
        return self.leases[Outcome.CONNECTED.value]


async def campaign_stats(
    session: AsyncSession, account: Account, campaign_name: str
) -> CampaignStats:
    """Counts as of now, time-driven changes (lapsed leases, expiry) included; writes nothing."""
    campaign = await account_campaign(session, account, campaign_name)
    now = utcnow()
    by_priority = await _leads_by_priority(session, campaign, now)
    leads = _no_leads()
    for row in by_priority:
        for status, count in row.leads.items():
            leads[status] += count
    return CampaignStats(
        campaign=campaign,
        leads=leads,
        attempts=sum(row.attempts for row in by_priority),
        leases=await _leases_by_outcome(session, campaign, now),
        next_retry_at=await session.scalar(
            select(func.min(Lead.due_at)).where(
                Lead.campaign_id == campaign.id,
                Lead.status == RETRY,
                Lead.due_at > now,
                or_(Lead.expires_at.is_(None), Lead.expires_at > now),
            )
        ),
        by_priority=by_priority,
    )


async def _leads_by_priority(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> list[PriorityStats]:
    # Grouped by the label, not the expression: PostgreSQL would see the expression's
    # parameters twice as two different expressions. "settled" is no column's name.
    settled = settled_status(campaign, now).label("settled")
    rows = await session.execute(
        select(Lead.priority, settled, func.count(), func.sum(Lead.attempts))
        .where(Lead.campaign_id == campaign.id)
        .group_by(Lead.priority, settled)
    )
    found: dict[int, PriorityStats] = {}
    for priority, status, count, attempts in rows:
        stats = found.setdefault(priority, PriorityStats(priority))
        if status != LeadStatus.DELETED:  # gone from the counts; its attempts stay
            stats.leads[status] = stats.leads.get(status, 0) + count
        stats.attempts += int(attempts or 0)
    return [found[p] for p in sorted(found, reverse=True)]


async def _leases_by_outcome(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> dict[str, int]:
    counts = {outcome.value: 0 for outcome in Outcome} | {LAPSED: 0}
    rows = await session.execute(
        select(Lease.outcome, func.count())
        .where(
            Lease.campaign_id == campaign.id,
            or_(Lease.outcome.is_not(None), Lease.deadline <= now),
        )
        .group_by(Lease.outcome)
    )
    for outcome, count in rows:
        counts[outcome or LAPSED] = count
    return counts
