"""Campaigns: creation, settings, start and stop. No web framework here."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision, get_account
from dialbase.campaigns.models import Campaign, DialType, Direction, Routing
from dialbase.errors import Conflict, Invalid, NotFound
from dialbase.leads.models import Lead

MAX_ATTEMPTS_LIMIT = 100
MAX_RETRY_DELAY = 30 * 24 * 3600


def _choice(kind: type[DialType] | type[Direction] | type[Routing], value: str, what: str) -> str:
    for member in kind:
        if member.value.lower() == value.strip().lower():
            return member.value
    allowed = ", ".join(m.value for m in kind)
    raise Invalid(f"unknown {what} {value!r}: use one of {allowed}")


def _names(values: Sequence[str] | None, what: str) -> list[str]:
    cleaned = [v.strip() for v in values or [] if v.strip()]
    if len(set(cleaned)) != len(cleaned):
        raise Invalid(f"{what} must not repeat")
    return cleaned


def _check_retry(max_attempts: int | None, retry_delay: int | None) -> None:
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise Invalid(f"max attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}")
    if retry_delay is not None and not 0 <= retry_delay <= MAX_RETRY_DELAY:
        raise Invalid(f"retry delay must be between 0 and {MAX_RETRY_DELAY} seconds")


async def create_campaign(
    session: AsyncSession,
    username: str,
    name: str,
    *,
    dial_type: str,
    direction: str = Direction.OUTBOUND.value,
    routing: str = Routing.GENERAL.value,
    agents: Sequence[str] | None = None,
    skills: Sequence[str] | None = None,
) -> Campaign:
    account = await get_account(session, username)
    name = name.strip()
    if not name:
        raise Invalid("a campaign name must not be blank")
    campaign = Campaign(
        account_id=account.id,
        name=name,
        dial_type=_choice(DialType, dial_type, "dial type"),
        direction=_choice(Direction, direction, "direction"),
        routing=_choice(Routing, routing, "routing"),
        agents=_names(agents, "agents"),
        skills=_names(skills, "skills"),
        running=False,
    )
    session.add(campaign)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"account {username!r} already has a campaign named {name!r}") from exc
    await bump_revision(session)
    return campaign


async def find_campaign(session: AsyncSession, account_id: int, name: str) -> Campaign | None:
    return await session.scalar(
        select(Campaign).where(Campaign.account_id == account_id, Campaign.name == name)
    )


async def get_campaign(session: AsyncSession, username: str, name: str) -> Campaign:
    account = await get_account(session, username)
    return await get_account_campaign(session, account, name)


async def get_account_campaign(session: AsyncSession, account: Account, name: str) -> Campaign:
    campaign = await find_campaign(session, account.id, name.strip())
    if campaign is None:
        raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
    return campaign


async def update_campaign(
    session: AsyncSession,
    username: str,
    name: str,
    *,
    max_attempts: int | None = None,
    retry_delay: int | None = None,
    agents: Sequence[str] | None = None,
    skills: Sequence[str] | None = None,
) -> Campaign:
    campaign = await get_campaign(session, username, name)
    _check_retry(max_attempts, retry_delay)
    if max_attempts is not None:
        campaign.max_attempts = max_attempts
    if retry_delay is not None:
        campaign.retry_delay_seconds = retry_delay
    if agents is not None:
        campaign.agents = _names(agents, "agents")
    if skills is not None:
        campaign.skills = _names(skills, "skills")
    await session.flush()
    await bump_revision(session)
    return campaign


async def set_running(session: AsyncSession, campaign: Campaign, running: bool) -> bool:
    """Start or stop a campaign; returns whether its state changed."""
    result = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.running.is_(not running))
        .values(running=running)
    )
    campaign.running = running
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def lead_count(session: AsyncSession, campaign_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Lead).where(Lead.campaign_id == campaign_id)
    )
    return int(count or 0)


async def list_campaigns(session: AsyncSession, username: str) -> list[Campaign]:
    account = await get_account(session, username)
    return list(
        await session.scalars(
            select(Campaign).where(Campaign.account_id == account.id).order_by(Campaign.name)
        )
    )


async def lead_counts(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(Lead.campaign_id, func.count())
        .where(Lead.campaign_id.in_(campaign_ids))
        .group_by(Lead.campaign_id)
    )
    return {campaign_id: int(count) for campaign_id, count in rows.all()}


async def campaign_view(session: AsyncSession, campaign: Campaign) -> dict[str, object]:
    return _view(campaign, await lead_count(session, campaign.id))


async def campaign_views(
    session: AsyncSession, campaigns: Sequence[Campaign]
) -> list[dict[str, object]]:
    counts = await lead_counts(session, [c.id for c in campaigns]) if campaigns else {}
    return [_view(c, counts.get(c.id, 0)) for c in campaigns]


def _view(campaign: Campaign, leads: int) -> dict[str, object]:
    return {
        "name": campaign.name,
        "direction": campaign.direction,
        "dialType": campaign.dial_type,
        "routing": campaign.routing,
        "running": campaign.running,
        "agents": list(campaign.agents),
        "skills": list(campaign.skills),
        "maxAttempts": campaign.max_attempts,
        "retryDelaySeconds": campaign.retry_delay_seconds,
        "leadCount": leads,
    }
