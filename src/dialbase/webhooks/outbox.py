"""Writing events to the outbox, inside the transaction of the change they report.

Every event belongs to a campaign and goes to the campaign's own webhook when it has
one, else to its account's; a webhook that does not enable the event type gets nothing
(a campaign's webhook overrides its account's entirely). Which webhook applies is
decided in the writing transaction itself, by one statement that picks the setting and
tests the event type, so an event is written exactly when a webhook wants it at commit.

Three ways to write, one per kind of path:

- ``record`` / ``record_many``: in a SQLAlchemy session (deletions, campaign start and
  stop, imports): one look-up of the webhook, then the rows;
- ``SQLITE_INSERT``: the statement for the hot paths that write through sqlite3
  (``leads.stores.sqlite``, ``dialer.stores.sqlite``), named parameters;
- the PostgreSQL hot paths (``leads.stores.postgres``, ``dialer.stores.postgres``) put
  ``pg_event_cte`` into their own single statement: no extra round trip.

The hot paths write events only when the account has a webhook at all
(``AccountInfo.has_webhooks``, read at the configuration revision their transaction
checks): with none set, they run exactly the statements they ran before webhooks.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from dialbase.campaigns.models import Campaign
from dialbase.db import utcnow
from dialbase.dialer.leasing import OutcomeAsk, Report
from dialbase.leads.batch import NewLead
from dialbase.webhooks.models import DeliveryStatus, EventType, Webhook, WebhookEvent


def new_event_id() -> str:
    """A unique event id (the ``webhook-id`` header): ``evt_`` and 32 hex digits."""
    return f"evt_{uuid.uuid4().hex}"


def event_pattern(event_type: str) -> str:
    """The LIKE pattern that finds ``event_type`` in ``webhooks.events``."""
    return f"%,{event_type},%"


def dump(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


# The webhook of a campaign: its own, else its account's (one row at most).
_SQLITE_ROUTE = """
SELECT id, account_id, events FROM webhooks
WHERE account_id = (SELECT account_id FROM campaigns WHERE id = :campaign)
  AND (campaign_id = :campaign OR campaign_id IS NULL)
ORDER BY campaign_id IS NULL LIMIT 1
"""
SQLITE_INSERT = f"""
INSERT INTO webhook_events (event_id, webhook_id, account_id, campaign_id, lead_id, type,
    data, created_at, status, attempts, next_attempt_at)
SELECT :event_id, w.id, w.account_id, :campaign, :lead, :type, :data, :now, 'pending', 0, :now
FROM ({_SQLITE_ROUTE}) AS w
WHERE w.events LIKE :pattern
"""


SQLITE_INSERT_ROW = """
INSERT INTO webhook_events (event_id, webhook_id, account_id, campaign_id, lead_id, type,
    data, created_at, status, attempts, next_attempt_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)
"""


def sqlite_routes(
    conn: sqlite3.Connection, campaign_ids: Iterable[int], event_type: str
) -> dict[int, Route]:
    """The webhook of each campaign that enables ``event_type`` (one look-up per
    campaign, in the caller's transaction): for a batch of many events."""
    found = {}
    for campaign_id in sorted(set(campaign_ids)):
        row = conn.execute(_SQLITE_ROUTE, {"campaign": campaign_id}).fetchone()
        if row is not None and f",{event_type}," in row[2]:
            found[campaign_id] = Route(row[0], row[1])
    return found


def sqlite_row(
    route: Route, campaign_id: int, event_type: str, data: dict[str, Any], now: str, lead_id: int
) -> tuple[Any, ...]:
    """``SQLITE_INSERT_ROW``'s parameters."""
    return (
        new_event_id(),
        route.webhook_id,
        route.account_id,
        campaign_id,
        lead_id,
        event_type,
        dump(data),
        now,
        now,
    )


def sqlite_params(
    campaign_id: int,
    event_type: str,
    data: dict[str, Any],
    now: str,
    lead_id: int | None = None,
) -> dict[str, Any]:
    """``SQLITE_INSERT``'s parameters (``now``: ``db.sqlite_instant`` text)."""
    return {
        "event_id": new_event_id(),
        "campaign": campaign_id,
        "lead": lead_id,
        "type": event_type,
        "data": dump(data),
        "now": now,
        "pattern": event_pattern(event_type),
    }


def pg_event_cte(
    name: str,
    source: str,
    *,
    event_id: str,
    campaign: str,
    lead: str,
    type_: str,
    data: str,
    where: str = "true",
) -> str:
    """A PostgreSQL CTE ``name`` inserting one event per row of ``source`` (a FROM list)
    whose campaign's webhook enables the type; the other arguments are SQL expressions
    over ``source`` (``where``: which of its rows report an event)."""
    return f"""{name} AS (
    INSERT INTO webhook_events (event_id, webhook_id, account_id, campaign_id, lead_id, type,
        data, created_at, status, attempts, next_attempt_at)
    SELECT {event_id}, w.id, w.account_id, {campaign}, {lead}, {type_}, {data}, now(),
           'pending', 0, now()
    FROM {source}
    CROSS JOIN LATERAL (
        SELECT wh.id, wh.account_id, wh.events FROM webhooks wh
        WHERE wh.account_id = (SELECT cc.account_id FROM campaigns cc WHERE cc.id = {campaign})
          AND (wh.campaign_id = {campaign} OR wh.campaign_id IS NULL)
        ORDER BY wh.campaign_id IS NULL LIMIT 1
    ) AS w
    WHERE ({where}) AND w.events LIKE '%,' || {type_} || ',%'
)"""


def added_data(lead: NewLead) -> dict[str, Any]:
    """The data of a lead's ``lead.added`` event (its id is added when it is sent)."""
    return {
        "phoneNumber": lead.phone_number,
        "name": lead.name,
        "priority": lead.priority,
        "expiresAt": lead.expires_at.isoformat() if lead.expires_at else None,
        "agentId": lead.agent_id,
        "skill": lead.skill,
        "extra": lead.extra,
    }


LEAD_OUTCOME = EventType.LEAD_OUTCOME.value


def outcome_data(ask: OutcomeAsk, report: Report | None = None) -> dict[str, Any]:
    """The data of a ``lead.outcome`` event; without ``report``, the part the PostgreSQL
    statement completes (lead status, attempt, next attempt)."""
    data: dict[str, Any] = {"leaseId": ask.lease_id, "outcome": ask.outcome, "note": ask.note}
    if report is not None:
        data["leadStatus"] = report.lead_status
        data["attempt"] = report.attempt
        next_at = report.next_attempt_at
        data["nextAttemptAt"] = next_at.isoformat() if next_at else None
    return data


@dataclass(frozen=True, slots=True)
class Route:
    webhook_id: int
    account_id: int


async def route(session: AsyncSession, campaign_id: int, event_type: str) -> Route | None:
    """The webhook that receives ``event_type`` of the campaign, if one does."""
    account_id = select(Campaign.account_id).where(Campaign.id == campaign_id).scalar_subquery()
    row = (
        await session.execute(
            select(Webhook.id, Webhook.account_id, Webhook.events)
            .where(
                Webhook.account_id == account_id,
                (Webhook.campaign_id == campaign_id) | Webhook.campaign_id.is_(None),
            )
            .order_by(Webhook.campaign_id.is_(None))
            .limit(1)
        )
    ).first()
    if row is None or f",{event_type}," not in row.events:
        return None
    return Route(row.id, row.account_id)


async def record(
    session: AsyncSession,
    campaign_id: int,
    event_type: str,
    data: dict[str, Any],
    *,
    lead_id: int | None = None,
) -> bool:
    """Write one event in the session's transaction; whether a webhook wanted it."""
    return bool(await record_many(session, campaign_id, event_type, [(lead_id, data)]))


async def record_many(
    session: AsyncSession,
    campaign_id: int,
    event_type: str,
    events: Sequence[tuple[int | None, dict[str, Any]]],
    now: datetime | None = None,
) -> int:
    """Write events of one campaign and type (lead id, data), in order; how many."""
    if not events:
        return 0
    found = await route(session, campaign_id, event_type)
    if found is None:
        return 0
    moment = now or utcnow()
    await session.execute(
        insert(WebhookEvent),
        [
            {
                "event_id": new_event_id(),
                "webhook_id": found.webhook_id,
                "account_id": found.account_id,
                "campaign_id": campaign_id,
                "lead_id": lead_id,
                "type": event_type,
                "data": dump(data),
                "created_at": moment,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": moment,
            }
            for lead_id, data in events
        ],
    )
    return len(events)


# A campaign event of a write batch's lead action: $1 campaign id, $2 event id, $3 type.
PG_CAMPAIGN_EVENT = (
    "WITH "
    + pg_event_cte(
        "ev",
        "(SELECT $1::integer AS c) AS s",
        event_id="$2::text",
        campaign="s.c",
        lead="NULL::bigint",
        type_="$3::text",
        data="'{}'::text",
    )
    + " SELECT 1"
)
