"""Plain factory functions for tests: they call the same services as the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.service import create_account
from dialbase.campaigns.models import Campaign
from dialbase.campaigns.service import create_campaign, get_campaign, set_running
from dialbase.db import session_scope
from dialbase.leads.models import Lead

Sessions = async_sessionmaker[AsyncSession]


async def make_account(
    sessions: Sessions,
    username: str = "acme",
    api_key: str = "acme-secret-key",
    **options: Any,
) -> str:
    async with session_scope(sessions) as session:
        _, key = await create_account(session, username, api_key=api_key, **options)
    return key


async def make_campaign(
    sessions: Sessions,
    name: str = "Sales",
    *,
    username: str = "acme",
    dial_type: str = "Progressive",
    direction: str = "outbound",
    routing: str = "general",
    agents: Sequence[str] = (),
    skills: Sequence[str] = (),
) -> None:
    async with session_scope(sessions) as session:
        await create_campaign(
            session,
            username,
            name,
            dial_type=dial_type,
            direction=direction,
            routing=routing,
            agents=agents,
            skills=skills,
        )


async def leads_of(sessions: Sessions, campaign: str = "Sales") -> list[Lead]:
    async with session_scope(sessions) as session:
        campaign_id = await session.scalar(select(Campaign.id).where(Campaign.name == campaign))
        rows = await session.scalars(
            select(Lead).where(Lead.campaign_id == campaign_id).order_by(Lead.id)
        )
        return list(rows)


async def campaign_running(sessions: Sessions, campaign: str = "Sales") -> bool:
    async with session_scope(sessions) as session:
        return bool(await session.scalar(select(Campaign.running).where(Campaign.name == campaign)))


def body(**fields: Any) -> dict[str, Any]:
    """A valid AddCampaignData body for the default account and campaign, overridable."""
    base: dict[str, Any] = {
        "userName": "acme",
        "apiKey": "acme-secret-key",
        "campaignName": "Sales",
        "phoneNumber": "9876543210",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not OMIT}


class _Omit:
    """Leave a key out of ``body`` (its repr is stable: it names parametrized tests)."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = _Omit()


async def all_leads(sessions: Sessions) -> list[Lead]:
    """Every lead of every campaign and account, in the order stored."""
    async with session_scope(sessions) as session:
        return list(await session.scalars(select(Lead).order_by(Lead.id)))


async def running_campaigns(sessions: Sessions) -> set[str]:
    """The names of every running campaign, whatever its account."""
    async with session_scope(sessions) as session:
        return set(await session.scalars(select(Campaign.name).where(Campaign.running)))


async def set_campaign_running(
    sessions: Sessions, campaign: str = "Sales", *, username: str = "acme", running: bool = True
) -> None:
    async with session_scope(sessions) as session:
        await set_running(session, await get_campaign(session, username, campaign), running)
