"""HTTP in, HTTP out for ``POST /ca_apis/AddCampaignData``: the hot path.

A bare ASGI endpoint on purpose. ``app.Dialbase`` hands this one path to it before
FastAPI's routing (but after dialbase's own middleware), the body is parsed with orjson,
and the contract's checks are hand-ordered in ``compat.service``. Its OpenAPI
description is written by hand in ``compat.schemas`` and merged into the generated
document.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from dialbase.compat import fields
from dialbase.compat.answers import Answer, false_body
from dialbase.compat.auth import Credentials
from dialbase.responses import compat_answer
from dialbase.services import Services

log = logging.getLogger("dialbase")

PATH = "/ca_apis/AddCampaignData"
NOT_JSON = "The request body must be a JSON object."
_JSON = (b"content-type", b"application/json")
# A body over the limit is still read, up to this many bytes, and thrown away before the
# 413 is sent: a client still sending when the server closes would see a reset instead.
DISCARD_BYTES = 4 * 1024 * 1024


class ClientGone(Exception):
    pass


def _error(status: int, message: str) -> Answer:
    return Answer(false_body(message), status)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (the rest read and discarded, up
    to ``DISCARD_BYTES``)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            while more and size <= DISCARD_BYTES:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class AddCampaignDataEndpoint:
    """The ASGI endpoint; its services are set by the application's lifespan."""

    services: Services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except ClientGone:
            return
        except Exception as exc:  # one place turns every failure into an answer
            answer = compat_answer(exc)
        headers = [_JSON]
        headers.extend((k.lower().encode(), v.encode()) for k, v in answer.headers.items())
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(answer.body)})

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        services = self.services
        limit = services.settings.max_body_bytes
        declared = _content_length(scope)
        unread = declared is not None and declared > DISCARD_BYTES  # refused unread
        raw = None if unread else await read_body(receive, limit)
        if raw is None:
            return _error(413, f"The request body is larger than {limit} bytes.")
        try:
            payload: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, NOT_JSON)
        if not isinstance(payload, dict):
            return _error(400, NOT_JSON)
        try:
            body = fields.split_body(payload, services.field_limits)
        except fields.FieldLimitError as exc:
            return _error(413, str(exc))
        except fields.FieldValueError as exc:
            return _error(400, str(exc))
        client = scope.get("client")
        address = client[0] if client else "unknown"
        credentials = Credentials.from_scope(scope)
        return await services.add_campaign_data.handle(body, credentials, address)
