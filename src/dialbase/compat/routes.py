"""HTTP in, HTTP out for ``POST /ca_apis/AddCampaignData``: the hot path.

A bare ASGI endpoint on purpose. ``DialbaseApp`` hands this one path to it before any
middleware or routing, the body is parsed with orjson, and the contract's checks are
hand-ordered in ``compat.service``. Its OpenAPI description is written by hand in
``compat.schemas`` and merged into the generated document.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from dialbase.compat import fields
from dialbase.compat.service import AddCampaignData, Answer
from dialbase.db import DATABASE_ERRORS
from dialbase.errors import DATABASE_DOWN, DialbaseError, compat_error_body

log = logging.getLogger("dialbase")

PATH = "/ca_apis/AddCampaignData"
NOT_JSON = "The request body must be a JSON object."
INTERNAL = "Internal error; nothing was stored. The error is logged on the server."
_JSON = (b"content-type", b"application/json")


class ClientGone(Exception):
    pass


def _error(status: int, message: str) -> Answer:
    return Answer(compat_error_body(message), status)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> tuple[str | None, int | None]:
    """The ``apiKey`` header (any case) and the declared content length."""
    api_key: str | None = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"apikey" and api_key is None:
            api_key = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return api_key, length


class AddCampaignDataEndpoint:
    """The ASGI endpoint; reads the service and limits from the application's state."""

    def __init__(self, state: Any) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except ClientGone:
            return
        except DialbaseError as exc:
            answer = _error(exc.status, exc.message)
        except DATABASE_ERRORS as exc:
            log.error("database unavailable: %s", exc)
            answer = _error(503, DATABASE_DOWN)
        except Exception:
            log.exception("AddCampaignData failed")
            answer = _error(500, INTERNAL)
        headers = [_JSON]
        headers.extend((k.lower().encode(), v.encode()) for k, v in answer.headers.items())
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(answer.body)})

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        settings = self.state.settings
        limit: int = settings.max_body_bytes
        header_key, declared = _headers(scope)
        raw = (
            None if declared is not None and declared > limit else await _read_body(receive, limit)
        )
        if raw is None:
            return _error(413, f"The request body is larger than {limit} bytes.")
        try:
            payload: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, NOT_JSON)
        if not isinstance(payload, dict):
            return _error(400, NOT_JSON)
        try:
            body = fields.split_body(payload, self.state.field_limits)
        except fields.FieldLimitError as exc:
            return _error(413, str(exc))
        except fields.FieldValueError as exc:
            return _error(400, str(exc))
        client = scope.get("client")
        service: AddCampaignData = self.state.add_campaign_data
        return await service.handle(body, header_key, client[0] if client else "unknown")
