"""The SQLite store: a batch in one ``BEGIN IMMEDIATE`` transaction through sqlite3.

The process's ``SQLiteWriter`` runs the transaction (on the event loop while the file is
free, else on its thread; see ``dialbase.sqlite_writer``). A failed ``COMMIT`` is never a
commit in SQLite, so the outcome of a batch is always known here: a failure is
``DatabaseUnavailable`` (the file is locked too long, the disk is full, the file is
gone) or ``BatchRefused``. A batch holding a lead of an account with a webhook inserts
the ``lead.added`` events of its stored leads after them (``webhooks.outbox``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from dialbase.db import sqlite_instant, utcnow
from dialbase.leads.batch import (
    BatchRefused,
    NewLead,
    Outcome,
    WriteResult,
    action_result,
    decide,
    stored_actions,
)
from dialbase.sqlite_writer import SQLiteWriter
from dialbase.webhooks.models import EventType
from dialbase.webhooks.outbox import (
    SQLITE_INSERT,
    SQLITE_INSERT_ROW,
    added_data,
    sqlite_params,
    sqlite_routes,
    sqlite_row,
)

_REVISION_SQL = "SELECT value FROM config_revision WHERE id = 1"
_GUARD_SQL = (
    "INSERT INTO campaign_numbers (campaign_id, phone_number) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_LISTED_SQL = """
SELECT 1 FROM dnc_entries
WHERE account_id = (SELECT account_id FROM campaigns WHERE id = ?) AND number = ?
  AND (expires_at IS NULL OR expires_at > ?)
"""
LEAD_SQL = (
    "INSERT INTO leads (campaign_id, phone_number, phone_e164, time_zones, name, priority,"
    " expires_at, agent_id, skill, extra, status, attempts, due_at, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)"
)
_ZONES_SQL = (
    "INSERT INTO campaign_zones (campaign_id, time_zones) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_ACTION_SQL = "UPDATE campaigns SET running = ? WHERE id = ? AND running != ?"


class SQLiteBatchStore:
    concurrency = 1  # one writer at a time holds a SQLite file anyway

    def __init__(self, writer: SQLiteWriter) -> None:
        self._writer = writer

    async def write(self, batch: Sequence[NewLead]) -> list[WriteResult]:
        try:
            return await self._writer.transaction(lambda conn: _write_in_transaction(conn, batch))
        except sqlite3.Error as exc:  # not an outage: the database refused a statement
            raise BatchRefused(str(exc)) from exc

    async def close(self) -> None:
        """The writer is the process's; whoever made it closes it."""


def _write_in_transaction(conn: sqlite3.Connection, batch: Sequence[NewLead]) -> list[WriteResult]:
    revision = conn.execute(_REVISION_SQL).fetchone()[0]
    now = sqlite_instant(utcnow())
    results = []
    for lead in batch:
        listed = lead.revision == revision and _listed(conn, lead, now)
        new_number = not listed and _guard(conn, lead, revision)
        results.append(decide(lead, revision, listed=listed, new_number=new_number))
    stored = [
        lead
        for lead, result in zip(batch, results, strict=True)
        if result.outcome is Outcome.STORED
    ]
    if any(lead.webhooks for lead in stored):
        _insert_with_events(conn, stored, now)
    else:  # no webhook anywhere in the batch: the leads in one executemany, as ever
        conn.executemany(LEAD_SQL, [lead_row(lead, now) for lead in stored])
    conn.executemany(_ZONES_SQL, sorted({(lead.campaign_id, lead.time_zones) for lead in stored}))
    for lead, result in stored_actions(batch, results):
        running = 1 if lead.action == "start" else 0
        changed = conn.execute(_ACTION_SQL, (running, lead.campaign_id, running)).rowcount
        result.action = action_result(lead, bool(changed))
        if changed and lead.webhooks:
            kind = EventType.CAMPAIGN_STARTED if running else EventType.CAMPAIGN_STOPPED
            conn.execute(SQLITE_INSERT, sqlite_params(lead.campaign_id, kind.value, {}, now))
    return results


def lead_row(lead: NewLead, now: str) -> tuple[object, ...]:
    """``LEAD_SQL``'s parameters for a new lead (``now``: ``db.sqlite_instant`` text)."""
    return (
        lead.campaign_id,
        lead.phone_number,
        lead.phone_e164,
        lead.time_zones,
        lead.name,
        lead.priority,
        sqlite_instant(lead.expires_at) if lead.expires_at else None,
        lead.agent_id,
        lead.skill,
        orjson.dumps(lead.extra).decode(),
        now,
        now,
    )


def _insert_with_events(conn: sqlite3.Connection, stored: Sequence[NewLead], now: str) -> None:
    """The leads in one executemany, then the ``lead.added`` events of those whose account
    has a webhook and whose campaign's webhook enables it (looked up once per campaign).
    The leads' ids are consecutive and end at ``last_insert_rowid()``: ``leads.id`` is a
    rowid without AUTOINCREMENT, so each insert takes the largest id plus one, and this
    transaction holds the file's write lock."""
    conn.executemany(LEAD_SQL, [lead_row(lead, now) for lead in stored])
    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    first = last - len(stored) + 1
    kind = EventType.LEAD_ADDED.value
    routes = sqlite_routes(conn, (lead.campaign_id for lead in stored if lead.webhooks), kind)
    conn.executemany(
        SQLITE_INSERT_ROW,
        [
            sqlite_row(
                routes[lead.campaign_id], lead.campaign_id, kind, added_data(lead), now, lead_id
            )
            for lead_id, lead in enumerate(stored, start=first)
            if lead.webhooks and lead.campaign_id in routes
        ],
    )


def _listed(conn: sqlite3.Connection, lead: NewLead, now: str) -> bool:
    """Whether the lead's number is on its account's do-not-call list."""
    return (
        conn.execute(_LISTED_SQL, (lead.campaign_id, lead.phone_e164, now)).fetchone() is not None
    )


def _guard(conn: sqlite3.Connection, lead: NewLead, revision: int) -> bool:
    """Insert the lead's number guard; whether it was new (a stale lead guards nothing)."""
    if lead.revision != revision:
        return False
    return conn.execute(_GUARD_SQL, (lead.campaign_id, lead.phone_e164)).rowcount == 1
