"""HTTP in, HTTP out for ``POST /ca_apis/AddCampaignData``.

A plain Starlette endpoint on purpose: this is the hot path, the body is parsed with
orjson and the contract's checks are hand-ordered in ``compat.service``. Its OpenAPI
description is written by hand in ``compat.schemas`` and merged into the generated one.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from dialbase.compat import fields
from dialbase.compat.service import AddCampaignData
from dialbase.errors import compat_error

NOT_JSON = "The request body must be a JSON object."


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def add_campaign_data(request: Request) -> Response:
    state = request.app.state
    limit: int = state.settings.max_body_bytes
    try:
        raw = await _read_body(request, limit)
    except ClientDisconnect:
        return Response(status_code=400)
    if raw is None:
        return compat_error(413, f"The request body is larger than {limit} bytes.")
    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return compat_error(400, NOT_JSON)
    if not isinstance(payload, dict):
        return compat_error(400, NOT_JSON)
    try:
        body = fields.split_body(payload, state.field_limits)
    except fields.FieldLimitError as exc:
        return compat_error(413, str(exc))
    except fields.FieldValueError as exc:
        return compat_error(400, str(exc))
    client = request.client
    service: AddCampaignData = state.add_campaign_data
    answer = await service.handle(
        body, request.headers.get("apikey"), client.host if client else "unknown"
    )
    return Response(
        orjson.dumps(answer.body),
        status_code=answer.status,
        headers=answer.headers or None,
        media_type="application/json",
    )
