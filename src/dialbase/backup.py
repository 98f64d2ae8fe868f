"""``dialbase db backup FILE``: a consistent copy of a SQLite database, taken while the
server runs.

SQLite's online backup API (``sqlite3.Connection.backup``) copies every page in one step,
inside one read transaction: in WAL mode readers never block writers, so the server keeps
writing, and the copy is the database as of the moment that transaction began (every
transaction committed before it, none after; leads acknowledged before the backup started
are in it). The copy is written to ``FILE.part``, checked (``PRAGMA quick_check``), synced
to disk and only then renamed to ``FILE``: a ``FILE`` that exists is always a whole backup.
An existing ``FILE`` is replaced only with ``force`` (its stale ``-wal``/``-shm`` files are
removed with it: SQLite would otherwise read them as part of the new file).

PostgreSQL is backed up with ``pg_dump`` (docs/deploy.md, "Backups and restores").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dialbase.db import backend_name, sqlite_path

POSTGRES = (
    "dialbase db backup copies SQLite databases; back up PostgreSQL with pg_dump"
    " (docs/deploy.md, Backups and restores)"
)
BUSY_TIMEOUT_MS = 10_000


class BackupError(Exception):
    """A backup refused or failed; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Backup:
    source: Path
    target: Path
    size: int  # bytes


def backup_sqlite(database_url: str, target: Path, *, force: bool = False) -> Backup:
    """Copy the SQLite database of ``database_url`` to ``target``."""
    if backend_name(database_url) != "sqlite":
        raise BackupError(POSTGRES)
    source = Path(sqlite_path(database_url))
    _check(source, target, force)
    part = target.with_name(target.name + ".part")
    _remove(part, Path(f"{part}-journal"), Path(f"{part}-wal"), Path(f"{part}-shm"))
    try:
        _copy(source, part)
        if force:
            _remove(Path(f"{target}-wal"), Path(f"{target}-shm"))
        os.replace(part, target)
        _sync_folder(target.parent)
    finally:
        _remove(part)
    return Backup(source, target, target.stat().st_size)


def _check(source: Path, target: Path, force: bool) -> None:
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    if target.is_dir():
        raise BackupError(f"{target} is a folder: name the backup file")
    if not target.parent.is_dir():
        raise BackupError(f"there is no folder {target.parent} to write {target.name} in")
    if target.exists():
        if target.resolve() == source.resolve():
            raise BackupError(f"{target} is the database itself: name another file")
        if not force:
            raise BackupError(f"{target} exists: give --force to replace it")


def _copy(source: Path, part: Path) -> None:
    # Opened read-write (a WAL database's readers need its -shm file), never written to.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dst = sqlite3.connect(part)
        try:
            src.backup(dst)  # every page in one step: one read transaction, one snapshot
            found = dst.execute("PRAGMA quick_check").fetchone()[0]
            if found != "ok":
                raise BackupError(f"the copy failed its check ({found}); {source} was not changed")
        finally:
            dst.close()
    finally:
        src.close()
    with part.open("rb+") as written:
        os.fsync(written.fileno())


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
