"""The process's import runner: claims imports, adds them chunk by chunk, sends callbacks.

Two loops, started and closed by the application's lifespan:

- imports: claim one import that is queued, or running with a lapsed lease (its worker
  was killed), or held by this runner (a chunk failed and is redone), by moving its lease
  (``claimed_until``) ahead in a compare-and-set update; then add its chunks
  (``imports.engine``), each one renewing the lease. A failed chunk rolled back: the
  runner waits (growing, at most ``MAX_BACKOFF``) and redoes it from the same cursor.
- callbacks: every ``poll`` seconds, the due callbacks (``imports.callbacks``).

Every worker of a deployment runs both; the row lock of each chunk and the claim of each
callback keep them from doing any work twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.config import Settings
from dialbase.db import backend_name, session_scope, utcnow
from dialbase.errors import database_unavailable, outages
from dialbase.imports.callbacks import CallbackSender
from dialbase.imports.engine import Work, limits_of, run_chunk
from dialbase.imports.files import UPLOADS
from dialbase.imports.models import Import, ImportStatus
from dialbase.sqlite_writer import SQLiteWriter

log = logging.getLogger("dialbase.imports")

POLL_SECONDS = 0.5
MAX_BACKOFF = 10.0
ORPHAN_SECONDS = 3600.0  # an upload file untouched this long, of no import, is swept
CLOSE_SECONDS = 15.0  # the longest a closing runner waits for its step in flight


class ImportRunner:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        sqlite: SQLiteWriter | None = None,
        *,
        poll: float = POLL_SECONDS,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # SQLite chunks go through the process's writer, queued with its other work; a
        # runner given none (a test's) keeps its own.
        self._own_sqlite = sqlite is None and backend_name(settings.database_url) == "sqlite"
        self._sqlite = SQLiteWriter(settings) if self._own_sqlite else sqlite
        self._settings = settings
        self._poll = poll
        self._lease = settings.import_lease_seconds
        self._limits = limits_of(settings)
        self._work: Work | None = None
        self._owner = Work(0, self._limits).owner
        self.callbacks = CallbackSender(sessionmaker, settings, client)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._sweep(), name="dialbase-upload-sweep"),
            asyncio.create_task(self._loop(self.import_step), name="dialbase-imports"),
            asyncio.create_task(self._loop(self.callbacks.send_due), name="dialbase-callbacks"),
        ]

    async def close(self) -> None:
        """Stop between two steps: a step in flight (a chunk, a callback) is let finish, up
        to ``CLOSE_SECONDS``, and only then cancelled. Cancelling a database call midway
        can leave a pooled connection that never answers again (aiosqlite), and the
        application's shutdown would wait on it for good."""
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
            for task in pending:
                task.cancel()
            if pending:  # a cancelled step's own clean-up is not waited for without end
                _, stuck = await asyncio.wait(pending, timeout=CLOSE_SECONDS)
                for task in stuck:
                    log.warning("the import runner's %s did not stop", task.get_name())
        self._tasks = []
        await self.callbacks.close()
        if self._own_sqlite and self._sqlite is not None:
            await self._sqlite.close()

    async def _sweep(self) -> None:
        """Once a start: delete the upload folder's files a killed process left behind."""
        folder = Path(self._settings.import_dir).resolve() / UPLOADS
        try:
            swept = await sweep_uploads(self._sessionmaker, folder, ORPHAN_SECONDS)
        except Exception as exc:  # the next start tries again
            if not database_unavailable(exc):
                log.error("sweeping the upload folder failed", exc_info=exc)
            return
        if swept:
            log.info("deleted %d files a stopped process left in %s", swept, folder)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the runner is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _loop(self, step: Callable[[], Awaitable[object]]) -> None:
        backoff = self._poll
        while not self._stopping.is_set():
            try:
                busy = await step()
                backoff = self._poll
            except Exception as exc:
                if database_unavailable(exc):
                    outages.failed(exc)
                else:
                    log.error("the import runner failed a step", exc_info=exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if not busy:
                await self._pause(self._poll)

    async def import_step(self) -> bool:
        """Add one chunk of this runner's import, claiming one first if it has none;
        whether there was work."""
        if self._work is None:
            import_id = await self._claim()
            if import_id is None:
                return False
            self._work = Work(
                import_id, self._limits, self._lease, owner=self._owner, sqlite=self._sqlite
            )
        state = await run_chunk(self._sessionmaker, self._work)
        if state is None or state.status == ImportStatus.DONE:
            self._work = None
        return True

    async def _claim(self) -> int | None:
        now = utcnow()
        claimable = or_(
            Import.status == ImportStatus.QUEUED,
            Import.claimed_until.is_(None),
            Import.claimed_until < now,
            Import.claimed_by == self._owner,
        )
        async with self._sessionmaker() as session:
            candidates = list(
                await session.scalars(
                    select(Import.id)
                    .where(Import.status != ImportStatus.DONE, claimable)
                    .order_by(Import.id)
                    .limit(5)
                )
            )
        for import_id in candidates:
            async with session_scope(self._sessionmaker) as session:
                claimed = await session.execute(
                    update(Import)
                    .where(Import.id == import_id, Import.status != ImportStatus.DONE, claimable)
                    .values(
                        status=ImportStatus.RUNNING.value,
                        claimed_by=self._owner,
                        claimed_until=now + timedelta(seconds=self._lease),
                    )
                )
            if claimed.rowcount:  # type: ignore[attr-defined]
                return import_id
        return None


async def sweep_uploads(
    sessionmaker: async_sessionmaker[AsyncSession], folder: Path, older_than: float
) -> int:
    """Delete the files of ``folder`` untouched for ``older_than`` seconds that no import
    still to run reads: an upload or a CLI copy cut short by a killed process (an upload
    being received is written to continually, and a queued import keeps its file)."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than
    stale = [path for path in folder.iterdir() if path.is_file() and path.stat().st_mtime < cutoff]
    if not stale:
        return 0
    async with sessionmaker() as session:
        in_use = set(
            await session.scalars(
                select(Import.file_path).where(
                    Import.status != ImportStatus.DONE, Import.file_path.is_not(None)
                )
            )
        )
    swept = 0
    for path in stale:
        if str(path) not in in_use:
            path.unlink(missing_ok=True)
            swept += 1
    return swept
