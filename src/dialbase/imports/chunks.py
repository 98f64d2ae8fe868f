"""A chunk's transaction: the checked rows made leads, results and a moved cursor.

``write_chunk`` is the transaction's one recipe (the engine's module docstring says what
it guarantees), written once for both backends against ``ChunkStore``, the statements it
needs. It runs synchronously inside a transaction its caller owns:

- SQLite: ``SQLiteChunkStore`` on the process's ``SQLiteWriter`` connection, in its
  ``BEGIN IMMEDIATE`` transaction. The write lock is held from the first statement, so
  a number guard not found is one this chunk may insert, and the chunk queues behind
  (never beside) the worker's lead batches, leases and outcomes. Plain ``sqlite3``
  statements: this is the import's hot loop (a million rows is 2,000 chunks).
- PostgreSQL: ``SessionChunkStore`` on the chunk's session (``AsyncSession.run_sync``),
  one statement per table with the rows sent as arrays. The import's row is locked
  ``FOR UPDATE``; guards are inserted in key order and an existing guard is locked, not
  updated (see ``leads.stores.postgres``). The last chunk's webhook events
  (``campaign.started`` when it starts the campaign, ``import.done``) are written by the
  caller, in the same transaction, after the recipe; on SQLite by the store itself.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from dialbase.accounts.models import ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.db import sqlite_instant, utcnow
from dialbase.dnc.models import DncEntry
from dialbase.dnc.service import in_force
from dialbase.imports import rows
from dialbase.imports.models import Import, ImportRow, ImportStatus, RowResult
from dialbase.imports.rows import Verdict
from dialbase.leads.batch import NewLead
from dialbase.leads.stores.sqlite import LEAD_SQL, lead_row
from dialbase.webhooks.models import EventType
from dialbase.webhooks.outbox import SQLITE_INSERT, sqlite_params
from dialbase.webhooks.service import import_done_data

Row = tuple[int, int | None, list[Any]]  # index, line in the file, cells


@dataclass(frozen=True, slots=True)
class ChunkState:
    status: str
    next_row: int
    total: int


@dataclass(frozen=True, slots=True)
class Stale:
    """The configuration moved since the chunk was planned: nothing was written."""


@dataclass(frozen=True, slots=True)
class ImportState:
    """The import's row as the chunk's transaction locked it."""

    status: str
    next_row: int
    total: int
    added: int
    duplicates: int
    rejected: int
    started: bool
    start: bool  # start the campaign after the last row
    has_callback: bool
    source: str


@dataclass(slots=True)
class RowOutcome:
    idx: int
    line: int | None
    phone_number: str | None
    result: RowResult
    message: str | None
    data: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """What the transaction writes: the planned rows and their verdicts."""

    import_id: int
    account_id: int
    campaign_id: int
    check_duplicate: bool
    start: int  # the cursor the chunk was planned from
    revision: int  # the configuration revision the rows were checked against
    columns: list[str]
    rows: list[Row]
    verdicts: list[Verdict]
    last: bool  # nothing after these rows (the end of the file or of the staged rows)
    file_error: str | None  # why the rest of the file cannot be read (with ``last``)
    owner: str  # the runner writing it (its claim is renewed)
    lease: float


class ChunkStore(Protocol):
    def lock(self) -> ImportState | None: ...
    def revision(self) -> int: ...
    def listed(self, numbers: Sequence[str], now: datetime) -> set[str]: ...
    def guard(self, numbers: Sequence[str]) -> set[str]: ...
    def insert_leads(self, leads: Sequence[NewLead], now: datetime) -> None: ...
    def insert_results(self, outcomes: Sequence[RowOutcome]) -> None: ...
    def update_import(self, values: dict[str, Any]) -> None: ...
    def finish(self, start_campaign: bool) -> bool: ...  # whether the campaign started
    def event(self, event_type: str, data: dict[str, Any]) -> None: ...


def write_chunk(store: ChunkStore, chunk: Chunk) -> ChunkState | Stale | None:
    """The chunk's statements, in the caller's transaction. None: the import is gone."""
    state = store.lock()
    if state is None:
        return None
    if state.status == ImportStatus.DONE or state.next_row != chunk.start:
        return ChunkState(state.status, state.next_row, state.total)  # another worker's
    if store.revision() != chunk.revision:
        return Stale()
    now = utcnow()
    numbers = sorted({n for v in chunk.verdicts if (n := rows.phone_e164(v)) is not None})
    outcomes, candidates = _screen(chunk, store.listed(numbers, now) if numbers else set())
    guarded = sorted({lead.phone_e164 for _, lead in candidates})
    new = store.guard(guarded) if guarded else set()
    added = _duplicate_rule(candidates, new, chunk.check_duplicate)
    if added:
        store.insert_leads(added, now)
    next_row = state.next_row + len(chunk.rows)
    if chunk.last and chunk.file_error is not None:
        message = f"The rest of the file was not imported: {chunk.file_error}"
        outcomes.append(RowOutcome(next_row, None, None, RowResult.REJECTED, message))
        next_row += 1
    if outcomes:
        store.insert_results(outcomes)
    counts = Counter(o.result for o in outcomes)
    values: dict[str, Any] = {
        "status": ImportStatus.RUNNING.value,
        "next_row": next_row,
        "added": state.added + counts[RowResult.ADDED],
        "duplicates": state.duplicates + counts[RowResult.DUPLICATE],
        "rejected": state.rejected + counts[RowResult.REJECTED],
        "claimed_by": chunk.owner,
        "claimed_until": now + timedelta(seconds=chunk.lease),
    }
    if not state.started:
        values["started_at"] = now
    total = state.total
    if chunk.last:
        total = next_row
        values.update(status=ImportStatus.DONE.value, total=total, finished_at=now)
        values["claimed_until"] = None
        if state.has_callback:
            values["callback_next_at"] = now
        if store.finish(state.start):
            store.event(EventType.CAMPAIGN_STARTED.value, {})
        store.event(
            EventType.IMPORT_DONE.value,
            import_done_data(
                chunk.import_id,
                state.source,
                total,
                values["added"],
                values["duplicates"],
                values["rejected"],
            ),
        )
    store.update_import(values)
    return ChunkState(values["status"], next_row, total)


def _screen(
    chunk: Chunk, listed: set[str]
) -> tuple[list[RowOutcome], list[tuple[RowOutcome, NewLead]]]:
    """Every row's outcome but the duplicate rule's, and the rows that may be added."""
    outcomes: list[RowOutcome] = []
    candidates: list[tuple[RowOutcome, NewLead]] = []
    for (idx, line, cells), verdict in zip(chunk.rows, chunk.verdicts, strict=True):
        outcome = RowOutcome(
            idx, line, rows.phone_text(chunk.columns, cells), RowResult.ADDED, None
        )
        outcomes.append(outcome)
        message: str | None = None
        if isinstance(verdict, rows.Refused):
            message = verdict.message
        elif rows.phone_e164(verdict) in listed:
            message = rows.DND
        elif isinstance(verdict, rows.Unless):
            message = verdict.message
        if message is not None:
            outcome.result, outcome.message, outcome.data = RowResult.REJECTED, message, cells
        elif isinstance(verdict, rows.Listed):
            candidates.append((outcome, verdict.lead))
    return outcomes, candidates


def _duplicate_rule(
    candidates: list[tuple[RowOutcome, NewLead]], new: set[str], check_duplicate: bool
) -> list[NewLead]:
    """The leads to add, in row order; with the check on, the first row of a number that
    had no guard wins and the others are duplicates."""
    added: list[NewLead] = []
    for outcome, lead in candidates:
        if check_duplicate:
            if lead.phone_e164 not in new:
                outcome.result, outcome.message = RowResult.DUPLICATE, rows.DUPLICATE
                continue
            new.discard(lead.phone_e164)
        added.append(lead)
    return added


def _zone_keys(leads: Iterable[NewLead]) -> list[str]:
    return sorted({lead.time_zones for lead in leads})


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


class SQLiteChunkStore:
    """The chunk's statements on a ``sqlite3`` connection in ``BEGIN IMMEDIATE``."""

    def __init__(self, conn: sqlite3.Connection, chunk: Chunk) -> None:
        self._conn = conn
        self._chunk = chunk

    def lock(self) -> ImportState | None:
        # BEGIN IMMEDIATE took the file's write lock: the row cannot move until the commit.
        found = self._conn.execute(
            "SELECT status, next_row, total, added, duplicates, rejected,"
            " started_at IS NOT NULL, start, callback_url IS NOT NULL, source"
            " FROM imports WHERE id = ?",
            (self._chunk.import_id,),
        ).fetchone()
        if found is None:
            return None
        status, next_row, total, added, duplicates, rejected, started, start, callback, source = (
            found
        )
        return ImportState(
            status, next_row, total, added, duplicates, rejected, bool(started), bool(start),
            bool(callback), source,
        )  # fmt: skip

    def revision(self) -> int:
        found = self._conn.execute("SELECT value FROM config_revision WHERE id = 1").fetchone()
        return int(found[0]) if found else 0

    def listed(self, numbers: Sequence[str], now: datetime) -> set[str]:
        found = self._conn.execute(
            "SELECT number FROM dnc_entries WHERE account_id = ?"
            f" AND number IN ({_placeholders(len(numbers))})"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (self._chunk.account_id, *numbers, sqlite_instant(now)),
        )
        return {number for (number,) in found}

    def guard(self, numbers: Sequence[str]) -> set[str]:
        # The write lock is held: the numbers not found now are the ones this inserts.
        campaign_id = self._chunk.campaign_id
        found = self._conn.execute(
            "SELECT phone_number FROM campaign_numbers WHERE campaign_id = ?"
            f" AND phone_number IN ({_placeholders(len(numbers))})",
            (campaign_id, *numbers),
        )
        new = set(numbers) - {number for (number,) in found}
        self._conn.executemany(
            "INSERT INTO campaign_numbers (campaign_id, phone_number) VALUES (?, ?)",
            [(campaign_id, number) for number in sorted(new)],
        )
        return new

    def insert_leads(self, leads: Sequence[NewLead], now: datetime) -> None:
        stamp = sqlite_instant(now)
        self._conn.executemany(LEAD_SQL, [lead_row(lead, stamp) for lead in leads])
        self._conn.executemany(
            "INSERT INTO campaign_zones (campaign_id, time_zones) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            [(self._chunk.campaign_id, key) for key in _zone_keys(leads)],
        )

    def insert_results(self, outcomes: Sequence[RowOutcome]) -> None:
        self._conn.executemany(
            "INSERT INTO import_results (import_id, idx, line, phone_number, result, message,"
            " data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    self._chunk.import_id,
                    o.idx,
                    o.line,
                    o.phone_number,
                    o.result.value,
                    o.message,
                    None if o.data is None else orjson.dumps(o.data).decode(),
                )
                for o in outcomes
            ],
        )

    def update_import(self, values: dict[str, Any]) -> None:
        stored = {k: sqlite_instant(v) if isinstance(v, datetime) else v for k, v in values.items()}
        assignments = ", ".join(f"{column} = ?" for column in stored)
        self._conn.execute(
            f"UPDATE imports SET {assignments} WHERE id = ?",
            (*stored.values(), self._chunk.import_id),
        )

    def finish(self, start_campaign: bool) -> bool:
        started = start_campaign and bool(
            self._conn.execute(
                "UPDATE campaigns SET running = 1 WHERE id = ? AND running = 0",
                (self._chunk.campaign_id,),
            ).rowcount
        )
        self._conn.execute("DELETE FROM import_rows WHERE import_id = ?", (self._chunk.import_id,))
        return started

    def event(self, event_type: str, data: dict[str, Any]) -> None:
        """A webhook event, written when a webhook wants it (``webhooks.outbox``)."""
        now = sqlite_instant(utcnow())
        self._conn.execute(
            SQLITE_INSERT, sqlite_params(self._chunk.campaign_id, event_type, data, now)
        )


# PostgreSQL: one statement per table whatever the chunk's size, its rows sent as arrays
# (compiled once; a multi-row VALUES would be compiled anew for every chunk).
_PG_GUARD = text("""
INSERT INTO campaign_numbers (campaign_id, phone_number)
SELECT :campaign_id, n FROM unnest(CAST(:numbers AS text[])) AS t(n) ORDER BY n
ON CONFLICT (campaign_id, phone_number) DO UPDATE SET phone_number = EXCLUDED.phone_number
WHERE false
RETURNING phone_number
""")
_PG_LEADS = text("""
INSERT INTO leads (
    campaign_id, phone_number, phone_e164, time_zones, name, priority, expires_at,
    agent_id, skill, extra, status, attempts, due_at, created_at
)
SELECT :campaign_id, p, q, z, n, pr, e, a, s, x::json, 'pending', 0, :now, :now
FROM unnest(
    CAST(:p AS text[]), CAST(:q AS text[]), CAST(:z AS text[]), CAST(:n AS text[]),
    CAST(:pr AS integer[]), CAST(:e AS timestamptz[]), CAST(:a AS text[]),
    CAST(:s AS text[]), CAST(:x AS text[])
) WITH ORDINALITY AS t(p, q, z, n, pr, e, a, s, x, ord)
ORDER BY ord
""")
_PG_ZONES = text("""
INSERT INTO campaign_zones (campaign_id, time_zones)
SELECT :campaign_id, z FROM unnest(CAST(:zones AS text[])) AS t(z) ORDER BY z
ON CONFLICT DO NOTHING
""")
_PG_RESULTS = text("""
INSERT INTO import_results (import_id, idx, line, phone_number, result, message, data)
SELECT :import_id, i, l, p, r, m, d::json
FROM unnest(
    CAST(:i AS integer[]), CAST(:l AS integer[]), CAST(:p AS text[]), CAST(:r AS text[]),
    CAST(:m AS text[]), CAST(:d AS text[])
) AS t(i, l, p, r, m, d)
""")


class SessionChunkStore:
    """The chunk's statements on the chunk's session (PostgreSQL)."""

    def __init__(self, session: Session, chunk: Chunk) -> None:
        self._session = session
        self._chunk = chunk
        # Webhook events (type, data): the caller writes them (``webhooks.outbox.record``,
        # async) in this same transaction once the recipe returned.
        self.events: list[tuple[str, dict[str, Any]]] = []

    def lock(self) -> ImportState | None:
        found = self._session.execute(
            select(
                Import.status,
                Import.next_row,
                Import.total,
                Import.added,
                Import.duplicates,
                Import.rejected,
                Import.started_at.is_not(None),
                Import.start,
                Import.callback_url.is_not(None),
                Import.source,
            )
            .where(Import.id == self._chunk.import_id)
            .with_for_update()
        ).one_or_none()
        return None if found is None else ImportState(*tuple(found))

    def revision(self) -> int:
        value = self._session.scalar(select(ConfigRevision.value).where(ConfigRevision.id == 1))
        return int(value or 0)

    def listed(self, numbers: Sequence[str], now: datetime) -> set[str]:
        found = self._session.scalars(
            select(DncEntry.number).where(
                DncEntry.account_id == self._chunk.account_id,
                DncEntry.number.in_(numbers),
                in_force(now),
            )
        )
        return set(found)

    def guard(self, numbers: Sequence[str]) -> set[str]:
        # Key order; an existing guard is locked, not updated (see leads.stores.postgres).
        found = self._session.scalars(
            _PG_GUARD, {"campaign_id": self._chunk.campaign_id, "numbers": list(numbers)}
        )
        return set(found)

    def insert_leads(self, leads: Sequence[NewLead], now: datetime) -> None:
        self._session.execute(
            _PG_LEADS,
            {
                "campaign_id": self._chunk.campaign_id,
                "now": now,
                "p": [lead.phone_number for lead in leads],
                "q": [lead.phone_e164 for lead in leads],
                "z": [lead.time_zones for lead in leads],
                "n": [lead.name for lead in leads],
                "pr": [lead.priority for lead in leads],
                "e": [lead.expires_at for lead in leads],
                "a": [lead.agent_id for lead in leads],
                "s": [lead.skill for lead in leads],
                "x": [orjson.dumps(lead.extra).decode() for lead in leads],
            },
        )
        self._session.execute(
            _PG_ZONES, {"campaign_id": self._chunk.campaign_id, "zones": _zone_keys(leads)}
        )

    def insert_results(self, outcomes: Sequence[RowOutcome]) -> None:
        self._session.execute(
            _PG_RESULTS,
            {
                "import_id": self._chunk.import_id,
                "i": [o.idx for o in outcomes],
                "l": [o.line for o in outcomes],
                "p": [o.phone_number for o in outcomes],
                "r": [o.result.value for o in outcomes],
                "m": [o.message for o in outcomes],
                "d": [None if o.data is None else orjson.dumps(o.data).decode() for o in outcomes],
            },
        )

    def update_import(self, values: dict[str, Any]) -> None:
        self._session.execute(
            update(Import).where(Import.id == self._chunk.import_id).values(**values)
        )

    def finish(self, start_campaign: bool) -> bool:
        started = False
        if start_campaign:
            result = self._session.execute(
                update(Campaign)
                .where(Campaign.id == self._chunk.campaign_id, Campaign.running.is_(False))
                .values(running=True)
            )
            started = bool(result.rowcount)  # type: ignore[attr-defined]
        self._session.execute(delete(ImportRow).where(ImportRow.import_id == self._chunk.import_id))
        return started

    def event(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))
