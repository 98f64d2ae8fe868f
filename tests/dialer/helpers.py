"""Factories for the dialer tests: leads stored as the ingestion writer stores them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.campaigns.models import Campaign
from dialbase.campaigns.service import get_campaign, set_running, update_campaign
from dialbase.db import session_scope, utcnow
from dialbase.dialer.models import Lease
from dialbase.leads.models import Lead
from dialbase.leads.service import add_lead
from tests.factories import make_account, make_campaign

Sessions = async_sessionmaker[AsyncSession]
AUTH = httpx.BasicAuth("acme", "acme-secret-key")


async def running_campaign(sessions: Sessions, name: str = "Sales", **options: Any) -> None:
    """The default account with one started campaign (``options`` go to make_campaign)."""
    await make_account(sessions)
    await make_campaign(sessions, name, **options)
    await set_campaign(sessions, name, running=True)


async def set_campaign(
    sessions: Sessions,
    name: str = "Sales",
    *,
    running: bool | None = None,
    max_attempts: int | None = None,
    retry_delay: int | None = None,
    calling_hours: str | None = None,
    retry_delays: dict[str, int] | None = None,
) -> None:
    """Change acme's campaign; ``None`` leaves a setting as it is ("" and {} clear)."""
    async with session_scope(sessions) as session:
        await update_campaign(
            session,
            "acme",
            name,
            max_attempts=max_attempts,
            retry_delay=retry_delay,
            calling_hours=calling_hours,
            retry_delays=retry_delays,
        )
        if running is not None:
            await set_running(session, await get_campaign(session, "acme", name), running)


async def add_leads(sessions: Sessions, *specs: dict[str, Any], campaign: str = "Sales") -> None:
    """Store leads in order, one second apart; each spec overrides Lead's columns."""
    start = utcnow() - timedelta(hours=1)
    async with session_scope(sessions) as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == campaign))
        for n, spec in enumerate(specs):
            created = start + timedelta(seconds=n)
            values = {"phone_number": f"98765{n:05d}", "created_at": created, "due_at": created}
            await add_lead(session, campaign_id, **(values | spec))


async def lead_by_phone(sessions: Sessions, phone: str) -> Lead:
    async with session_scope(sessions) as session:
        lead = await session.scalar(select(Lead).where(Lead.phone_number == phone))
        assert lead is not None
        return lead


async def move_deadlines_to_past(sessions: Sessions) -> None:
    """Every open lease's deadline passed a minute ago (no sleeping in tests)."""
    past = utcnow() - timedelta(minutes=1)
    async with session_scope(sessions) as session:
        await session.execute(update(Lease).where(Lease.outcome.is_(None)).values(deadline=past))
        await session.execute(update(Lead).where(Lead.status == "leased").values(due_at=past))


async def move_retries_to_now(sessions: Sessions) -> None:
    """Every scheduled retry's time came."""
    async with session_scope(sessions) as session:
        await session.execute(
            update(Lead)
            .where(Lead.status == "retry")
            .values(due_at=utcnow() - timedelta(seconds=1))
        )


async def lease(
    client: httpx.AsyncClient, campaign: str = "Sales", auth: httpx.Auth = AUTH, **body: Any
) -> httpx.Response:
    return await client.post(f"/v1/campaigns/{campaign}/leases", json=body, auth=auth)


async def lease_phones(
    client: httpx.AsyncClient, campaign: str = "Sales", **body: Any
) -> list[str]:
    response = await lease(client, campaign, **body)
    assert response.status_code == 200, response.text
    return [item["lead"]["phoneNumber"] for item in response.json()["leases"]]


async def report(
    client: httpx.AsyncClient, lease_id: str, outcome: str, auth: httpx.Auth = AUTH, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/leases/{lease_id}/outcome", json={"outcome": outcome, **extra}, auth=auth
    )


async def stats(client: httpx.AsyncClient, campaign: str = "Sales") -> dict[str, Any]:
    response = await client.get(f"/v1/campaigns/{campaign}/stats", auth=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def minutes_from_now(minutes: float) -> datetime:
    return utcnow() + timedelta(minutes=minutes)
