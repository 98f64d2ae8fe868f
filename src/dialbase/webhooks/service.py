"""Webhook settings and the events of the session-owned write paths. No web framework.

Settings: one webhook per account (the default) and one per campaign (it overrides the
account's for that campaign's events, entirely). A webhook has a URL (``http``/``https``
to a public address, checked like the bulk callbacks: ``callback_urls``, unless
``DIALBASE_ALLOW_PRIVATE_CALLBACKS``), a secret (``whsec_`` and base64, as Standard
Webhooks names it; generated when not given, shown once) and its enabled event types
(default: all). Setting, rotating or removing one bumps the configuration revision
(``accounts.service.bump_revision``), so every worker's cache learns whether the account
has a webhook at all (``AccountInfo.has_webhooks``) before its next write.

Events written from a SQLAlchemy session (``outbox.record``) are here too: the campaign
events (``campaign_running``) and the deleted leads; an import's end is written by its
last chunk (``imports.chunks``, with ``import_done_data``). These functions only flush:
the caller's transaction commits the change and its events together.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.accounts.models import Account
from dialbase.accounts.service import bump_revision
from dialbase.callback_urls import check_callback_url_async
from dialbase.campaigns.models import Campaign
from dialbase.db import utcnow
from dialbase.errors import Invalid, NotFound
from dialbase.webhooks import outbox
from dialbase.webhooks.models import EVENT_TYPES, DeliveryStatus, EventType, Webhook, WebhookEvent

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # generated secrets
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
MAX_PAGE = 500
BAD_SECRET = (
    f"secret: use {SECRET_PREFIX} followed by the base64 of {MIN_SECRET_BYTES} to"
    f" {MAX_SECRET_BYTES} random bytes, or leave it out to have one generated"
)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A checked setting: what ``put_webhook`` stores."""

    url: str
    secret: str | None  # None: keep the current one (or generate one for a new webhook)
    events: tuple[str, ...]
    rotate_secret: bool = False


@dataclass(frozen=True, slots=True)
class Saved:
    webhook: Webhook
    campaign: str | None
    created: bool
    new_secret: str | None  # a generated secret, shown this once


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise Invalid(BAD_SECRET)
    try:
        raw = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(BAD_SECRET) from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise Invalid(BAD_SECRET)
    return text


def check_events(events: Sequence[str] | None) -> tuple[str, ...]:
    """The enabled event types, in the documented order; None: all of them."""
    if events is None:
        return EVENT_TYPES
    wanted = {item.strip() for item in events if item.strip()}
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise Invalid(f"unknown event type {unknown[0]!r}: use some of {', '.join(EVENT_TYPES)}")
    if not wanted:
        raise Invalid(f"events: name at least one of {', '.join(EVENT_TYPES)}")
    return tuple(item for item in EVENT_TYPES if item in wanted)


async def check_request(
    url: str,
    secret: str | None,
    events: Sequence[str] | None,
    *,
    allow_private: bool,
    rotate_secret: bool = False,
) -> WebhookRequest:
    """Every check of a setting, before any transaction (the URL's name is resolved)."""
    if secret is not None and rotate_secret:
        raise Invalid("give a secret or ask for a new one (rotate), not both")
    checked_secret = check_secret(secret) if secret is not None else None
    checked_events = check_events(events)
    refused = await check_callback_url_async(url, allow_private)
    if refused is not None:
        raise Invalid(f"url: {refused}")
    return WebhookRequest(url.strip(), checked_secret, checked_events, rotate_secret)


async def _campaign(session: AsyncSession, account: Account, name: str | None) -> Campaign | None:
    if name is None:
        return None
    found = None
    if "\x00" not in name:
        found = await session.scalar(
            select(Campaign).where(Campaign.account_id == account.id, Campaign.name == name.strip())
        )
    if found is None:
        raise NotFound(f"account {account.username!r} has no campaign named {name!r}")
    return found


async def _find(session: AsyncSession, account: Account, campaign: Campaign | None) -> Webhook:
    scope = campaign.id if campaign is not None else 0
    found = await session.scalar(
        select(Webhook).where(Webhook.account_id == account.id, Webhook.scope_key == scope)
    )
    if found is None:
        raise NotFound(_none_set(account, campaign))
    return found


def _none_set(account: Account, campaign: Campaign | None) -> str:
    if campaign is None:
        return f"account {account.username!r} has no webhook"
    return f"campaign {campaign.name!r} has no webhook of its own"


async def put_webhook(
    session: AsyncSession, account: Account, campaign_name: str | None, request: WebhookRequest
) -> Saved:
    """Create or replace the account's (or a campaign's) webhook."""
    campaign = await _campaign(session, account, campaign_name)
    scope = campaign.id if campaign is not None else 0
    found = await session.scalar(
        select(Webhook)
        .where(Webhook.account_id == account.id, Webhook.scope_key == scope)
        .with_for_update()
    )
    now = utcnow()
    generated = None
    if request.secret is None and (found is None or request.rotate_secret):
        generated = generate_secret()
    secret = request.secret or generated
    events = "," + ",".join(request.events) + ","
    if found is None:
        found = Webhook(
            account_id=account.id,
            campaign_id=campaign.id if campaign is not None else None,
            scope_key=scope,
            url=request.url,
            secret=secret,
            events=events,
            created_at=now,
            updated_at=now,
        )
        session.add(found)
        created = True
    else:
        found.url, found.events, found.updated_at = request.url, events, now
        if secret is not None:
            found.secret = secret
        created = False
    await session.flush()
    await bump_revision(session)
    return Saved(found, campaign.name if campaign else None, created, generated)


async def get_webhook(
    session: AsyncSession, account: Account, campaign_name: str | None
) -> tuple[Webhook, str | None]:
    campaign = await _campaign(session, account, campaign_name)
    return await _find(session, account, campaign), campaign.name if campaign else None


async def remove_webhook(
    session: AsyncSession, account: Account, campaign_name: str | None
) -> None:
    """Remove the webhook. Its events not yet delivered end as failed when their turn
    comes ("the webhook was removed"); no new ones are written."""
    campaign = await _campaign(session, account, campaign_name)
    found = await _find(session, account, campaign)
    await session.delete(found)
    await session.flush()
    await bump_revision(session)


def webhook_view(webhook: Webhook, campaign: str | None) -> dict[str, Any]:
    """A webhook as shown (never its secret)."""
    return {
        "campaign": campaign,
        "url": webhook.url,
        "events": [item for item in webhook.events.split(",") if item],
        "createdAt": webhook.created_at,
        "updatedAt": webhook.updated_at,
    }


# Events of the session-owned write paths --------------------------------------------


async def campaign_running(session: AsyncSession, campaign: Campaign, running: bool) -> None:
    """A campaign's state changed (start or stop by /v1, setCampaignStatus, the CLI)."""
    kind = EventType.CAMPAIGN_STARTED if running else EventType.CAMPAIGN_STOPPED
    await outbox.record(session, campaign.id, kind.value, {})


async def leads_deleted(
    session: AsyncSession, deleted: Sequence[tuple[int, int, str, str | None]]
) -> None:
    """One ``lead.deleted`` per deleted lead: (lead id, campaign id, number, name)."""
    by_campaign: dict[int, list[tuple[int | None, dict[str, Any]]]] = {}
    for lead_id, campaign_id, number, name in sorted(deleted):
        data = {"phoneNumber": number, "name": name}
        by_campaign.setdefault(campaign_id, []).append((lead_id, data))
    now = utcnow()
    for campaign_id, events in sorted(by_campaign.items()):
        await outbox.record_many(session, campaign_id, EventType.LEAD_DELETED.value, events, now)


def import_done_data(
    import_id: int, source: str, total: int, added: int, duplicates: int, rejected: int
) -> dict[str, Any]:
    """The data of an import's ``import.done`` event (written by the import's last chunk,
    in its transaction: ``imports.chunks``)."""
    return {
        "importId": str(import_id),
        "source": source,
        "total": total,
        "added": added,
        "duplicates": duplicates,
        "rejected": rejected,
    }


# Deliveries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    events: list[WebhookEvent]
    next_after: int | None


def check_status(status: str | None) -> str | None:
    if status is None:
        return None
    allowed = [item.value for item in DeliveryStatus]
    if status not in allowed:
        raise Invalid(f"status: use one of {', '.join(allowed)}")
    return status


async def list_deliveries(
    session: AsyncSession,
    account_id: int,
    *,
    status: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> DeliveryPage:
    """The account's events, newest first, a page at a time (``after``: the
    ``nextAfter`` of the page before)."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit: 1 to {MAX_PAGE}")
    query = select(WebhookEvent).where(WebhookEvent.account_id == account_id)
    if check_status(status) is not None:
        query = query.where(WebhookEvent.status == status)
    if after is not None:
        query = query.where(WebhookEvent.id < after)
    rows = list(await session.scalars(query.order_by(WebhookEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(rows, rows[-1].id if more else None)


def delivery_view(event: WebhookEvent) -> dict[str, Any]:
    return {
        "eventId": event.event_id,
        "type": event.type,
        "leadId": str(event.lead_id) if event.lead_id is not None else None,
        "status": event.status,
        "attempts": event.attempts,
        "createdAt": event.created_at,
        "nextAttemptAt": event.next_attempt_at if event.status == DeliveryStatus.PENDING else None,
        "deliveredAt": event.delivered_at,
        "lastStatus": event.last_status,
        "lastError": event.last_error,
    }


async def events_by_status(session: AsyncSession) -> dict[str, int]:
    """The outbox's events by status, across accounts (``dialbase_webhook_events``)."""
    found = await session.execute(
        select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
    )
    counts = {status.value: 0 for status in DeliveryStatus}
    counts.update({status: int(count) for status, count in found})
    return counts


async def backlog(session: AsyncSession) -> int:
    """Events not yet delivered nor failed, across accounts (``dialbase_webhook_backlog``)."""
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEvent)
        .where(WebhookEvent.status == DeliveryStatus.PENDING.value)
    )
    return int(count or 0)


def instant(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
