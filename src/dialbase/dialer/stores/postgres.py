"""The PostgreSQL queue: a lease is two statements, an outcome one, each its own commit.

A lease first settles the campaign (``_SETTLE``: wake and expire in one ``UPDATE``), then
``_LEASE`` checks the revision and the running flag, picks the leads in queue order with
``FOR UPDATE SKIP LOCKED`` (concurrent leases never pick the same lead and never wait for
each other), marks them leased and inserts their lease rows, all in one statement. An
outcome (``_REPORT``) locks the lead while it is still leased for that attempt, claims
the open lease and moves the lead, in one statement. The rules are in ``dialer.leasing``.

A connection lost while a statement ran answers 503: a lease that may have been made
then lapses at its deadline and its lead returns to the queue; an outcome sent again is
answered 409 "already reported" if the first one was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import orjson

from dialbase.campaigns.models import Routing
from dialbase.config import Settings
from dialbase.db import asyncpg_dsn
from dialbase.dialer.leasing import (
    LeaseAsk,
    LeasedLead,
    OutcomeAsk,
    Refused,
    Report,
    Stale,
    Stopped,
    refusal,
)
from dialbase.errors import DatabaseUnavailable, database_unavailable, outages

_SETTLE = """
WITH woken AS (
    SELECT id FROM leads
    WHERE campaign_id = $1 AND status IN ('leased', 'retry') AND due_at <= now()
    FOR UPDATE SKIP LOCKED
), expiring AS (
    SELECT id FROM leads
    WHERE campaign_id = $1 AND status IN ('pending', 'retry') AND expires_at <= now()
    FOR UPDATE SKIP LOCKED
)
UPDATE leads l SET status = CASE
    WHEN l.status IN ('leased', 'retry') AND l.due_at <= now() AND l.attempts >= c.max_attempts
        THEN 'done'
    WHEN l.expires_at <= now() THEN 'expired'
    ELSE 'pending' END
FROM campaigns c
WHERE c.id = $1 AND l.id IN (SELECT id FROM woken UNION SELECT id FROM expiring)
"""
_LEASE = """
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
campaign AS (SELECT running FROM campaigns WHERE id = $1),
picked AS (
    SELECT l.id, l.due_at AS was_due FROM leads l
    WHERE l.campaign_id = $1 AND l.status = 'pending'
      AND (l.expires_at IS NULL OR l.expires_at > now()) {routing}
      AND (SELECT v FROM rev) = $5 AND (SELECT running FROM campaign)
    ORDER BY l.priority DESC, l.due_at, l.id LIMIT $6
    FOR UPDATE OF l SKIP LOCKED
),
leased AS (
    UPDATE leads l SET status = 'leased', attempts = l.attempts + 1,
                       due_at = now() + make_interval(secs => $2)
    FROM picked WHERE l.id = picked.id
    RETURNING l.id, l.phone_number, l.name, l.priority, l.agent_id, l.skill, l.extra,
              l.attempts, l.due_at AS deadline, picked.was_due
),
made AS (
    INSERT INTO leases (id, campaign_id, lead_id, attempt, agent_id, skill, leased_at, deadline)
    SELECT replace(gen_random_uuid()::text, '-', ''), $1, id, attempts, $3, $4, now(), deadline
    FROM leased
    RETURNING id, lead_id
)
SELECT (SELECT v FROM rev) AS revision, (SELECT running FROM campaign) AS running,
       made.id AS lease_id, leased.*
FROM (SELECT 1) AS one
LEFT JOIN (leased JOIN made ON made.lead_id = leased.id) ON true
ORDER BY leased.priority DESC, leased.was_due, leased.id
"""
_ROUTED = {
    Routing.GENERAL: "",
    Routing.AGENTWISE: "AND l.agent_id = $3",
    Routing.SKILLWISE: "AND l.skill = $4",
}
_LEASES = {routing: _LEASE.format(routing=clause) for routing, clause in _ROUTED.items()}
_REPORT = """
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
found AS (
    SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.max_attempts, c.retry_delay_seconds,
           $5 AND s.attempt < c.max_attempts AS retry
    FROM leases s JOIN campaigns c ON c.id = s.campaign_id
    WHERE s.id = $1 AND c.account_id = $2
),
lead AS (
    SELECT l.id FROM leads l JOIN found f ON l.id = f.lead_id
    WHERE l.status = 'leased' AND l.attempts = f.attempt
      AND f.outcome IS NULL AND f.deadline > now() AND (SELECT v FROM rev) = $3
    FOR UPDATE OF l
),
moved AS (
    UPDATE leads l
    SET status = CASE WHEN f.retry THEN 'retry' ELSE 'done' END,
        due_at = CASE WHEN f.retry THEN now() + make_interval(secs => f.retry_delay_seconds)
                      ELSE now() END
    FROM lead, found f WHERE l.id = lead.id
    RETURNING l.status, l.due_at
),
claimed AS (
    UPDATE leases SET outcome = $4, note = $6, reported_at = now()
    WHERE id = $1 AND outcome IS NULL AND EXISTS (SELECT 1 FROM lead)
    RETURNING attempt
)
SELECT (SELECT v FROM rev) AS revision, now() AS now, found.outcome, found.deadline,
       found.attempt,
       found.lead_id IS NOT NULL AS found, moved.status, moved.due_at,
       (SELECT count(*) FROM claimed) AS claimed
FROM (SELECT 1) AS one LEFT JOIN found ON true LEFT JOIN moved ON true
"""


class PostgresQueueStore:
    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings.database_url)
        self._size = settings.db_pool_size
        self._timeout = settings.db_connect_timeout
        timeout_ms = settings.db_statement_timeout_ms
        self._command_timeout = timeout_ms / 1000 if timeout_ms else None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def settle(self, campaign_id: int) -> None:
        async with self._connection() as conn:
            await conn.execute(_SETTLE, campaign_id)

    async def lease(self, ask: LeaseAsk) -> list[LeasedLead] | Stale | Stopped:
        async with self._connection() as conn:
            await conn.execute(_SETTLE, ask.campaign_id)
            rows = await conn.fetch(
                _LEASES[Routing(ask.routing)],
                ask.campaign_id,
                float(ask.lease_seconds),
                ask.agent_id,
                ask.skill,
                ask.revision,
                ask.count,
            )
        first = rows[0]
        if first["revision"] != ask.revision:
            return Stale(first["revision"])
        if not first["running"]:
            return Stopped()
        return [
            LeasedLead(
                lease_id=row["lease_id"],
                deadline=row["deadline"],
                phone_number=row["phone_number"],
                name=row["name"],
                priority=row["priority"],
                agent_id=row["agent_id"],
                skill=row["skill"],
                extra=orjson.loads(row["extra"]) if row["extra"] else {},
                attempt=row["attempts"],
            )
            for row in rows
            if row["lease_id"] is not None
        ]

    async def report(self, ask: OutcomeAsk) -> Report | Stale | Refused:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                _REPORT,
                ask.lease_id,
                ask.account_id,
                ask.revision,
                ask.outcome,
                ask.retryable,
                ask.note,
            )
        if row["revision"] != ask.revision:
            return Stale(row["revision"])
        if not row["claimed"]:
            return refusal(ask, row["now"], row["outcome"], row["deadline"], found=row["found"])
        retry_at = row["due_at"] if row["status"] == "retry" else None
        return Report(ask.lease_id, ask.outcome, row["status"], row["attempt"], retry_at)

    def _connection(self) -> _Connection:
        return _Connection(self)

    async def _pool_of(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=min(4, self._size),
                    max_size=self._size,
                    timeout=self._timeout,
                    command_timeout=self._command_timeout,
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class _Connection:
    """A pooled connection for one request; a database outage becomes a 503."""

    def __init__(self, store: PostgresQueueStore) -> None:
        self._store = store
        self._conn: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            self._pool = await self._store._pool_of()
            self._conn = await self._pool.acquire(timeout=self._store._timeout)
        except Exception as exc:
            raise _unavailable(exc) from exc
        return self._conn

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        assert self._pool is not None and self._conn is not None
        with contextlib.suppress(Exception):  # the server ended the session: the pool drops it
            await self._pool.release(self._conn)
        if isinstance(exc, Exception):
            raise _unavailable(exc) from exc
        outages.succeeded()


def _unavailable(exc: Exception) -> Exception:
    if database_unavailable(exc):
        outages.failed(exc)
        return DatabaseUnavailable()
    return exc
