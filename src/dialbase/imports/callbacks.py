"""The summary POSTed to an import's ``callBackUrl`` once it is done, and its delivery.

State lives in the import's row, so delivery survives restarts: ``callback_next_at`` is
when the next attempt is due (set to the finish time by the last chunk), and is moved
``SEND_LEASE`` ahead before sending, so that one worker sends it at a time. Then:

- a 2xx answer: delivered (``callback_done_at``);
- any other answer, or none (refused connection, timeout): the next attempt waits
  ``retry_delay(attempts)``: 5 s, then three times longer each time, at most an hour,
  until 24 hours after the import finished; then it is given up (``callback_error``);
- the URL is checked again just before each attempt (``callback_urls``): a URL now
  refused (its name resolves to a private address) is given up at once.

Redirects are not followed (they would escape the check): a 3xx is a failed attempt.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialbase.accounts.models import Account
from dialbase.config import Settings
from dialbase.db import session_scope, utcnow
from dialbase.imports.models import Import

log = logging.getLogger("dialbase.imports")

FIRST_RETRY = 5.0
MAX_DELAY = 3600.0
GIVE_UP_AFTER = timedelta(hours=24)
SEND_LEASE = timedelta(seconds=60)
SEND_TIMEOUT = 10.0
BATCH = 10
DEFAULT_BASE_URL = "http://localhost:8000"
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"


def retry_delay(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failed ones (1 or more)."""
    return float(min(FIRST_RETRY * 3 ** (max(failures, 1) - 1), MAX_DELAY))


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime(LOCAL_FORMAT) if value is not None else ""


def payload(record: Import, zone: ZoneInfo, base_url: str) -> dict[str, Any]:
    failed = f"{base_url.rstrip('/')}/v1/imports/{record.id}/failed.csv"
    return {
        "data": {
            "totalNoUploaded": str(record.total),
            "numbersProcessed": str(record.added),
            "numbersNotProcessed": str(record.duplicates + record.rejected),
            "failedFilePath": failed,
            "transactionId": str(record.id),
            "status": "Success",
            "message": "File Successfully uploaded.",
            "startDateTime": _local(record.started_at or record.finished_at, zone),
            "endDateTime": _local(record.finished_at, zone),
        }
    }


async def check_url(url: str, allow_private: bool) -> str | None:
    """None when ``url`` may be called now; else why not (``callback_urls``)."""
    from dialbase.callback_urls import check_callback_url

    return await asyncio.to_thread(check_callback_url, url, allow_private)


class CallbackSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            timeout=SEND_TIMEOUT, follow_redirects=False, trust_env=False
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send_due(self) -> int:
        """Attempt every due callback this worker could claim; how many it attempted."""
        now = utcnow()
        async with self._sessionmaker() as session:
            due = list(
                await session.execute(
                    select(Import.id, Import.callback_next_at)
                    .where(Import.callback_next_at <= now, Import.callback_done_at.is_(None))
                    .order_by(Import.callback_next_at)
                    .limit(BATCH)
                )
            )
        attempted = 0
        for import_id, due_at in due:
            if due_at is None:
                continue
            claimed = await self._claim(import_id, due_at)
            if claimed is not None:
                attempted += 1
                await self._attempt(*claimed)
        return attempted

    async def _claim(self, import_id: int, due_at: datetime) -> tuple[Import, ZoneInfo] | None:
        async with session_scope(self._sessionmaker) as session:
            moved = await session.execute(
                update(Import)
                .where(Import.id == import_id, Import.callback_next_at == due_at)
                .values(callback_next_at=utcnow() + SEND_LEASE)
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                return None  # another worker took it
            record = await session.get(Import, import_id)
            account = await session.get(Account, record.account_id) if record else None
            if record is None or account is None:
                return None
            return record, ZoneInfo(account.timezone)

    async def _attempt(self, record: Import, zone: ZoneInfo) -> None:
        url = record.callback_url or ""
        refused = await check_url(url, self._settings.allow_private_callbacks)
        if refused is not None:
            await self._settle(record, error=f"refused: {refused}", retry=False)
            return
        base = self._settings.public_url or record.public_url or DEFAULT_BASE_URL
        body = payload(record, zone, base)
        try:
            answer = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            await self._settle(record, error=f"no answer: {type(exc).__name__}", retry=True)
            return
        if 200 <= answer.status_code < 300:
            await self._settle(record, error=None, retry=False)
        else:
            await self._settle(record, error=f"HTTP {answer.status_code}", retry=True)

    async def _settle(self, record: Import, *, error: str | None, retry: bool) -> None:
        now = utcnow()
        attempts = record.callback_attempts + 1
        values: dict[str, Any] = {"callback_attempts": attempts, "callback_error": error}
        if error is None:
            values.update(callback_done_at=now, callback_next_at=None)
        else:
            next_at = now + timedelta(seconds=retry_delay(attempts))
            finished = record.finished_at or now
            if not retry or next_at - finished > GIVE_UP_AFTER:
                values.update(callback_next_at=None, callback_error=f"gave up: {error}")
                log.warning("callback of import %s given up: %s", record.id, error)
            else:
                values.update(callback_next_at=next_at)
        async with session_scope(self._sessionmaker) as session:
            await session.execute(update(Import).where(Import.id == record.id).values(**values))
