"""The error types, and the one test for "the database is unavailable".

Services raise ``DialbaseError`` subclasses carrying what the caller needs to know; they
never build a response. ``dialbase.responses`` turns any exception into the answer of
the API family that was called.

``database_unavailable`` decides, from the exception alone, whether a failure means the
database cannot be used right now (answered 503, nothing stored) rather than a bug (500).
It is the only place that decides it: PostgreSQL errors by SQLSTATE class, SQLite errors
by result code, and the drivers' own connection errors.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from http import HTTPStatus

import asyncpg
import sqlalchemy.exc

from dialbase.observability.metrics import DATABASE_ERRORS

log = logging.getLogger("dialbase.database")


class DialbaseError(Exception):
    """A failure with a clear message for the caller. ``status`` is the HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def title(self) -> str:
        return HTTPStatus(self.status).phrase


class NotFound(DialbaseError):
    status = 404


class Conflict(DialbaseError):
    status = 409


class Invalid(DialbaseError):
    status = 422


class Unauthorized(DialbaseError):
    status = 401


class RateLimited(DialbaseError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DialbaseError):
    status = 503


DATABASE_DOWN = "The database is unavailable; nothing was stored. Try again shortly."


class DatabaseUnavailable(ServiceUnavailable):
    def __init__(self, message: str = DATABASE_DOWN) -> None:
        super().__init__(message)


# PostgreSQL SQLSTATE classes that mean "cannot use the database now": connection
# exception (08), insufficient resources (53: too many connections, disk full), operator
# intervention (57P: shutdown, cannot connect now), invalid catalog name (3D: no such
# database), a statement or lock timeout (57014 query_canceled, 55P03 lock_not_available),
# and a missing table (42P01: a database recreated but not yet migrated).
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "3D", "57014", "55P03", "42P01")
# SQLite primary result codes that mean the same: busy or locked past the busy timeout,
# an I/O error, a full disk, a file that cannot be opened, read-only, or not a database.
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CORRUPT,
    }
)
# A socket that cannot reach the server (refused, reset, unreachable, name unknown).
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EADDRNOTAVAIL,
    }
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's ``orig``, ``__cause__``, ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__context__, item.__cause__, getattr(item, "orig", None)])
    return seen


def _one_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "").startswith(_PG_UNAVAILABLE_PREFIXES)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
        # The client side of a lost connection ("connection is closed", "connection was
        # closed in the middle of operation", a failed release after a drop).
        return True
    if isinstance(exc, sqlite3.DatabaseError):
        code = getattr(exc, "sqlite_errorcode", None)
        if str(exc).startswith("no such table"):  # a file replaced but not yet migrated
            return True
        return code is not None and code & 0xFF in _SQLITE_UNAVAILABLE
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be used now (503), not a bug (500)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    return any(_one_unavailable(item) for item in _causes(exc))


class OutageLog:
    """Logs a database outage once when it starts, every minute while it lasts, and once
    when it ends; never a traceback per request. Counts every failure
    (``dialbase_database_errors_total``)."""

    REPEAT_SECONDS = 60.0

    def __init__(self) -> None:
        self.down_since: float | None = None
        self._failures = 0
        self._logged_at = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        DATABASE_ERRORS.inc()
        self._failures += 1
        if self.down_since is None:
            self.down_since = self._logged_at = now
            log.error("database unavailable: %s", _describe(exc))
        elif now - self._logged_at >= self.REPEAT_SECONDS:
            self._logged_at = now
            log.error(
                "database still unavailable after %.0f s (%d failures): %s",
                now - self.down_since,
                self._failures,
                _describe(exc),
            )

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.warning(
                "database available again after %.1f s (%d failures)",
                time.monotonic() - self.down_since,
                self._failures,
            )
            self.down_since = None
            self._failures = 0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no details'}"


outages = OutageLog()  # one per process: every path reports to it
