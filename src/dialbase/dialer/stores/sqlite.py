"""The SQLite queue: each lease and each outcome is one transaction of plain statements.

The process's ``SQLiteWriter`` runs it (inline on the event loop while the file is free,
so leases, outcomes and lead batches of one process never wait for each other). The
rules are in ``dialer.leasing``; every statement here reads through a queue index.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from dialbase.campaigns.models import Routing
from dialbase.db import sqlite_instant, utcnow
from dialbase.dialer.leasing import (
    DONE,
    RETRY,
    LeaseAsk,
    LeasedLead,
    OutcomeAsk,
    Refused,
    Report,
    Stale,
    Stopped,
    refusal,
)
from dialbase.sqlite_writer import SQLiteWriter

_REVISION = "SELECT value FROM config_revision WHERE id = 1"
_RUNNING = "SELECT running FROM campaigns WHERE id = ?"
# Settle: wake (lapsed leases and retries whose time came), then expire.
_WAKE = """
UPDATE leads SET status = CASE
    WHEN attempts >= (SELECT max_attempts FROM campaigns WHERE id = :campaign) THEN 'done'
    ELSE 'pending' END
WHERE id IN (SELECT id FROM leads
             WHERE campaign_id = :campaign AND status IN ('leased', 'retry') AND due_at <= :now)
"""
_EXPIRE = """
UPDATE leads SET status = 'expired'
WHERE id IN (SELECT id FROM leads
             WHERE campaign_id = :campaign AND status IN ('pending', 'retry')
               AND expires_at <= :now)
"""
_PICK = """
SELECT id, phone_number, name, priority, agent_id, skill, extra, attempts FROM leads
WHERE campaign_id = :campaign AND status = 'pending'
  AND (expires_at IS NULL OR expires_at > :now) {routing}
ORDER BY priority DESC, due_at, id LIMIT :count
"""
_ROUTED = {
    Routing.GENERAL: "",
    Routing.AGENTWISE: "AND agent_id = :agent",
    Routing.SKILLWISE: "AND skill = :skill",
}
_PICKS = {routing: _PICK.format(routing=clause) for routing, clause in _ROUTED.items()}
_MARK = "UPDATE leads SET status = 'leased', attempts = attempts + 1, due_at = ? WHERE id = ?"
_LEASE = (
    "INSERT INTO leases (id, campaign_id, lead_id, attempt, agent_id, skill, leased_at,"
    " deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FIND = """
SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.max_attempts, c.retry_delay_seconds
FROM leases s JOIN campaigns c ON c.id = s.campaign_id
WHERE s.id = ? AND c.account_id = ?
"""
_CLAIM = "UPDATE leases SET outcome = ?, note = ?, reported_at = ? WHERE id = ? AND outcome IS NULL"
_MOVE = (
    "UPDATE leads SET status = ?, due_at = ? WHERE id = ? AND status = 'leased' AND attempts = ?"
)


class SQLiteQueueStore:
    def __init__(self, writer: SQLiteWriter) -> None:
        self._writer = writer

    async def settle(self, campaign_id: int) -> None:
        await self._writer.transaction(lambda conn: _settle(conn, campaign_id, utcnow()))

    async def lease(self, ask: LeaseAsk) -> list[LeasedLead] | Stale | Stopped:
        return await self._writer.transaction(lambda conn: _lease(conn, ask))

    async def report(self, ask: OutcomeAsk) -> Report | Stale | Refused:
        return await self._writer.transaction(lambda conn: _report(conn, ask))

    async def close(self) -> None:
        """The writer is the process's; whoever made it closes it."""


def _lease(conn: sqlite3.Connection, ask: LeaseAsk) -> list[LeasedLead] | Stale | Stopped:
    revision = conn.execute(_REVISION).fetchone()[0]
    if revision != ask.revision:
        return Stale(revision)
    if not conn.execute(_RUNNING, (ask.campaign_id,)).fetchone()[0]:
        return Stopped()
    moment = utcnow()
    now = _settle(conn, ask.campaign_id, moment)
    rows = conn.execute(
        _PICKS[Routing(ask.routing)],
        {
            "campaign": ask.campaign_id,
            "now": now,
            "agent": ask.agent_id,
            "skill": ask.skill,
            "count": ask.count,
        },
    ).fetchall()
    until = moment + timedelta(seconds=ask.lease_seconds)
    deadline = sqlite_instant(until)
    leased = [
        LeasedLead(
            lease_id=uuid.uuid4().hex,
            deadline=until,
            phone_number=phone,
            name=name,
            priority=priority,
            agent_id=agent,
            skill=skill,
            extra=orjson.loads(extra) if extra else {},
            attempt=attempts + 1,
        )
        for _, phone, name, priority, agent, skill, extra, attempts in rows
    ]
    conn.executemany(_MARK, [(deadline, row[0]) for row in rows])
    conn.executemany(
        _LEASE,
        [
            (item.lease_id, ask.campaign_id, row[0], item.attempt, ask.agent_id, ask.skill)
            + (now, deadline)
            for row, item in zip(rows, leased, strict=True)
        ],
    )
    return leased


def _settle(conn: sqlite3.Connection, campaign_id: int, moment: datetime) -> str:
    """Wake, then expire; the moment as SQLite text."""
    now = sqlite_instant(moment)
    conn.execute(_WAKE, {"campaign": campaign_id, "now": now})
    conn.execute(_EXPIRE, {"campaign": campaign_id, "now": now})
    return now


def _report(conn: sqlite3.Connection, ask: OutcomeAsk) -> Report | Stale | Refused:
    revision = conn.execute(_REVISION).fetchone()[0]
    if revision != ask.revision:
        return Stale(revision)
    now = utcnow()
    found = conn.execute(_FIND, (ask.lease_id, ask.account_id)).fetchone()
    if found is None:
        return refusal(ask, now, None, None, found=False)
    lead_id, attempt, outcome, deadline_text, max_attempts, retry_delay = found
    deadline = _instant(deadline_text)
    if outcome is not None or deadline <= now:
        return refusal(ask, now, outcome, deadline, found=True)
    retry = ask.retryable and attempt < max_attempts
    due = now + timedelta(seconds=retry_delay) if retry else now
    status = RETRY if retry else DONE
    moved = conn.execute(_MOVE, (status, sqlite_instant(due), lead_id, attempt)).rowcount
    if not moved:  # settled back into the queue meanwhile: record nothing
        return refusal(ask, now, None, None, found=True)
    conn.execute(_CLAIM, (ask.outcome, ask.note, sqlite_instant(now), ask.lease_id))
    return Report(ask.lease_id, ask.outcome, status, attempt, due if retry else None)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
