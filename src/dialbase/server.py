"""Running the HTTP server: uvicorn, configured from the settings, with bounded reads.

uvicorn's httptools protocol waits forever for a request head that never completes and
accepts heads of any size. ``LimitedHttpToolsProtocol`` adds three bounds per connection:

- the request head (request line and headers) must be complete within ``header_timeout``
  seconds, counted from the connection (first request) or from the request's first byte
  (later requests; between requests uvicorn's keep-alive timeout applies). On expiry the
  connection is answered 408 and closed.
- the head may not exceed ``max_header_bytes``: answered 431 and closed.
- the body must be complete within ``body_timeout`` seconds of the end of the head; on
  expiry the connection is closed (the application sees a disconnect). Time during which
  uvicorn itself stopped reading (the application has not consumed the body yet) does
  not count against the client.

The hot path adds a few attribute tests and an addition per received chunk. Timers
(``loop.call_later`` handles) are armed only for a head or body a chunk left incomplete,
and once per connection for its first request.
"""

from __future__ import annotations

import asyncio
import functools
import http
import logging
from dataclasses import dataclass
from typing import Any, cast

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from dialbase.config import Settings
from dialbase.observability.logs import log_config
from dialbase.observability.multiproc import multiprocess_dir

logger = logging.getLogger("dialbase.server")
WORKER_PING_SECONDS = 60  # a worker's longest silence to the supervisor (start included)


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str | None,
) -> None:
    """Serve ``dialbase.app:create_app`` until stopped.

    X-Forwarded-For is trusted only from ``forwarded_allow_ips``, else from the setting
    ``DIALBASE_FORWARDED_ALLOW_IPS``; from no one when both are unset. The request log is
    dialbase's (``DIALBASE_ACCESS_LOG``, ``observability.logs``); uvicorn's access log,
    which writes paths and query strings as sent (keys among them), stays off. With
    several workers the metrics are shared through a fresh ``PROMETHEUS_MULTIPROC_DIR``.
    """
    trusted = forwarded_allow_ips
    if trusted is None:
        trusted = settings.forwarded_allow_ips
    trusted = trusted or None  # "" trusts no one too
    with multiprocess_dir(workers):
        _run(settings, host=host, port=port, workers=workers, trusted=trusted)


def _run(settings: Settings, *, host: str, port: int, workers: int, trusted: str | None) -> None:
    uvicorn.run(
        "dialbase.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=protocol_factory(settings),
        ws="none",
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format, settings.access_log),
        access_log=False,
        proxy_headers=trusted is not None,
        forwarded_allow_ips=trusted,
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # With several workers, uvicorn restarts one that does not answer its supervisor's
        # ping in time (5 s by default): on a loaded host a worker still importing its
        # modules was killed and restarted over and over, and the server never came up.
        timeout_worker_healthcheck=WORKER_PING_SECONDS,
    )


@dataclass(frozen=True)
class ReadLimits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(settings.max_header_bytes, settings.header_timeout, settings.body_timeout)


def protocol_factory(settings: Settings) -> type[asyncio.Protocol]:
    """What uvicorn's ``http=`` takes: it only ever calls it with keyword arguments.

    A ``functools.partial`` rather than a class so that the limits travel with uvicorn's
    config when it is pickled to worker processes (``--workers`` > 1).
    """
    factory = functools.partial(LimitedHttpToolsProtocol, limits=ReadLimits.from_settings(settings))
    return cast("type[asyncio.Protocol]", factory)


def _response(status: int) -> bytes:
    reason = http.HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(reason)}\r\nconnection: close\r\n\r\n{reason}"
    ).encode("ascii")


_HEAD_TOO_LARGE = _response(431)
_HEAD_TIMEOUT = _response(408)


class _HeadTooLarge(Exception):
    """Raised from the parser callback; uvicorn turns it into ``send_400_response``."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ReadLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._in_head = True  # between requests or inside a head: not inside a body
        self._head_started = False  # inside a head: its first byte was parsed
        self._head_bytes = 0  # received while in a head (approximate: whole chunks)
        self._head_too_large = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._reject_head()
        elif self._deadline is None:
            # Timers only for what this chunk left incomplete: a request that arrives in
            # one piece (the usual case) costs none.
            if not self._in_head:
                self._arm(self.limits.body_timeout, self._body_expired)
            elif self._head_started or self.cycle is None or self.cycle.response_complete:
                # Inside a head, or stray bytes between requests (which also stopped
                # uvicorn's keep-alive timer).
                self._arm(self.limits.header_timeout, self._head_expired)

    # Parser callbacks (called from ``data_received``).
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLarge
        self._in_head = self._head_started = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._reject_head()
        else:
            super().send_400_response(msg)

    # The bounds.
    def _arm(self, delay: float, callback: Any) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _reject_head(self) -> None:
        self._disarm()
        logger.info("%s: request head over %d bytes", self._peer(), self.limits.max_header_bytes)
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _head_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still being produced: let it finish, then close.
            self.cycle.keep_alive = False
            return
        # Debug only: browsers' idle preconnections end this way too.
        logger.debug(
            "%s: request head incomplete after %s s", self._peer(), self.limits.header_timeout
        )
        if self._head_bytes:  # a connection that sent nothing is closed without a word
            self.transport.write(_HEAD_TIMEOUT)
        self.transport.close()

    def _body_expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # uvicorn stopped reading, not the client
            self._arm(self.limits.body_timeout, self._body_expired)
            return
        logger.debug(
            "%s: request body incomplete after %s s", self._peer(), self.limits.body_timeout
        )
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"
