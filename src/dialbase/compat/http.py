"""What the family's FastAPI routes share: reading a JSON body by hand, and answering an
``Answer``.

The family's bodies are read raw and parsed with orjson: their keys match in any letter
case (``auth.lower_keys``) and a GET or DELETE may carry one. A body that is not a JSON
object is HTTP 400 and one over ``DIALBASE_MAX_BODY_BYTES`` is 413, both in the family's
``{"status": "false", ...}`` shape, as AddCampaignData answers them (``compat.routes``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dialbase.compat.answers import Answer, false_body
from dialbase.compat.auth import Credentials, lower_keys
from dialbase.compat.routes import DISCARD_BYTES, NOT_JSON
from dialbase.services import services_of

Serve = Callable[[dict[str, Any], Credentials, str], Awaitable[Answer]]


class BadRequest(Exception):
    """The request cannot be read: ``answer`` says why (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.answer = Answer(false_body(message), status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body; ``BadRequest`` 413 past ``limit`` bytes (the rest read and thrown away up
    to ``DISCARD_BYTES``, so that a client still sending sees the answer, not a reset)."""
    too_large = BadRequest(413, f"The request body is larger than {limit} bytes.")
    discard = max(DISCARD_BYTES, limit)  # a limit above it must never cut a body short
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > discard:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > discard:
                break
            if size <= limit:
                chunks.append(chunk)
    except ClientDisconnect:  # nobody to answer; nothing was done
        raise BadRequest(400, "The client went away.") from None
    if size > limit:
        raise too_large
    return b"".join(chunks)


async def json_values(
    request: Request,
    *,
    query: bool = False,
    text_keys: tuple[str, ...] = (),
    limit: int | None = None,
) -> dict[str, Any]:
    """The body's keys lower-cased. With ``query``, the query string's parameters too
    (the body's win, and an empty body is no body). ``text_keys`` (lower-cased) must not
    hold a NUL character, which PostgreSQL text refuses. ``limit``: the largest body in
    bytes (default ``DIALBASE_MAX_BODY_BYTES``)."""
    if limit is None:
        limit = services_of(request).settings.max_body_bytes
    raw = await read_body(request, limit)
    payload: Any = {}
    if raw.strip() or not query:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest(400, NOT_JSON) from None
        if not isinstance(payload, dict):
            raise BadRequest(400, NOT_JSON)
    values: dict[str, Any] = {}
    if query:
        first: dict[str, str] = {}
        for name, given in request.query_params.multi_items():
            first.setdefault(name, given)  # the first of a repeated parameter
        values = lower_keys(first)
    values.update(lower_keys(payload))
    for key in text_keys:
        value = values.get(key)
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(400, f"The value of {key!r} contains a NUL character (U+0000).")
    return values


def respond(answer: Answer) -> Response:
    return Response(
        orjson.dumps(answer.body),
        status_code=answer.status,
        headers=answer.headers,
        media_type="application/json",
    )


def address(request: Request) -> str:
    """The client's address (behind trusted proxies, the forwarded one)."""
    return request.client.host if request.client else "unknown"


async def serve(
    request: Request, endpoint: Serve, *, query: bool = False, text_keys: tuple[str, ...] = ()
) -> Response:
    """Read the request's values (``json_values``) and answer what ``endpoint`` makes of
    them, with the caller's credentials and address."""
    try:
        values = await json_values(request, query=query, text_keys=text_keys)
    except BadRequest as exc:
        return respond(exc.answer)
    credentials = Credentials.from_headers(request.headers)
    return respond(await endpoint(values, credentials, address(request)))


def json_request(
    properties: dict[str, Any], example: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI ``openapi_extra`` for a JSON object body read by hand: its documented keys
    (matched in any letter case; other keys allowed) and an example."""
    media: dict[str, Any] = {
        "schema": {"type": "object", "properties": properties, "additionalProperties": True}
    }
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}
