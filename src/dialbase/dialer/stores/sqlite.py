"""The SQLite queue: each lease and each outcome is one transaction of plain statements.

The process's ``SQLiteWriter`` runs it (inline on the event loop while the file is free,
so leases, outcomes and lead batches of one process never wait for each other). The
rules are in ``dialer.leasing``; every statement here reads through a queue index. An
outcome of an account with a webhook writes its ``lead.outcome`` event in the same
transaction (``webhooks.outbox``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from dialbase.campaigns.models import Routing
from dialbase.db import sqlite_instant, utcnow
from dialbase.dialer.leasing import (
    DAY,
    DO_NOT_CALL,
    MAX_ROUNDS,
    LeaseAsk,
    LeasedLead,
    OutcomeAsk,
    Refused,
    Report,
    Stale,
    Stopped,
    next_step,
    refusal,
    suppression_note,
)
from dialbase.dialer.stores import DELETED, lead_deleted
from dialbase.sqlite_writer import SQLiteWriter
from dialbase.webhooks.outbox import LEAD_OUTCOME, SQLITE_INSERT, outcome_data, sqlite_params

_REVISION = "SELECT value FROM config_revision WHERE id = 1"
_RUNNING = "SELECT running FROM campaigns WHERE id = ?"
_ZONE_KEYS = "SELECT time_zones FROM campaign_zones WHERE campaign_id = ?"
# Settle: wake (lapsed leases, retries, holds and callbacks whose time came), then expire.
_WAKE = """
UPDATE leads SET
    status = CASE
        WHEN callback_at IS NOT NULL THEN 'callback'
        WHEN status != 'held'
             AND attempts >= (SELECT max_attempts FROM campaigns WHERE id = :campaign)
        THEN 'done'
        ELSE 'pending' END,
    closed_reason = CASE
        WHEN callback_at IS NULL AND status != 'held'
             AND attempts >= (SELECT max_attempts FROM campaigns WHERE id = :campaign)
        THEN 'attempts_used_up' END
WHERE id IN (SELECT id FROM leads
             WHERE campaign_id = :campaign AND status IN ('leased', 'retry', 'held')
               AND due_at <= :now)
"""
_EXPIRE = """
UPDATE leads SET status = 'expired'
WHERE id IN (SELECT id FROM leads
             WHERE campaign_id = :campaign AND status IN ('pending', 'retry', 'held', 'callback')
               AND expires_at <= :now)
"""
_COLUMNS = "id, phone_number, phone_e164, name, priority, agent_id, skill, extra, attempts, due_at"
_CALLBACKS = f"""
SELECT {_COLUMNS} FROM leads
WHERE campaign_id = :campaign AND status = 'callback' AND due_at <= :now
  AND (callback_agent = :agent OR (callback_agent IS NULL {{routing}}))
ORDER BY due_at, id LIMIT :count
"""
# Pending leads of open zone keys. One statement finds each key's first lead in queue
# order (a correlated seek per key, inside SQLite), and the best of those; with count > 1,
# only keys whose first lead ranks among the best ``count`` firsts can hold the next
# leads, and those few keys are read ``count`` deep and merged.
_IN_QUEUE = """
campaign_id = ?1 AND status = 'pending' {routing}
AND (expires_at IS NULL OR expires_at > ?2)"""
_QUEUE_ORDER = "ORDER BY priority DESC, due_at, id"
_HEADS = f"""
WITH k(zones) AS (VALUES {{keys}})
SELECT {_COLUMNS}, time_zones FROM leads
WHERE id IN (SELECT (SELECT id FROM leads WHERE {_IN_QUEUE} AND time_zones = k.zones
                     {_QUEUE_ORDER} LIMIT 1) FROM k)
{_QUEUE_ORDER} LIMIT ?5
"""
_PICK = f"""
SELECT {_COLUMNS}, time_zones FROM leads WHERE {_IN_QUEUE} AND time_zones = ?6
{_QUEUE_ORDER} LIMIT ?5
"""
KEYS_PER_STATEMENT = 100
_ROUTED = {
    Routing.GENERAL: "",
    Routing.AGENTWISE: "AND agent_id = :agent",
    Routing.SKILLWISE: "AND skill = :skill",
}
_CALLBACK_PICKS = {routing: _CALLBACKS.format(routing=c) for routing, c in _ROUTED.items()}
_ROUTED_BY_NUMBER = {
    Routing.GENERAL: "",
    Routing.AGENTWISE: "AND agent_id = ?3",
    Routing.SKILLWISE: "AND skill = ?4",
}
_PICKS = {routing: _PICK.format(routing=clause) for routing, clause in _ROUTED_BY_NUMBER.items()}


@lru_cache(maxsize=256)
def _heads(routing: Routing, keys: int) -> str:
    """The statement reading the first lead of each of ``keys`` zone keys (bound as
    ``?6`` onwards)."""
    values = ", ".join(f"(?{6 + n})" for n in range(keys))
    return _HEADS.format(keys=values, routing=_ROUTED_BY_NUMBER[routing])


_LISTED = """
SELECT number FROM dnc_entries
WHERE account_id = ? AND number = ? AND (expires_at IS NULL OR expires_at > ?)
"""
_RECENT = """
SELECT count(*), min(leased_at) FROM leases
WHERE account_id = ? AND phone_e164 = ? AND leased_at > ?
"""
_CLOSE = "UPDATE leads SET status = 'done', closed_reason = 'do_not_call' WHERE id = ?"
_HOLD = (
    "UPDATE leads SET status = CASE WHEN status = 'callback' THEN 'callback' ELSE 'held' END,"
    " due_at = ? WHERE id = ?"
)
_MARK = "UPDATE leads SET status = 'leased', attempts = attempts + 1, due_at = ? WHERE id = ?"
_LEASE = (
    "INSERT INTO leases (id, campaign_id, lead_id, attempt, account_id, phone_e164, agent_id,"
    " skill, leased_at, deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FIND = """
SELECT s.lead_id, s.attempt, s.outcome, s.deadline, c.max_attempts, c.retry_delay_seconds,
       c.retry_delays, c.account_id, l.phone_e164, l.status
FROM leases s JOIN campaigns c ON c.id = s.campaign_id JOIN leads l ON l.id = s.lead_id
WHERE s.id = ? AND c.account_id = ?
"""
_CLAIM = "UPDATE leases SET outcome = ?, note = ?, reported_at = ? WHERE id = ? AND outcome IS NULL"
_MOVE = """
UPDATE leads SET status = ?, due_at = ?, callback_at = ?, callback_agent = ?, closed_reason = ?
WHERE id = ? AND status = 'leased' AND attempts = ?
"""
_LEASE_CAMPAIGN = "SELECT campaign_id FROM leases WHERE id = ?"
_SUPPRESS = """
INSERT INTO dnc_entries (account_id, number, note, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (account_id, number) DO UPDATE SET expires_at = NULL
"""


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: int
    phone_number: str
    phone_e164: str
    name: str | None
    priority: int
    agent_id: str | None
    skill: str | None
    extra: str | None
    attempts: int
    due_at: str
    callback: bool


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
    keys = [row[0] for row in conn.execute(_ZONE_KEYS, (ask.campaign_id,))]
    open_keys = ask.open_zones(keys)
    until = moment + timedelta(seconds=ask.lease_seconds)
    deadline = sqlite_instant(until)
    chosen: list[_Candidate] = []
    handed: Counter[str] = Counter()  # hand-outs per number in this lease
    # Each round hands out, closes (listed) or holds (capped) every candidate it reads,
    # so the next one reads further down the queue.
    for _ in range(MAX_ROUNDS):
        want = ask.count - len(chosen)
        candidates = _candidates(conn, ask, now, open_keys, want) if want else []
        if not candidates:
            break
        for lead in candidates:
            if _listed(conn, ask.account_id, lead.phone_e164, now):
                conn.execute(_CLOSE, (lead.id,))
                continue
            held_until = _capped(conn, ask, lead.phone_e164, handed[lead.phone_e164], moment)
            if held_until is not None:
                conn.execute(_HOLD, (sqlite_instant(held_until), lead.id))
                continue
            conn.execute(_MARK, (deadline, lead.id))
            handed[lead.phone_e164] += 1
            chosen.append(lead)
    leased = [
        LeasedLead(
            lease_id=uuid.uuid4().hex,
            deadline=until,
            phone_number=lead.phone_number,
            name=lead.name,
            priority=lead.priority,
            agent_id=lead.agent_id,
            skill=lead.skill,
            extra=orjson.loads(lead.extra) if lead.extra else {},
            attempt=lead.attempts + 1,
            callback=lead.callback,
        )
        for lead in chosen
    ]
    conn.executemany(
        _LEASE,
        [
            (item.lease_id, ask.campaign_id, lead.id, item.attempt, ask.account_id)
            + (lead.phone_e164, ask.agent_id, ask.skill, now, deadline)
            for lead, item in zip(chosen, leased, strict=True)
        ],
    )
    return leased


def _candidates(
    conn: sqlite3.Connection, ask: LeaseAsk, now: str, open_keys: Sequence[str], count: int
) -> list[_Candidate]:
    """The next ``count`` leads in queue order: due callbacks first, then pending leads
    of the zone keys inside calling hours (one index range per key, merged)."""
    routing = Routing(ask.routing)
    params = {
        "campaign": ask.campaign_id,
        "now": now,
        "agent": ask.agent_id,
        "skill": ask.skill,
        "count": count,
    }
    found = [
        _candidate(row, callback=True)
        for row in conn.execute(_CALLBACK_PICKS[routing], params).fetchall()
    ]
    if len(found) >= count:
        return found[:count]
    wanted = count - len(found)
    fixed = (ask.campaign_id, now, ask.agent_id, ask.skill, wanted)
    heads = []
    for start in range(0, len(open_keys), KEYS_PER_STATEMENT):
        keys = open_keys[start : start + KEYS_PER_STATEMENT]
        heads += conn.execute(_heads(routing, len(keys)), (*fixed, *keys)).fetchall()
    heads.sort(key=_queue_order)
    if wanted > 1:  # the keys of the best firsts, read deeper
        contenders = [row[-1] for row in heads[:wanted]]
        pick = _PICKS[routing]
        heads = [row for key in contenders for row in conn.execute(pick, (*fixed, key))]
        heads.sort(key=_queue_order)
    return found + [_candidate(row[:-1], callback=False) for row in heads[:wanted]]


def _queue_order(row: tuple[Any, ...]) -> tuple[int, str, int]:
    """Queue order of a candidate row (columns as ``_COLUMNS``)."""
    return (-row[4], row[9], row[0])


def _candidate(row: tuple[Any, ...], callback: bool) -> _Candidate:
    lead_id, number, e164, name, priority, agent, skill, extra, attempts, due = row
    return _Candidate(
        lead_id, number, e164, name, priority, agent, skill, extra, attempts, due, callback
    )


def _listed(conn: sqlite3.Connection, account_id: int, number: str, now: str) -> bool:
    return conn.execute(_LISTED, (account_id, number, now)).fetchone() is not None


def _capped(
    conn: sqlite3.Connection, ask: LeaseAsk, number: str, handed: int, moment: datetime
) -> datetime | None:
    """Until when the number's 24-hour attempt cap holds it back (None: it does not)."""
    if not ask.daily_cap:
        return None
    since = sqlite_instant(moment - DAY)
    recent, oldest = conn.execute(_RECENT, (ask.account_id, number, since)).fetchone()
    if recent + handed < ask.daily_cap:
        return None
    return (_instant(oldest) if oldest else moment) + DAY


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
    (
        lead_id,
        attempt,
        outcome,
        deadline_text,
        max_attempts,
        delay,
        delays,
        account,
        number,
        status,
    ) = found
    if outcome is None and status == DELETED:
        return lead_deleted(ask.lease_id)
    deadline = _instant(deadline_text)
    if outcome is not None or deadline <= now:
        return refusal(ask, now, outcome, deadline, found=True)
    step = next_step(
        ask, now, attempt, max_attempts, orjson.loads(delays) if delays else None, delay
    )
    moved = conn.execute(
        _MOVE,
        (
            step.status,
            sqlite_instant(step.due),
            sqlite_instant(ask.callback_at) if ask.callback_at else None,
            ask.callback_agent,
            step.closed_reason,
            lead_id,
            attempt,
        ),
    ).rowcount
    if not moved:  # settled back into the queue meanwhile: record nothing
        return refusal(ask, now, None, None, found=True)
    conn.execute(_CLAIM, (ask.outcome, ask.note, sqlite_instant(now), ask.lease_id))
    if ask.outcome == DO_NOT_CALL:
        conn.execute(_SUPPRESS, (account, number, suppression_note(ask), sqlite_instant(now)))
    report = Report(ask.lease_id, ask.outcome, step.status, attempt, step.next_attempt_at)
    if ask.webhooks:
        campaign_id = conn.execute(_LEASE_CAMPAIGN, (ask.lease_id,)).fetchone()[0]
        data = outcome_data(ask, report)
        params = sqlite_params(campaign_id, LEAD_OUTCOME, data, sqlite_instant(now), lead_id)
        conn.execute(SQLITE_INSERT, params)
    return report


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
