"""The outermost middleware: every request gets an id, is counted, timed and (when the
request log is on) logged.

The id is the request's ``X-Request-ID`` when it is sane (1 to ``MAX_ID_CHARS`` printable
ASCII characters, no space), else a new one (16 hex digits); it is echoed in the answer's
``X-Request-ID`` header and written in every log line of the request.

The endpoint (the ``endpoint`` label, the request log's field) is the route template
FastAPI matched, the hot path's or the older endpoint's fixed path, or ``UNMATCHED``: never
the path as sent. A request whose client left before any answer is counted with status 499.
Nothing here can fail a request: it only reads the scope and the answer's first message.
"""

from __future__ import annotations

import logging
import time
from random import getrandbits

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialbase.compat import legacy_routes
from dialbase.compat.routes import PATH as ADD_PATH
from dialbase.observability import logs
from dialbase.observability.metrics import RequestMetrics, method_label

HEADER = b"x-request-id"
MAX_ID_CHARS = 128
UNMATCHED = "unmatched"
CLIENT_LEFT = 499

_access = logging.getLogger(logs.ACCESS_LOGGER)


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER:
            if 1 <= len(value) <= MAX_ID_CHARS and all(0x21 <= b <= 0x7E for b in value):
                return value.decode("ascii")
            break
    return f"{getrandbits(64):016x}"  # unique enough for an id; not a secret


def endpoint_of(scope: Scope) -> str:
    path: str = scope["path"]
    if path == ADD_PATH:
        return ADD_PATH
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", UNMATCHED))
    if legacy_routes.matches(path):
        return legacy_routes.PREFIX
    return UNMATCHED


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info, token = logs.begin(request_id(scope))
        echoed = (HEADER, info.request_id.encode("ascii"))
        status = CLIENT_LEFT

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status == CLIENT_LEFT:  # the server answers 500 for it
                status = 500
            raise
        finally:
            seconds = time.perf_counter() - started
            endpoint = endpoint_of(scope)
            method = method_label(scope["method"])
            self.metrics.observe(method, endpoint, status, seconds)
            if _access.isEnabledFor(logging.INFO):
                client = scope.get("client")
                address = client[0] if client else "-"
                logs.access_line(info, address, method, endpoint, status, seconds)
            logs.end(token)


def observe(app: ASGIApp) -> ASGIApp:
    return Observe(app)
