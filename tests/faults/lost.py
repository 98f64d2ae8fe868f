"""A database connection lost at a chosen statement, as the driver reports it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy import event

from tests.conftest import Backend


def lost_connection(backend: Backend) -> BaseException:
    """What the driver raises when the connection is lost (SQLite: an I/O error)."""
    if backend.name == "postgres":
        return asyncpg.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
    return error


@contextlib.contextmanager
def fails_at(app: Any, backend: Backend, point: str) -> Iterator[None]:
    """The connection is lost before each statement starting with ``point`` (upper case),
    or at the commit when ``point`` is "COMMIT"."""
    engine = app.services.engine.sync_engine

    def before_statement(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(point):
            raise lost_connection(backend)

    def before_commit(conn):  # type: ignore[no-untyped-def]
        raise lost_connection(backend)

    name, hook = (
        ("commit", before_commit)
        if point == "COMMIT"
        else ("before_cursor_execute", before_statement)
    )
    event.listen(engine, name, hook)
    try:
        yield
    finally:
        event.remove(engine, name, hook)
