"""A real HTTP receiver for webhook tests, and helpers to set webhooks and read events.

``Receiver`` is an ``http.server`` on 127.0.0.1 in a thread of its own: it records every
request (headers and body) and answers ``status`` (200 by default; a test sets 500 to
make deliveries fail, or ``answer`` to decide per request). ``stop()`` closes its port
(connections are refused) and ``start()`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook as Verifier

from dialbase.app import create_app
from dialbase.config import Settings
from dialbase.db import session_scope
from dialbase.webhooks.models import WebhookEvent

AUTH = httpx.BasicAuth("acme", "acme-secret-key")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the receiver answered

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, verified with the Standard Webhooks library (raises if not)."""
        payload: dict[str, Any] = Verifier(secret).verify(self.body, self.headers)
        return payload

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.answer: Callable[[Received], int] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                item = Received(
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with receiver._lock:
                    receiver.received.append(item)
                status = receiver.answer(item) if receiver.answer else receiver.status
                item.status = status
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in the order they came."""
        with self._lock:
            return [item for item in self.received if 200 <= item.status < 300]

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return [item.json for item in self.received]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def hook_settings(settings: Settings, **overrides: Any) -> Settings:
    """Settings for webhook tests: local receivers allowed, short retries, and the
    dispatcher's loop asleep (tests call ``step()`` themselves) unless overridden."""
    values: dict[str, Any] = {
        "allow_private_callbacks": True,
        "webhook_retry_base_seconds": 0.01,
        "webhook_retry_max_seconds": 0.05,
        "webhook_poll_seconds": 3600.0,
        "webhook_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Any]:
    app = create_app(settings, migrate=False)
    async with app.lifespan():
        yield app


def client_of(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://dialbase.test")


async def put_webhook(
    client: httpx.AsyncClient, url: str, campaign: str | None = None, **body: Any
) -> httpx.Response:
    path = f"/v1/campaigns/{campaign}/webhooks" if campaign else "/v1/webhooks"
    return await client.put(path, json={"url": url, **body}, auth=AUTH)


async def set_webhook(
    client: httpx.AsyncClient, url: str, campaign: str | None = None, **body: Any
) -> str:
    """Set a webhook; its generated secret."""
    response = await put_webhook(client, url, campaign, **body)
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


async def outbox(sessions: Any) -> list[WebhookEvent]:
    async with session_scope(sessions, read_only=True) as session:
        return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


async def drain(app: Any, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run the dispatcher's steps until ``until()`` holds (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the events did not arrive in time"
        if not await app.services.webhooks.step():
            await _sleep(0.02)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)
