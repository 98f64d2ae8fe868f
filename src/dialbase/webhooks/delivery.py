"""Delivering the outbox: every worker runs a ``WebhookDispatcher``; each event is sent
by one worker at a time.

A step claims due events, sends them at once, and records each answer:

1. claim: in one transaction, up to ``BATCH`` pending events whose time came and whose
   lease is free or lapsed (a killed worker's), the longest due first (along an index:
   a step reads about ``BATCH`` rows however many wait), skipping any event whose lead
   has an earlier event still pending; their lease (``claimed_until``) is moved
   ``DIALBASE_WEBHOOK_LEASE_SECONDS`` ahead. PostgreSQL locks the rows it claims
   (``FOR UPDATE SKIP LOCKED``: two workers never wait for each other nor take the same
   row); SQLite runs one writer at a time (``session_scope`` takes the write lock).
2. send: each event is POSTed to its webhook's URL, signed as Standard Webhooks says
   (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), after the URL is
   checked again (``callback_urls``: a name may resolve differently now). Redirects are
   not followed.
3. record (every answer of the step in one transaction): a 2xx answer marks an event
   ``delivered``. Anything else (another status, no answer, a timeout) is a failed
   attempt: the next one waits ``retry_delay`` (growing exponentially, with jitter),
   until ``DIALBASE_WEBHOOK_RETRY_WINDOW_SECONDS`` after the event, then the event is
   kept as ``failed``. A URL refused at send time and a webhook
   removed meanwhile fail the event at once.

Order per lead: an event is claimed only when no earlier event of its lead is pending,
so a lead's later event is never sent before its earlier one was delivered or failed for
good. At least once: an event is marked delivered only after its 2xx; a worker killed
between the two leaves it pending, and it is sent again once its lease lapsed.

Delivered and failed events are kept ``DIALBASE_WEBHOOK_KEEP_DAYS`` (7), then deleted
(``prune``, every 10 minutes in each worker); pending ones are never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import Table, bindparam, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook as Signer

from dialbase import __version__
from dialbase.callback_urls import check_callback_url_async
from dialbase.campaigns.models import Campaign
from dialbase.config import Settings
from dialbase.db import UTCDateTime, session_scope, utcnow
from dialbase.errors import database_unavailable, outages
from dialbase.webhooks.models import DeliveryStatus, Webhook, WebhookEvent

log = logging.getLogger("dialbase.webhooks")

BATCH = 100
# Between two busy steps: a backlog is sent at up to BATCH / STEP_PAUSE events a second
# per worker, and the writes of requests get the database (SQLite's single write lock)
# between two steps' transactions.
STEP_PAUSE = 0.05
MAX_BACKOFF = 10.0  # between steps while the database is unavailable
CLOSE_SECONDS = 15.0
MAX_ERROR_CHARS = 300
PRUNE_EVERY_SECONDS = 600.0
PENDING = DeliveryStatus.PENDING.value
REMOVED = "the webhook was removed"


def retry_delay(settings: Settings, failures: int) -> float:
    """Seconds before the attempt after ``failures`` failed ones: base * 2^(failures-1),
    at most the maximum, less a random part of up to half (so that the events of one
    outage are not all tried again at the same instant)."""
    exponent = min(max(failures, 1) - 1, 60)
    delay = min(
        settings.webhook_retry_base_seconds * 2**exponent, settings.webhook_retry_max_seconds
    )
    return delay * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: str
    type: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    lead_id: int | None
    campaign_id: int | None
    campaign: str | None
    data: dict[str, Any]
    url: str | None  # None: the webhook was removed
    secret: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    event: Claimed
    status: int | None  # the receiver's HTTP status; None: no answer
    error: str | None  # None: delivered
    final: bool  # a failure not worth another attempt


def payload(event: Claimed) -> bytes:
    """The body: ``type``, ``timestamp`` (when the event happened) and ``data``."""
    data: dict[str, Any] = {"campaign": event.campaign, "campaignId": event.campaign_id}
    if event.lead_id is not None:
        data["leadId"] = str(event.lead_id)
    data.update(event.data)
    moment = event.created_at.isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event.type, "timestamp": moment, "data": data})


def signed_headers(event_id: str, secret: str, body: bytes, now: datetime) -> dict[str, str]:
    signature = Signer(secret).sign(event_id, now, body.decode())
    return {
        "content-type": "application/json",
        "user-agent": f"dialbase/{__version__}",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


class WebhookDispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._owner = str(uuid.uuid4())
        self._client = client or httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="dialbase-webhooks")

    async def close(self) -> None:
        """Stop between two steps; a step in flight is let finish (``CLOSE_SECONDS``)."""
        self._stopping.set()
        if self._task is not None:
            _, pending = await asyncio.wait([self._task], timeout=CLOSE_SECONDS)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, CLOSE_SECONDS)
            self._task = None
        await self._client.aclose()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self) -> None:
        poll = self._settings.webhook_poll_seconds
        backoff = poll
        pruned_at = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                    pruned_at = time.monotonic()
                    await self.prune()
                sent = await self.step()
                backoff = poll
            except Exception as exc:
                if database_unavailable(exc):
                    outages.failed(exc)
                else:
                    log.error("the webhook dispatcher failed a step", exc_info=exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            await self._pause(STEP_PAUSE if sent else poll)

    async def step(self) -> int:
        """Claim due events, send them, record the answers; how many were attempted."""
        claimed = await self._claim()
        if claimed:
            await self._record(await asyncio.gather(*(self._attempt(e) for e in claimed)))
        return len(claimed)

    async def prune(self, now: datetime | None = None) -> int:
        """Delete delivered and failed events older than ``DIALBASE_WEBHOOK_KEEP_DAYS``
        (pending ones are never deleted); how many."""
        cutoff = (now or utcnow()) - timedelta(days=self._settings.webhook_keep_days)
        old = (WebhookEvent.status != PENDING, WebhookEvent.created_at < cutoff)
        async with self._sessionmaker() as session:  # no write lock when nothing is due
            if not await session.scalar(select(exists().where(*old))):
                return 0
        async with session_scope(self._sessionmaker) as session:
            result = await session.execute(delete(WebhookEvent).where(*old))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _claim(self) -> list[Claimed]:
        now = utcnow()
        earlier = aliased(WebhookEvent)
        blocked = exists().where(
            earlier.lead_id == WebhookEvent.lead_id,
            earlier.status == PENDING,
            earlier.id < WebhookEvent.id,
        )
        ready = (
            WebhookEvent.status == PENDING,
            WebhookEvent.next_attempt_at <= now,
            or_(WebhookEvent.claimed_until.is_(None), WebhookEvent.claimed_until < now),
            or_(WebhookEvent.lead_id.is_(None), ~blocked),
        )
        # Looked for without a lock first: an idle worker takes no write lock (on SQLite,
        # a poll a second per worker would otherwise hold the whole file's each time).
        async with self._sessionmaker() as session:
            if not await session.scalar(select(exists().where(*ready))):
                return []
        due = (
            select(WebhookEvent)
            .where(*ready)
            # Due order, along the (status, next_attempt_at) index: a step reads about
            # BATCH rows however many wait. Order per lead comes from ``blocked``.
            .order_by(WebhookEvent.next_attempt_at, WebhookEvent.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True, of=WebhookEvent)
        )
        async with session_scope(self._sessionmaker) as session:
            rows = list(await session.scalars(due))
            if not rows:
                return []
            lease = now + timedelta(seconds=self._settings.webhook_lease_seconds)
            await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_([row.id for row in rows]))
                .values(claimed_by=self._owner, claimed_until=lease)
            )
        # Read after the claim's commit: its transaction (SQLite's write lock) stays short.
        async with session_scope(self._sessionmaker, read_only=True) as session:
            hooks = await _webhooks(session, {row.webhook_id for row in rows})
            names = await _campaign_names(session, {row.campaign_id for row in rows})
        return [_claimed(row, hooks.get(row.webhook_id), names) for row in rows]

    async def _attempt(self, event: Claimed) -> Attempt:
        """Send one event; what came of it (written by ``_record`` with the others)."""
        if event.url is None or event.secret is None:
            return Attempt(event, None, REMOVED, final=True)
        refused = await check_callback_url_async(event.url, self._settings.allow_private_callbacks)
        if refused is not None:
            return Attempt(event, None, f"refused: {refused}", final=True)
        body = payload(event)
        headers = signed_headers(event.event_id, event.secret, body, utcnow())
        try:
            answer = await self._client.post(event.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Attempt(event, None, f"no answer: {type(exc).__name__}", final=False)
        if 200 <= answer.status_code < 300:
            return Attempt(event, answer.status_code, None, final=True)
        return Attempt(event, answer.status_code, f"HTTP {answer.status_code}", final=False)

    async def _record(self, attempts: list[Attempt]) -> None:
        """The step's deliveries and failed attempts, in one transaction of two
        statements (each sent once, for every row: SQLite's write lock is held briefly)."""
        now = utcnow()
        delivered: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for attempt in attempts:
            (failed if attempt.error else delivered).append(self._values(attempt, now))
        async with session_scope(self._sessionmaker) as session:
            if delivered:  # whoever holds it now: it was delivered
                await session.execute(_RECORD, delivered)
            if failed:  # only while this worker holds it (a lapsed lease is another's)
                await session.execute(_RECORD_MINE, failed)

    def _values(self, attempt: Attempt, now: datetime) -> dict[str, Any]:
        """The new values of one event after an attempt."""
        event, error = attempt.event, attempt.error
        values: dict[str, Any] = {
            "b_id": event.id,
            "b_owner": self._owner,
            "attempts": event.attempts + 1,
            "last_status": attempt.status,
            "last_error": error[:MAX_ERROR_CHARS] if error else None,
            "status": PENDING,
            "next_attempt_at": event.next_attempt_at,
            "delivered_at": None,
        }
        if error is None:
            values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
            return values
        window = timedelta(seconds=self._settings.webhook_retry_window_seconds)
        delay = timedelta(seconds=retry_delay(self._settings, event.attempts + 1))
        if attempt.final or now + delay > event.created_at + window:
            values.update(status=DeliveryStatus.FAILED.value)
            log.info("webhook event %s failed for good: %s", event.event_id, error)
        else:
            values.update(next_attempt_at=now + delay)
        return values


_TABLE: Table = WebhookEvent.__table__  # type: ignore[assignment]
_SET = {
    "attempts": bindparam("attempts"),
    "last_status": bindparam("last_status"),
    "last_error": bindparam("last_error"),
    "status": bindparam("status"),
    "next_attempt_at": bindparam("next_attempt_at", type_=UTCDateTime()),
    "delivered_at": bindparam("delivered_at", type_=UTCDateTime()),
    "claimed_by": None,
    "claimed_until": None,
}
_RECORD = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.status == PENDING)
    .values(**_SET)
)
_RECORD_MINE = _RECORD.where(_TABLE.c.claimed_by == bindparam("b_owner"))


async def _webhooks(session: AsyncSession, ids: set[int]) -> dict[int, tuple[str, str]]:
    rows = await session.execute(
        select(Webhook.id, Webhook.url, Webhook.secret).where(Webhook.id.in_(ids))
    )
    return {row.id: (row.url, row.secret) for row in rows}


async def _campaign_names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = [item for item in ids if item is not None]
    rows = await session.execute(select(Campaign.id, Campaign.name).where(Campaign.id.in_(wanted)))
    return {row.id: row.name for row in rows}


def _claimed(row: WebhookEvent, hook: tuple[str, str] | None, names: dict[int, str]) -> Claimed:
    return Claimed(
        id=row.id,
        event_id=row.event_id,
        type=row.type,
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        lead_id=row.lead_id,
        campaign_id=row.campaign_id,
        campaign=names.get(row.campaign_id) if row.campaign_id is not None else None,
        data=orjson.loads(row.data),
        url=hook[0] if hook else None,
        secret=hook[1] if hook else None,
    )
