"""Reading leads back out (export), and adding leads outside the request path (demo data,
tests). Requests write through ``leads.writer``. Deleted leads are never read out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase import phones
from dialbase.campaigns.models import Campaign
from dialbase.compat.fields import in_zone
from dialbase.leads.models import CampaignZones, Lead, LeadStatus

EXPORT_FIELDS = [
    "phoneNumber",
    "name",
    "priority",
    "expiryDate",
    "agentId",
    "skill",
    "extra",
    "status",
    "attempts",
    "createdAt",
]


async def add_lead(
    session: AsyncSession,
    campaign_id: int,
    phone_number: str,
    *,
    country: str | None = None,
    account_zone: str = "UTC",
    **columns: Any,
) -> Lead:
    """Add a lead through the ORM with what the queue needs decided as the writer decides
    it: the number's E.164 form, the lead's zone key (``columns`` may set ``time_zones``)
    and the campaign's record of that key."""
    e164, candidates = phones.normalized(phone_number, country)
    given = phones.given_zone(columns.get("extra") or {})
    columns.setdefault("time_zones", phones.lead_zones(given, candidates, account_zone))
    lead = Lead(campaign_id=campaign_id, phone_number=phone_number, phone_e164=e164, **columns)
    session.add(lead)
    await session.merge(CampaignZones(campaign_id=campaign_id, time_zones=lead.time_zones))
    return lead


def lead_view(lead: Lead, zone: ZoneInfo) -> dict[str, object]:
    """A lead as the CLI and the API show it; instants in the account's time zone."""
    return {
        "phoneNumber": lead.phone_number,
        "name": lead.name,
        "priority": lead.priority,
        "expiryDate": in_zone(lead.expires_at, zone).isoformat() if lead.expires_at else None,
        "agentId": lead.agent_id,
        "skill": lead.skill,
        "extra": dict(lead.extra or {}),
        "status": lead.status,
        "attempts": lead.attempts,
        "createdAt": in_zone(lead.created_at, zone).isoformat(),
    }


async def iter_leads(
    session: AsyncSession, campaign: Campaign, zone: ZoneInfo, chunk: int = 1000
) -> AsyncIterator[dict[str, object]]:
    """Every lead of a campaign in the order stored, read in chunks (bounded memory);
    deleted leads left out."""
    last_id = 0
    while True:
        rows = (
            await session.scalars(
                select(Lead)
                .where(
                    Lead.campaign_id == campaign.id,
                    Lead.id > last_id,
                    Lead.status != LeadStatus.DELETED.value,
                )
                .order_by(Lead.id)
                .limit(chunk)
            )
        ).all()
        if not rows:
            return
        for lead in rows:
            yield lead_view(lead, zone)
        last_id = rows[-1].id
        session.expunge_all()
