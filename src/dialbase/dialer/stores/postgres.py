"""The PostgreSQL queue: a lease is two statements, an outcome one, each its own commit.

A lease first settles the campaign (``_SETTLE``: wake and expire in one ``UPDATE``, which
also returns the campaign's zone keys), then ``_LEASE`` checks the revision and the
running flag, reads candidates in queue order with ``FOR UPDATE SKIP LOCKED`` (due
callbacks, then one index range per zone key inside calling hours, merged; concurrent
leases never pick the same lead and never wait for each other), checks them against the
do-not-call list and the attempt cap, closes or holds those they stop, marks the others
leased and inserts their lease rows, all in one statement. Only when it closed or held
some does the lease read again for the rest. An outcome (``_REPORT``) locks the lead
while it is still leased for that attempt, claims the open lease, moves the lead and
(``do_not_call``) lists the number, in one statement; for an account with a webhook,
``_REPORT_WITH_EVENT`` also writes the ``lead.outcome`` event in it (``webhooks.outbox``).
The rules are in ``dialer.leasing``.

A connection lost while a statement ran answers 503: a lease that may have been made
then lapses at its deadline and its lead returns to the queue; an outcome sent again is
answered 409 "already reported" if the first one was recorded. An outcome for a lease
whose lead was deleted is answered 409 and changes nothing (the lead is no longer
``leased``, so the statement moves nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import lru_cache

import asyncpg
import orjson

from dialbase.campaigns.models import Routing
from dialbase.config import Settings
from dialbase.db import asyncpg_dsn
from dialbase.dialer.leasing import (
    CALLBACK,
    MAX_ROUNDS,
    RETRY,
    LeaseAsk,
    LeasedLead,
    OutcomeAsk,
    Refused,
    Report,
    Stale,
    Stopped,
    refusal,
    suppression_note,
)
from dialbase.dialer.stores import lead_deleted
from dialbase.errors import DatabaseUnavailable, database_unavailable, outages
from dialbase.webhooks.outbox import dump, new_event_id, outcome_data, pg_event_cte

_SETTLE = """
WITH woken AS (
    SELECT id FROM leads
    WHERE campaign_id = $1 AND status IN ('leased', 'retry', 'held') AND due_at <= now()
    FOR UPDATE SKIP LOCKED
), expiring AS (
    SELECT id FROM leads
    WHERE campaign_id = $1 AND status IN ('pending', 'retry', 'held', 'callback')
      AND expires_at <= now()
    FOR UPDATE SKIP LOCKED
), settled AS (
    UPDATE leads l SET
        status = CASE
            WHEN {used_up} THEN 'done'
            WHEN l.expires_at <= now() THEN 'expired'
            WHEN l.callback_at IS NOT NULL THEN 'callback'
            ELSE 'pending' END,
        closed_reason = CASE WHEN {used_up} THEN 'attempts_used_up' END
    FROM campaigns c
    WHERE c.id = $1 AND l.id IN (SELECT id FROM woken UNION SELECT id FROM expiring)
)
SELECT time_zones FROM campaign_zones WHERE campaign_id = $1
""".format(
    # A lapsed lease or a retry whose attempts are used up (a lapsed callback is not).
    used_up="(l.status IN ('leased', 'retry') AND l.due_at <= now()"
    " AND l.callback_at IS NULL AND l.attempts >= c.max_attempts)"
)
# $1 campaign, $2 lease seconds, $3 agent, $4 skill, $5 revision, $6 count, $7 open zone
# keys, $8 account, $9 daily cap.
_LEASE = """
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
campaign AS (SELECT running FROM campaigns WHERE id = $1),
go AS (SELECT (SELECT v FROM rev) = $5 AND (SELECT running FROM campaign) AND $6 > 0 AS ok),
callbacks AS (
    SELECT l.id, 0 AS kind, l.priority, l.due_at, l.phone_e164 FROM leads l
    WHERE l.campaign_id = $1 AND l.status = 'callback' AND l.due_at <= now()
      AND (l.callback_agent = $3 OR (l.callback_agent IS NULL {routing}))
      AND (SELECT ok FROM go)
    ORDER BY l.due_at, l.id LIMIT {count}
    FOR UPDATE OF l SKIP LOCKED
),
ordinary AS (
    SELECT o.* FROM unnest($7::text[]) AS k(zones) CROSS JOIN LATERAL (
        SELECT l.id, 1 AS kind, l.priority, l.due_at, l.phone_e164 FROM leads l
        WHERE l.campaign_id = $1 AND l.status = 'pending' {routing} AND l.time_zones = k.zones
          AND (l.expires_at IS NULL OR l.expires_at > now()) AND (SELECT ok FROM go)
        ORDER BY l.priority DESC, l.due_at, l.id LIMIT {count}
        FOR UPDATE OF l SKIP LOCKED
    ) o
),
candidates AS (
    SELECT *, row_number() OVER (
        ORDER BY kind, CASE WHEN kind = 1 THEN -priority ELSE 0 END, due_at, id) AS rank
    FROM (SELECT * FROM callbacks UNION ALL SELECT * FROM ordinary) u
    ORDER BY rank LIMIT {count}
),
counted AS (
    SELECT c.*,
        EXISTS (SELECT 1 FROM dnc_entries d
                WHERE d.account_id = $8 AND d.number = c.phone_e164
                  AND (d.expires_at IS NULL OR d.expires_at > now())) AS listed,
        CASE WHEN $9 > 0 THEN (
            SELECT count(*) FROM leases s WHERE s.account_id = $8 AND s.phone_e164 = c.phone_e164
              AND s.leased_at > now() - interval '24 hours') ELSE 0 END
        + row_number() OVER (PARTITION BY c.phone_e164 ORDER BY c.rank) AS nth,
        CASE WHEN $9 > 0 THEN (
            SELECT min(s.leased_at) FROM leases s
            WHERE s.account_id = $8 AND s.phone_e164 = c.phone_e164
              AND s.leased_at > now() - interval '24 hours') END AS oldest
    FROM candidates c
),
checked AS (SELECT *, NOT listed AND $9 > 0 AND nth > $9 AS capped FROM counted),
closed AS (
    UPDATE leads l SET status = 'done', closed_reason = 'do_not_call'
    FROM checked c WHERE l.id = c.id AND c.listed
    RETURNING l.id
),
held AS (
    UPDATE leads l SET status = CASE WHEN c.kind = 0 THEN 'callback' ELSE 'held' END,
                       due_at = COALESCE(c.oldest, now()) + interval '24 hours'
    FROM checked c WHERE l.id = c.id AND c.capped
    RETURNING l.id
),
leased AS (
    UPDATE leads l SET status = 'leased', attempts = l.attempts + 1,
                       due_at = now() + make_interval(secs => $2)
    FROM checked c WHERE l.id = c.id AND NOT c.listed AND NOT c.capped
    RETURNING l.id, l.phone_number, l.phone_e164, l.name, l.priority, l.agent_id, l.skill,
              l.extra, l.attempts, l.due_at AS deadline, c.kind = 0 AS callback, c.rank
),
made AS (
    INSERT INTO leases (id, campaign_id, lead_id, attempt, account_id, phone_e164, agent_id,
                        skill, leased_at, deadline)
    SELECT replace(gen_random_uuid()::text, '-', ''), $1, id, attempts, $8, phone_e164, $3,
           $4, now(), deadline
    FROM leased
    RETURNING id, lead_id
)
SELECT (SELECT v FROM rev) AS revision, (SELECT running FROM campaign) AS running,
       (SELECT count(*) FROM closed) + (SELECT count(*) FROM held) AS set_aside,
       made.id AS lease_id, leased.*
FROM (SELECT 1) AS one
LEFT JOIN (leased JOIN made ON made.lead_id = leased.id) ON true
ORDER BY leased.rank
"""
_ROUTED = {
    Routing.GENERAL: "",
    Routing.AGENTWISE: "AND l.agent_id = $3",
    Routing.SKILLWISE: "AND l.skill = $4",
}


@lru_cache(maxsize=512)
def _lease_statement(routing: Routing, count: int) -> str:
    """The lease statement for a routing and a count. The count is written into the text
    (1..100, checked by the service): the pool's connections use generic plans
    (``plan_cache_mode``), planned once per statement, and a generic plan that knows its
    LIMIT reads a few rows through the indexes."""
    return _LEASE.format(routing=_ROUTED[routing], count=int(count))


# $1 lease, $2 account, $3 revision, $4 outcome, $5 retryable, $6 note, $7 callback at,
# $8 callback agent, $9 suppression note.
_REPORT = """
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
found AS (
    SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.account_id,
           (SELECT l.status = 'deleted' FROM leads l WHERE l.id = s.lead_id) AS deleted,
           $7::timestamptz IS NULL AND $5 AND s.attempt < c.max_attempts AS retry,
           COALESCE((c.retry_delays ->> $4)::integer, c.retry_delay_seconds) AS delay
    FROM leases s JOIN campaigns c ON c.id = s.campaign_id
    WHERE s.id = $1 AND c.account_id = $2
),
lead AS (
    SELECT l.id, l.phone_e164 FROM leads l JOIN found f ON l.id = f.lead_id
    WHERE l.status = 'leased' AND l.attempts = f.attempt
      AND f.outcome IS NULL AND f.deadline > now() AND (SELECT v FROM rev) = $3
    FOR UPDATE OF l
),
moved AS (
    UPDATE leads l
    SET status = CASE WHEN $7::timestamptz IS NOT NULL THEN 'callback'
                      WHEN f.retry THEN 'retry' ELSE 'done' END,
        due_at = CASE WHEN $7::timestamptz IS NOT NULL THEN $7::timestamptz
                      WHEN f.retry THEN now() + make_interval(secs => f.delay)
                      ELSE now() END,
        callback_at = $7::timestamptz,
        callback_agent = $8,
        closed_reason = CASE WHEN $7::timestamptz IS NOT NULL OR f.retry THEN NULL
                             WHEN $5 THEN 'attempts_used_up' ELSE $4 END
    FROM lead, found f WHERE l.id = lead.id
    RETURNING l.status, l.due_at
),
claimed AS (
    UPDATE leases SET outcome = $4, note = $6, reported_at = now()
    WHERE id = $1 AND outcome IS NULL AND EXISTS (SELECT 1 FROM lead)
    RETURNING attempt
),
suppressed AS (
    INSERT INTO dnc_entries (account_id, number, note, created_at)
    SELECT f.account_id, lead.phone_e164, $9, now() FROM found f, lead WHERE $4 = 'do_not_call'
    ON CONFLICT (account_id, number) DO UPDATE SET expires_at = NULL
)
SELECT (SELECT v FROM rev) AS revision, now() AS now, found.outcome, found.deadline,
       found.attempt, found.deleted,
       found.lead_id IS NOT NULL AS found, moved.status, moved.due_at,
       (SELECT count(*) FROM claimed) AS claimed
FROM (SELECT 1) AS one LEFT JOIN found ON true LEFT JOIN moved ON true
"""


def _with_event(statement: str) -> str:
    """The outcome statement that also writes the ``lead.outcome`` event ($10 event id,
    $11 the event's data known before the statement runs)."""
    replaced = [
        (
            "    SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.account_id,\n",
            "    SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.account_id,"
            " s.campaign_id,\n",
        ),
        (
            "suppressed AS (",
            pg_event_cte(
                "events",
                "lead, found f, moved m",
                event_id="$10::text",
                campaign="f.campaign_id",
                lead="lead.id",
                type_="'lead.outcome'::text",
                data="($11::jsonb || jsonb_build_object('leadStatus', m.status,"
                " 'attempt', f.attempt, 'nextAttemptAt',"
                " CASE WHEN m.status IN ('retry', 'callback') THEN m.due_at END))::text",
            )
            + ",\nsuppressed AS (",
        ),
    ]
    for old, new in replaced:
        assert statement.count(old) == 1, old
        statement = statement.replace(old, new)
    return statement


_REPORT_WITH_EVENT = _with_event(_REPORT)

_DELETED = """
SELECT l.status = 'deleted' FROM leases s
JOIN campaigns c ON c.id = s.campaign_id JOIN leads l ON l.id = s.lead_id
WHERE s.id = $1 AND c.account_id = $2
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
            await conn.fetch(_SETTLE, campaign_id)

    async def lease(self, ask: LeaseAsk) -> list[LeasedLead] | Stale | Stopped:
        leased: list[LeasedLead] = []
        async with self._connection() as conn:
            keys = [row["time_zones"] for row in await conn.fetch(_SETTLE, ask.campaign_id)]
            open_keys = ask.open_zones(keys)
            # Each round hands out, closes (listed) or holds (capped) every candidate it
            # reads, so the next one reads further down the queue.
            for _ in range(MAX_ROUNDS):
                rows = await conn.fetch(
                    _lease_statement(Routing(ask.routing), ask.count - len(leased)),
                    ask.campaign_id,
                    float(ask.lease_seconds),
                    ask.agent_id,
                    ask.skill,
                    ask.revision,
                    ask.count - len(leased),
                    open_keys,
                    ask.account_id,
                    ask.daily_cap,
                )
                first = rows[0]
                if first["revision"] != ask.revision:
                    return Stale(first["revision"])
                if not first["running"]:
                    return Stopped()
                leased += [_leased(row) for row in rows if row["lease_id"] is not None]
                if not first["set_aside"] or len(leased) == ask.count:
                    break
        return leased

    async def report(self, ask: OutcomeAsk) -> Report | Stale | Refused:
        arguments = [
            ask.lease_id,
            ask.account_id,
            ask.revision,
            ask.outcome,
            ask.retryable,
            ask.note,
            ask.callback_at,
            ask.callback_agent,
            suppression_note(ask),
        ]
        statement = _REPORT
        if ask.webhooks:  # only then: the statement of an account without any is unchanged
            statement = _REPORT_WITH_EVENT
            arguments += [new_event_id(), dump(outcome_data(ask))]
        async with self._connection() as conn:
            row = await conn.fetchrow(statement, *arguments)
        if row["revision"] != ask.revision:
            return Stale(row["revision"])
        if not row["claimed"]:
            deleted = row["found"] and row["outcome"] is None
            if deleted and (row["deleted"] or await self._deleted(ask)):
                return lead_deleted(ask.lease_id)
            return refusal(ask, row["now"], row["outcome"], row["deadline"], found=row["found"])
        due = row["due_at"] if row["status"] in (RETRY, CALLBACK) else None
        return Report(ask.lease_id, ask.outcome, row["status"], row["attempt"], due)

    async def _deleted(self, ask: OutcomeAsk) -> bool:
        """Whether the lease's lead is deleted now (read afresh: a deletion may have
        committed while the outcome's statement waited for the lead's lock)."""
        async with self._connection() as conn:
            return bool(await conn.fetchval(_DELETED, ask.lease_id, ask.account_id))

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
                    # Plan each statement once per connection: the lease statement is
                    # large, and planning it afresh cost more than running it.
                    server_settings={"plan_cache_mode": "force_generic_plan"},
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


def _leased(row: asyncpg.Record) -> LeasedLead:
    return LeasedLead(
        lease_id=row["lease_id"],
        deadline=row["deadline"],
        phone_number=row["phone_number"],
        name=row["name"],
        priority=row["priority"],
        agent_id=row["agent_id"],
        skill=row["skill"],
        extra=orjson.loads(row["extra"]) if row["extra"] else {},
        attempt=row["attempts"],
        callback=row["callback"],
    )


def _unavailable(exc: Exception) -> Exception:
    if database_unavailable(exc):
        outages.failed(exc)
        return DatabaseUnavailable()
    return exc
