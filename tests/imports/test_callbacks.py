"""Callbacks: the summary's exact JSON, retries after a 500 and after no answer, a private
URL refused when it is sent, state kept in the import's row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from dialbase.db import session_scope
from dialbase.imports.callbacks import CallbackSender, retry_delay
from dialbase.imports.engine import run_import
from dialbase.imports.models import Import
from tests.imports.support import Acme, acme, queue, record, sessions

__all__ = ["acme", "sessions"]  # fixtures


class Receiver:
    """A local HTTP server answering the statuses it is given, in turn (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[object] = []
        self.silent = False
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        if self.silent:
            await asyncio.sleep(5)
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.close()


async def _done_import(sessions, acme: Acme, settings, url: str) -> int:  # type: ignore[no-untyped-def]
    import_id = await queue(
        sessions,
        acme,
        ["PhoneNumber"],
        [["+919812345601"], ["1"], ["+919812345601"]],
        callback_url=url,
    )
    await run_import(sessions, settings, import_id)
    async with session_scope(sessions) as session:  # fixed times, to write the body out
        await session.execute(
            update(Import)
            .where(Import.id == import_id)
            .values(
                started_at=datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC),
                finished_at=datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC),
            )
        )
    return import_id


def _sender(sessions, settings, timeout: float = 10.0) -> CallbackSender:  # type: ignore[no-untyped-def]
    return CallbackSender(sessions, settings, httpx.AsyncClient(timeout=timeout, trust_env=False))


async def _due_now(sessions, import_id: int) -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        await session.execute(
            update(Import).where(Import.id == import_id).values(callback_next_at=datetime.now(UTC))
        )


async def test_the_summary_is_posted_exactly_and_retried_after_a_500(
    sessions, acme: Acme, backend, receiver: Receiver
):
    settings = backend.settings(allow_private_callbacks=True)
    import_id = await _done_import(sessions, acme, settings, receiver.url)
    receiver.statuses = [500]
    sender = _sender(sessions, settings)
    before = datetime.now(UTC)
    assert await sender.send_due() == 1
    failed = await record(sessions, import_id)
    assert (failed.callback_attempts, failed.callback_error, failed.callback_done_at) == (
        1,
        "HTTP 500",
        None,
    )
    assert failed.callback_next_at is not None
    assert before + timedelta(seconds=4) < failed.callback_next_at < before + timedelta(seconds=10)
    assert await sender.send_due() == 0  # not due yet
    await _due_now(sessions, import_id)
    assert await sender.send_due() == 1
    done = await record(sessions, import_id)
    assert (done.callback_attempts, done.callback_error, done.callback_next_at) == (2, None, None)
    assert done.callback_done_at is not None
    summary = {
        "data": {
            "totalNoUploaded": "3",
            "numbersProcessed": "1",
            "numbersNotProcessed": "2",
            "failedFilePath": f"https://dialbase.example/v1/imports/{import_id}/failed.csv",
            "transactionId": str(import_id),
            "status": "Success",
            "message": "File Successfully uploaded.",
            "startDateTime": "2026-11-28 15:30:01",
            "endDateTime": "2026-11-28 15:30:02",
        }
    }
    assert receiver.bodies == [summary, summary]
    await sender.close()


async def test_no_answer_is_retried(sessions, acme: Acme, backend, receiver: Receiver):
    settings = backend.settings(allow_private_callbacks=True)
    import_id = await _done_import(sessions, acme, settings, receiver.url)
    receiver.silent = True
    sender = _sender(sessions, settings, timeout=0.3)
    assert await sender.send_due() == 1
    failed = await record(sessions, import_id)
    assert (failed.callback_attempts, failed.callback_error) == (1, "no answer: ReadTimeout")
    assert failed.callback_next_at is not None and failed.callback_done_at is None
    receiver.silent = False
    await receiver.close()  # nobody listening: refused
    await _due_now(sessions, import_id)
    assert await sender.send_due() == 1
    refused = await record(sessions, import_id)
    assert (refused.callback_attempts, refused.callback_error) == (2, "no answer: ConnectError")
    assert refused.callback_next_at is not None
    await sender.close()
    await receiver.start()


async def test_a_private_url_is_refused_when_sent(
    sessions, acme: Acme, backend, receiver: Receiver
):
    settings = backend.settings(allow_private_callbacks=False)
    import_id = await _done_import(sessions, acme, settings, receiver.url)
    sender = _sender(sessions, settings)
    assert await sender.send_due() == 1
    given_up = await record(sessions, import_id)
    assert given_up.callback_error is not None
    assert given_up.callback_error.startswith("gave up: refused: ")
    assert (given_up.callback_next_at, given_up.callback_done_at) == (None, None)
    assert receiver.bodies == []
    await sender.close()


def test_retry_delays_grow_from_5_s_to_an_hour():
    assert [retry_delay(n) for n in range(1, 9)] == [5, 15, 45, 135, 405, 1215, 3600, 3600]
