"""Campaigns: creation, settings, start and stop. No web framework here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import func, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision, get_account
from dialbase.campaigns.models import Campaign, DialType, Direction, Routing
from dialbase.dialer import hours
from dialbase.dialer.models import RETRYABLE, Outcome
from dialbase.errors import Conflict, Invalid, NotFound
from dialbase.leads.models import Lead, LeadStatus
from dialbase.webhooks import service as webhooks

MAX_ATTEMPTS_LIMIT = 100
MAX_RETRY_DELAY = 30 * 24 * 3600
MAX_CALLING_HOURS_CHARS = 1000  # the column's length
# The outcomes a delay may be named for, in the order they are kept and shown.
DELAYED_OUTCOMES = tuple(o.value for o in Outcome if o in RETRYABLE)
_DELAY_ITEM = re.compile(r"(?P<outcome>[A-Za-z_]+)\s*=\s*(?P<seconds>[+-]?\d+)")
_DELAYS_EXAMPLE = '"no_answer=600,busy=120,failed=1800"'


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


def check_calling_hours(text: str) -> str | None:
    """Calling hours in their canonical spelling; ``""`` (or blanks) means none."""
    try:
        parsed = hours.parse(text)
    except hours.HoursError as exc:
        raise Invalid(f"calling hours: {exc}") from exc
    if parsed is None:
        return None
    if len(parsed.text) > MAX_CALLING_HOURS_CHARS:
        raise Invalid(f"calling hours must fit in {MAX_CALLING_HOURS_CHARS} characters")
    return parsed.text


def parse_retry_delays(text: str) -> dict[str, int]:
    """``"no_answer=600,busy=120"`` as a mapping; ``""`` (or blanks) is the empty one."""
    if not text.strip():
        return {}
    delays: dict[str, int] = {}
    for raw in text.split(","):
        if not raw.strip():
            raise Invalid(f"retry delays: an empty item in {text!r}: like {_DELAYS_EXAMPLE}")
        match = _DELAY_ITEM.fullmatch(raw.strip())
        if match is None:
            raise Invalid(
                f"retry delays: cannot read {raw.strip()!r}: write outcome=seconds pairs,"
                f" like {_DELAYS_EXAMPLE}"
            )
        outcome = match["outcome"].lower()
        if outcome in delays:
            raise Invalid(f"retry delays: {outcome!r} is given more than once")
        delays[outcome] = int(match["seconds"])
    return check_retry_delays(delays)


def format_retry_delays(delays: Mapping[str, int]) -> str:
    """The written form ``parse_retry_delays`` reads (``""`` for none)."""
    return ",".join(f"{outcome}={seconds}" for outcome, seconds in delays.items())


def check_retry_delays(delays: Mapping[str, int]) -> dict[str, int]:
    """Delays by outcome, retryable outcomes only, kept in ``DELAYED_OUTCOMES`` order."""
    allowed = ", ".join(DELAYED_OUTCOMES)
    for outcome, seconds in delays.items():
        if outcome not in DELAYED_OUTCOMES:
            known = outcome in {o.value for o in Outcome}
            why = "is not retried" if known else "is not an outcome"
            raise Invalid(f"retry delays: {outcome!r} {why}: name only {allowed}")
        if not 0 <= seconds <= MAX_RETRY_DELAY:
            raise Invalid(
                f"retry delays: {outcome} must be between 0 and {MAX_RETRY_DELAY} seconds"
            )
    return {o: int(delays[o]) for o in DELAYED_OUTCOMES if o in delays}


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
    calling_hours: str | None = None,
    retry_delays: Mapping[str, int] | None = None,
) -> Campaign:
    """Change the settings given (``None``: unchanged).

    ``calling_hours=""`` removes the hours (dial any time); ``retry_delays={}`` removes
    the per-outcome delays (``retry_delay`` then applies to every outcome).
    """
    campaign = await get_campaign(session, username, name)
    _check_retry(max_attempts, retry_delay)
    hours_text = check_calling_hours(calling_hours) if calling_hours is not None else None
    delays = check_retry_delays(retry_delays) if retry_delays is not None else None
    if max_attempts is not None:
        campaign.max_attempts = max_attempts
    if retry_delay is not None:
        campaign.retry_delay_seconds = retry_delay
    if agents is not None:
        campaign.agents = _names(agents, "agents")
    if skills is not None:
        campaign.skills = _names(skills, "skills")
    if calling_hours is not None:
        campaign.calling_hours = hours_text
    if delays is not None:
        # None would be stored as JSON's null in a JSON column; null() is SQL NULL.
        campaign.retry_delays = delays or null()
    await session.flush()
    if delays == {}:
        await session.refresh(campaign, ["retry_delays"])  # null() left it unloaded
    await bump_revision(session)
    return campaign


async def set_running(session: AsyncSession, campaign: Campaign, running: bool) -> bool:
    """Start or stop a campaign; returns whether its state changed (and records its
    webhook event when it did)."""
    result = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.running.is_(not running))
        .values(running=running)
    )
    campaign.running = running
    changed = bool(result.rowcount)  # type: ignore[attr-defined]
    if changed:  # campaign.started or campaign.stopped, committed with the change
        await webhooks.campaign_running(session, campaign, running)
    return changed


async def lead_count(session: AsyncSession, campaign_id: int) -> int:
    """The campaign's leads, deleted ones left out."""
    counts = await lead_counts(session, [campaign_id])
    return counts.get(campaign_id, 0)


async def list_campaigns(session: AsyncSession, username: str) -> list[Campaign]:
    account = await get_account(session, username)
    return list(
        await session.scalars(
            select(Campaign).where(Campaign.account_id == account.id).order_by(Campaign.name)
        )
    )


async def lead_counts(session: AsyncSession, campaign_ids: Sequence[int]) -> dict[int, int]:
    """Each campaign's leads, deleted ones left out (campaigns without any are absent)."""
    rows = await session.execute(
        select(Lead.campaign_id, func.count())
        .where(Lead.campaign_id.in_(campaign_ids), Lead.status != LeadStatus.DELETED.value)
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
        "retryDelays": dict(campaign.retry_delays or {}),
        "callingHours": campaign.calling_hours,
        "leadCount": leads,
    }
