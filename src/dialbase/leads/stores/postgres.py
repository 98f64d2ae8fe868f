"""The PostgreSQL store: a batch is one statement, one round trip and one commit.

The statement (``_BATCH_SQL``) reads the configuration revision, sets aside the leads
whose number is on their account's do-not-call list, inserts the missing number guards
in key order, keeps a lead unless it is stale, or its duplicate check is on and it is
not the first lead of a newly guarded number, inserts the kept leads in arrival order
and their zone keys, records the batch's id with its results in ``write_batches``, and
returns the revision and the (1-based) positions of the kept and the listed leads.
Leads that carry a campaign action are written in an explicit transaction with the
actions (campaigns updated in id order). A batch holding a lead of an account with a
webhook runs ``_BATCH_WITH_EVENTS_SQL`` instead: the same statement, whose kept leads
take their ids from the sequence first so that their ``lead.added`` events, inserted by
the same statement, can name them (``webhooks.outbox``).

A guard that exists already is locked, not updated (``DO UPDATE ... WHERE false`` locks
the conflicting row and returns only inserted ones): a deletion (``compat.deletion``)
that removes a campaign's last live lead of a number deletes the guard after locking it,
so a batch adding that number meanwhile either commits first (and the deletion then sees
its lead) or waits and inserts a new guard.

Several batches may be in flight on their own connections (``DIALBASE_DB_WRITER_
CONNECTIONS``): while one waits for its commit, the next is being written. Guards are
inserted in key order, so concurrent batches wait for each other but do not deadlock
(and a deadlock caused by other writers is retried).

When the connection fails after the statement was sent, the commit may have happened.
The batch is then settled by its id (``_settle``) on another connection: inserting the
id as a tombstone either succeeds (the batch did not commit, and now never will: its own
insert of that id would conflict) or finds the batch's row (it committed: its results
are read back). See ``leads.batch`` for how the writer uses each outcome.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from dialbase.config import Settings
from dialbase.db import asyncpg_dsn, utcnow
from dialbase.errors import DatabaseUnavailable, database_unavailable, outages
from dialbase.leads.batch import (
    BatchRefused,
    NewLead,
    OutcomeUnknown,
    WriteResult,
    action_result,
    decide,
    stored_actions,
)
from dialbase.webhooks.outbox import (
    PG_CAMPAIGN_EVENT,
    added_data,
    dump,
    new_event_id,
    pg_event_cte,
)

log = logging.getLogger("dialbase.writer")

_BATCH_SQL = """
WITH rev AS (SELECT value AS v FROM config_revision WHERE id = 1),
input AS (
    SELECT * FROM unnest(
        $1::integer[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[],
        $6::text[], $7::text[], $8::text[], $9::boolean[], $10::integer[], $11::text[],
        $12::text[]
    ) WITH ORDINALITY AS t(c, p, n, pr, e, a, s, x, dup, r, q, z, ord)
),
live AS (SELECT * FROM input WHERE r = (SELECT v FROM rev)),
listed AS (
    SELECT i.ord FROM live i
    JOIN campaigns c ON c.id = i.c
    JOIN dnc_entries d ON d.account_id = c.account_id AND d.number = i.q
    WHERE d.expires_at IS NULL OR d.expires_at > $13
),
open AS (SELECT * FROM live WHERE ord NOT IN (SELECT ord FROM listed)),
guard AS (
    INSERT INTO campaign_numbers (campaign_id, phone_number)
    SELECT DISTINCT c, q FROM open ORDER BY c, q
    ON CONFLICT (campaign_id, phone_number) DO UPDATE SET phone_number = EXCLUDED.phone_number
    WHERE false
    RETURNING campaign_id, phone_number
),
firsts AS (SELECT DISTINCT ON (c, q) ord FROM open ORDER BY c, q, ord),
kept AS (
    SELECT * FROM open
    WHERE NOT dup
       OR (ord IN (SELECT ord FROM firsts)
           AND (c, q) IN (SELECT campaign_id, phone_number FROM guard))
),
added AS (
    INSERT INTO leads (
        campaign_id, phone_number, phone_e164, time_zones, name, priority, expires_at,
        agent_id, skill, extra, status, attempts, due_at, created_at
    )
    SELECT c, p, q, z, n, pr, e, a, s, x::json, 'pending', 0, $13, $13 FROM kept ORDER BY ord
),
zoned AS (
    INSERT INTO campaign_zones (campaign_id, time_zones)
    SELECT DISTINCT c, z FROM kept ORDER BY c, z
    ON CONFLICT DO NOTHING
),
recorded AS (
    INSERT INTO write_batches (id, created_at, revision, kept, listed)
    SELECT $14, $13, (SELECT v FROM rev), to_json(ARRAY(SELECT ord FROM kept ORDER BY ord)),
           to_json(ARRAY(SELECT ord FROM listed ORDER BY ord))
)
SELECT (SELECT v FROM rev), ARRAY(SELECT ord FROM kept), ARRAY(SELECT ord FROM listed)
"""


def _with_events(statement: str) -> str:
    """The batch statement that also writes each kept lead's ``lead.added`` event (for
    the leads flagged in $15, event ids $16, data $17): the kept leads' ids are drawn
    from the sequence in ``kept`` so that their events can name them."""
    replaced = [
        (
            "$12::text[]\n    ) WITH ORDINALITY AS t(c, p, n, pr, e, a, s, x, dup, r, q, z, ord)",
            "$12::text[], $15::boolean[], $16::text[], $17::text[]\n"
            "    ) WITH ORDINALITY AS t(c, p, n, pr, e, a, s, x, dup, r, q, z, wh, ev, dt, ord)",
        ),
        (
            "kept AS (\n    SELECT * FROM open\n",
            "kept AS (\n    SELECT open.*, nextval(pg_get_serial_sequence('leads', 'id'))"
            " AS lead_id FROM open\n",
        ),
        (
            "    INSERT INTO leads (\n        campaign_id,",
            "    INSERT INTO leads (\n        id, campaign_id,",
        ),
        (
            "    SELECT c, p, q, z, n, pr, e, a, s, x::json,",
            "    SELECT lead_id, c, p, q, z, n, pr, e, a, s, x::json,",
        ),
        (
            "recorded AS (",
            pg_event_cte(
                "events",
                "kept k",
                event_id="k.ev",
                campaign="k.c",
                lead="k.lead_id",
                type_="'lead.added'::text",
                data="k.dt",
                where="k.wh",
            )
            + ",\nrecorded AS (",
        ),
    ]
    for old, new in replaced:
        assert statement.count(old) == 1, old
        statement = statement.replace(old, new)
    return statement


_BATCH_WITH_EVENTS_SQL = _with_events(_BATCH_SQL)

_ACTION_SQL = "UPDATE campaigns SET running = $1 WHERE id = $2 AND running IS DISTINCT FROM $1"
_TOMBSTONE_SQL = """
INSERT INTO write_batches (id, created_at) VALUES ($1, $2)
ON CONFLICT (id) DO NOTHING RETURNING id
"""
_RECORDED_SQL = "SELECT revision, kept, listed FROM write_batches WHERE id = $1"
_PRUNE_SQL = "DELETE FROM write_batches WHERE created_at < $1"
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
SETTLE_SECONDS = 5.0  # how long a batch of unknown outcome is looked up before giving up
KEEP_BATCHES = timedelta(hours=1)
PRUNE_EVERY = 1000  # batches


class PostgresBatchStore:
    def __init__(self, settings: Settings) -> None:
        self.concurrency = settings.db_writer_connections
        self._dsn = asyncpg_dsn(settings.database_url)
        self._timeout = settings.db_connect_timeout
        timeout_ms = settings.db_statement_timeout_ms
        self._command_timeout = timeout_ms / 1000 if timeout_ms else None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._batches = 0

    async def _connection(self) -> asyncpg.Connection:
        """A pooled connection; nothing has been sent when this fails."""
        try:
            async with self._pool_lock:  # batches in flight must not each create a pool
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=self.concurrency,
                        timeout=self._timeout,
                        command_timeout=self._command_timeout,
                    )
            return await self._pool.acquire(timeout=self._timeout)
        except Exception as exc:
            if database_unavailable(exc):
                outages.failed(exc)
                raise DatabaseUnavailable() from exc
            raise

    async def _release(self, conn: asyncpg.Connection) -> None:
        """Give a connection back; a failure here changes nothing that was committed."""
        assert self._pool is not None
        try:
            await self._pool.release(conn)
        except Exception as exc:  # the server ended the session: the pool drops it
            log.debug("connection not released cleanly: %s", exc)

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        batch_id = str(uuid.uuid4())
        for attempt in range(5):
            conn = await self._connection()
            try:
                results = await self._write(conn, batch, batch_id)
            except _RETRYABLE:
                log.info("write batch retried after a deadlock (attempt %d)", attempt + 1)
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            except Exception as exc:
                if not database_unavailable(exc):
                    if isinstance(exc, asyncpg.PostgresError):
                        raise BatchRefused(str(exc)) from exc
                    raise
                outages.failed(exc)
                unknown = exc  # the commit may have been sent: settle it below
            else:
                outages.succeeded()
                await self._prune_if_due()
                return results
            finally:
                await self._release(conn)
            return await self._settle(batch, batch_id, unknown)
        raise DatabaseUnavailable()

    async def _write(
        self, conn: asyncpg.Connection, batch: Sequence[NewLead], batch_id: str
    ) -> list[WriteResult]:
        if not any(lead.action for lead in batch):
            return await self._write_leads(conn, batch, batch_id)  # its own commit
        async with conn.transaction():  # the leads and the actions they carry, together
            results = await self._write_leads(conn, batch, batch_id)
            for lead, result in stored_actions(batch, results):
                status = await conn.execute(_ACTION_SQL, lead.action == "start", lead.campaign_id)
                result.action = action_result(lead, status != "UPDATE 0")
                if status != "UPDATE 0" and lead.webhooks:
                    kind = "campaign.started" if lead.action == "start" else "campaign.stopped"
                    await conn.execute(PG_CAMPAIGN_EVENT, lead.campaign_id, new_event_id(), kind)
            return results

    async def _write_leads(
        self, conn: asyncpg.Connection, batch: Sequence[NewLead], batch_id: str
    ) -> list[WriteResult]:
        arguments = [*_lead_arrays(batch), utcnow(), batch_id]
        statement = _BATCH_SQL
        if any(lead.webhooks for lead in batch):
            statement = _BATCH_WITH_EVENTS_SQL
            arguments += _event_arrays(batch)
        revision, kept, listed = await conn.fetchrow(statement, *arguments)
        return _results(batch, revision, kept, listed)

    async def _settle(
        self, batch: Sequence[NewLead], batch_id: str, cause: BaseException
    ) -> list[WriteResult]:
        """The results of a batch whose commit may or may not have happened."""
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        while True:
            try:
                conn = await self._connection()
                try:
                    async with conn.transaction():
                        if await conn.fetchval(_TOMBSTONE_SQL, batch_id, utcnow()) is not None:
                            break  # it did not commit, and now it never will
                        revision, kept, listed = await conn.fetchrow(_RECORDED_SQL, batch_id)
                finally:
                    await self._release(conn)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                if asyncio.get_running_loop().time() > deadline:
                    log.error("a write batch's outcome is unknown (%d leads)", len(batch))
                    raise OutcomeUnknown() from cause
                await asyncio.sleep(0.2)
                continue
            log.warning("a write batch committed though its connection failed")
            results = _results(batch, revision, orjson.loads(kept), orjson.loads(listed or "[]"))
            for lead, result in stored_actions(batch, results):
                result.action = action_result(lead, True)  # the change itself is not known
            return results
        raise DatabaseUnavailable() from cause

    async def _prune_if_due(self) -> None:
        self._batches += 1
        if self._batches % PRUNE_EVERY:
            return
        conn = await self._connection()
        try:
            await conn.execute(_PRUNE_SQL, utcnow() - KEEP_BATCHES)
        except Exception as exc:  # pruning can wait for the next time
            log.warning("could not prune write_batches: %s", exc)
        finally:
            await self._release(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def _results(
    batch: Sequence[NewLead], revision: int, kept: Sequence[int], listed: Sequence[int]
) -> list[WriteResult]:
    """Each lead's fate, as the batch statement decided it."""
    stored, refused = set(kept), set(listed)
    return [
        decide(lead, revision, listed=position in refused, new_number=position in stored)
        for position, lead in enumerate(batch, start=1)
    ]


def _lead_arrays(leads: Sequence[NewLead]) -> list[list[Any]]:
    return [
        [lead.campaign_id for lead in leads],
        [lead.phone_number for lead in leads],
        [lead.name for lead in leads],
        [lead.priority for lead in leads],
        [lead.expires_at for lead in leads],
        [lead.agent_id for lead in leads],
        [lead.skill for lead in leads],
        [orjson.dumps(lead.extra).decode() for lead in leads],
        [lead.check_duplicate for lead in leads],
        [lead.revision for lead in leads],
        [lead.phone_e164 for lead in leads],
        [lead.time_zones for lead in leads],
    ]


def _event_arrays(leads: Sequence[NewLead]) -> list[list[Any]]:
    """$15 to $17 of ``_BATCH_WITH_EVENTS_SQL``: which leads report, event ids, data."""
    return [
        [lead.webhooks for lead in leads],
        [new_event_id() if lead.webhooks else None for lead in leads],
        [dump(added_data(lead)) if lead.webhooks else None for lead in leads],
    ]
