"""Do-not-call lists: one per account, of numbers in E.164 form (``phones.e164``).

An entry may carry an expiry (after which it no longer suppresses and is not listed) and
a note. The list is checked twice: when a lead is added (inside the write batch, see
``leads.batch``) and when the queue is about to hand a lead out (``dialer.leasing``); an
outcome ``do_not_call`` adds the number for good. No web framework here.

Managing the list (the ``/v1/dnc`` API and ``dialbase dnc``): a number given is checked
as AddCampaignData checks a lead's (``compat.fields.phone_number``) and then compared in
its E.164 form, read with the account's default country. An entry whose expiry passed is
as good as absent: it is not shown, removing it answers "not listed", and putting its
number again lists it anew. These functions only flush; the caller's ``session_scope``
commits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, null, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase import phones
from dialbase.accounts.models import Account
from dialbase.compat import fields
from dialbase.db import sqlite_instant, utcnow
from dialbase.dnc.models import DncEntry
from dialbase.errors import Conflict, Invalid, NotFound
from dialbase.sqlite_writer import SQLiteWriter

MAX_NOTE_CHARS = 1000
MAX_PAGE = 1000
IMPORT_CHUNK = 500  # numbers per statement
_ATTEMPTS = 3  # reads of a number's row while other transactions insert and delete it
_SHOWN_CHARS = 40  # of a refused number, in its error message


def in_force(now: datetime):  # type: ignore[no-untyped-def]
    """The condition of an entry that still counts at ``now``."""
    return or_(DncEntry.expires_at.is_(None), DncEntry.expires_at > now)


async def find_entry(session: AsyncSession, account_id: int, number: str) -> DncEntry | None:
    """The entry in force for the number (E.164 form), if any."""
    return await session.scalar(
        select(DncEntry).where(
            DncEntry.account_id == account_id, DncEntry.number == number, in_force(utcnow())
        )
    )


_LISTED_SQLITE = """
SELECT 1 FROM dnc_entries
WHERE account_id = ? AND number = ? AND (expires_at IS NULL OR expires_at > ?)
"""


class DncLists:
    """Reads for the request paths (AddCampaignData checks a refused lead's number).

    On SQLite the read goes through the process's ``SQLiteWriter`` connection: inline on
    the event loop, about 20 µs, where a pooled session costs about a millisecond of
    thread hand-offs.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], sqlite: SQLiteWriter | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sqlite = sqlite

    async def listed(self, account_id: int, number: str) -> bool:
        if self._sqlite is not None:
            params = (account_id, number, sqlite_instant(utcnow()))
            return await self._sqlite.transaction(
                lambda conn: conn.execute(_LISTED_SQLITE, params).fetchone() is not None
            )
        async with self._sessionmaker() as session:
            return await find_entry(session, account_id, number) is not None


# Checks -------------------------------------------------------------------------------


def check_number(number: str) -> str:
    """The number trimmed, if it is one AddCampaignData would take; ``Invalid`` if not."""
    checked = fields.phone_number(number)
    if checked is None:
        shown = number if len(number) <= _SHOWN_CHARS else number[:_SHOWN_CHARS] + "..."
        raise Invalid(f"{shown!r} is not a phone number: give an optional + then 3 to 16 digits")
    return checked


def listed_form(account: Account, number: str) -> str:
    """The form ``number`` is listed and compared in (E.164 when it can be read)."""
    return phones.e164(check_number(number), account.default_country)


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    """The expiry as a UTC instant: it needs an offset and must lie in the future."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise Invalid("an expiry needs a UTC offset, like 2026-12-01T15:30:00+05:30")
    try:
        instant = expires_at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Invalid("an expiry must fall within the years 1 to 9999 in UTC") from None
    if instant <= now:
        raise Invalid("an expiry must be in the future")
    return instant


def check_note(note: str | None) -> None:
    if note is None:
        return
    if len(note) > MAX_NOTE_CHARS:
        raise Invalid(f"a note has at most {MAX_NOTE_CHARS} characters")
    if "\x00" in note:
        raise Invalid("a note must not contain NUL characters")


def not_listed(account: Account, number: str) -> NotFound:
    return NotFound(f"{listed_form(account, number)} is not on the do-not-call list")


# One entry ----------------------------------------------------------------------------


def _dialect(session: AsyncSession) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def _upsert_expired(session: AsyncSession) -> Any:
    """INSERT of an entry (its ``created_at`` now) that lists anew a number whose entry
    expired and does nothing to one in force; it returns the numbers it listed."""
    table = DncEntry.__table__
    statement = _dialect(session).insert(table)
    return statement.on_conflict_do_update(
        index_elements=["account_id", "number"],
        set_={
            "expires_at": null(),
            "note": statement.excluded.note,
            "created_at": statement.excluded.created_at,
        },
        # No parameter outside the rows (the row's created_at is now, NULL is a keyword):
        # SQLAlchemy sends a statement with one row by row instead of in batches.
        where=and_(
            table.c.expires_at.is_not(None), table.c.expires_at <= statement.excluded.created_at
        ),
    ).returning(table.c.number)


def _insert_new(session: AsyncSession) -> Any:
    """INSERT of an entry that does nothing when the number is listed already (the
    dialect's ON CONFLICT), returning the numbers it inserted. On the table, not the
    mapped class: run with many rows, it is one cached statement (executemany)."""
    table = DncEntry.__table__
    return (
        _dialect(session)
        .insert(table)
        .on_conflict_do_nothing(index_elements=["account_id", "number"])
        .returning(table.c.number)
    )


async def _locked(session: AsyncSession, account_id: int, number: str) -> DncEntry | None:
    """The row of that number, expired or not, locked until commit (PostgreSQL; on
    SQLite the transaction already holds the file's write lock)."""
    return await session.scalar(
        select(DncEntry)
        .where(DncEntry.account_id == account_id, DncEntry.number == number)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _locked_or_inserted(
    session: AsyncSession,
    account_id: int,
    number: str,
    expires_at: datetime | None,
    note: str | None,
    now: datetime,
) -> DncEntry | None:
    """The number's row, locked; None when there was none and this inserted it. Another
    transaction may insert it (or delete it) between the read and the insert: read again."""
    values = {
        "account_id": account_id,
        "number": number,
        "expires_at": expires_at,
        "note": note,
        "created_at": now,
    }
    for _ in range(_ATTEMPTS):
        entry = await _locked(session, account_id, number)
        if entry is not None:
            return entry
        if (await session.execute(_insert_new(session), [values])).first() is not None:
            return None
    raise Conflict(f"{number} is being changed by other requests right now; try again")


def _counts(entry: DncEntry, now: datetime) -> bool:
    return entry.expires_at is None or entry.expires_at > now


async def put_entry(
    session: AsyncSession,
    account: Account,
    number: str,
    expires_at: datetime | None = None,
    note: str | None = None,
) -> tuple[DncEntry, bool]:
    """List the number with this expiry and note; whether it was not listed before.

    A listed number gets the expiry and note given (none given: none kept). An expired
    entry is listed anew (created now). Two requests putting one new number at once both
    succeed: one creates it, the other replaces it.
    """
    number = listed_form(account, number)
    now = utcnow()
    expires_at = check_expiry(expires_at, now)
    check_note(note)
    entry = await _locked_or_inserted(session, account.id, number, expires_at, note, now)
    if entry is None:
        found = await _locked(session, account.id, number)
        assert found is not None  # inserted by this transaction
        return found, True
    created = not _counts(entry, now)
    entry.expires_at = expires_at
    entry.note = note
    if created:
        entry.created_at = now
    await session.flush()
    return entry, created


async def get_entry(session: AsyncSession, account: Account, number: str) -> DncEntry:
    """The number's entry in force; ``NotFound`` when it is not listed (or expired)."""
    entry = await find_entry(session, account.id, listed_form(account, number))
    if entry is None:
        raise not_listed(account, number)
    return entry


async def remove_entry(session: AsyncSession, account: Account, number: str) -> bool:
    """Take the number off the list; whether it was listed (an expired entry goes too,
    but it was not listed)."""
    statement = (
        delete(DncEntry)
        .where(
            DncEntry.account_id == account.id,
            DncEntry.number == listed_form(account, number),
        )
        .returning(DncEntry.expires_at)
    )
    row = (await session.execute(statement)).first()
    return row is not None and (row.expires_at is None or row.expires_at > utcnow())


# The whole list -----------------------------------------------------------------------


async def list_entries(
    session: AsyncSession, account_id: int, after: str | None, limit: int
) -> list[DncEntry]:
    """At most ``limit`` entries in force, by number, each after ``after`` (keyset)."""
    if limit < 1:
        raise Invalid("limit must be at least 1")
    statement = select(DncEntry).where(DncEntry.account_id == account_id, in_force(utcnow()))
    if after is not None:
        statement = statement.where(DncEntry.number > after)
    rows = await session.scalars(statement.order_by(DncEntry.number).limit(limit))
    return list(rows)


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[DncEntry]
    next_after: str | None  # the last number of this page when more follow, else None


async def list_page(session: AsyncSession, account_id: int, after: str | None, limit: int) -> Page:
    """One page of the list: ``limit`` entries (1 to ``MAX_PAGE``) after ``after``."""
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
    found = await list_entries(session, account_id, after, limit + 1)
    entries = found[:limit]
    return Page(entries, entries[-1].number if len(found) > limit else None)


async def iter_entries(session: AsyncSession, account_id: int) -> AsyncIterator[DncEntry]:
    """Every entry in force, by number, read a page at a time."""
    after: str | None = None
    while True:
        page = await list_page(session, account_id, after, MAX_PAGE)
        for entry in page.entries:
            yield entry
        if page.next_after is None:
            return
        after = page.next_after


# Imports ------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportCounts:
    added: int = 0  # listed by this import (an expired entry listed anew included)
    already_listed: int = 0  # listed before, or earlier in the same import
    invalid: int = 0  # not a phone number


async def import_numbers(
    session: AsyncSession,
    account: Account,
    numbers: Iterable[str],
    *,
    note: str | None = None,
    on_invalid: Callable[[str], None] | None = None,
    checkpoint: Callable[[], Awaitable[None]] | None = None,
) -> ImportCounts:
    """List every number of ``numbers`` (read lazily, ``IMPORT_CHUNK`` at a time) that is
    not listed yet, with no expiry. A value that is not a phone number is counted (and
    handed to ``on_invalid``) and the import goes on; listed numbers keep their entry.
    ``checkpoint`` runs after each chunk (the CLI commits there, so that a long import
    never holds SQLite's write lock for long)."""
    check_note(note)
    counts = ImportCounts()
    chunk: list[str] = []
    for number in numbers:
        checked = fields.phone_number(number)
        if checked is None:
            counts.invalid += 1
            if on_invalid is not None:
                on_invalid(number)
            continue
        chunk.append(phones.e164(checked, account.default_country))
        if len(chunk) >= IMPORT_CHUNK:
            await _import_chunk(session, account.id, chunk, note, counts)
            chunk = []
            if checkpoint is not None:
                await checkpoint()
    if chunk:
        await _import_chunk(session, account.id, chunk, note, counts)
    return counts


async def _import_chunk(
    session: AsyncSession,
    account_id: int,
    numbers: Sequence[str],
    note: str | None,
    counts: ImportCounts,
) -> None:
    """One statement (executemany) for the chunk: numbers not listed are inserted, those
    whose entry expired are listed anew; the rows it returns are the numbers it listed.
    No lookup first: the primary key's index decides every conflict (a looked-up IN list
    may be planned as a scan of the whole list, once per chunk)."""
    unique = list(dict.fromkeys(numbers))
    counts.already_listed += len(numbers) - len(unique)
    now = utcnow()
    values = [
        {"account_id": account_id, "number": n, "expires_at": None, "note": note, "created_at": now}
        for n in unique
    ]
    listed = len((await session.execute(_upsert_expired(session), values)).all())
    counts.added += listed
    counts.already_listed += len(unique) - listed
