"""HTTP in, HTTP out for Generate Token (``POST /ca_apis/CAToken/generateToken``).

The body must be a JSON object (HTTP 400 otherwise, 413 over the size limit); its keys
match in any letter case (``auth.lower_keys``). The rules are in ``compat.tokens``;
failures (a database outage, a bug) become the family's ``{"status": "false", ...}``
answers through ``dialbase.responses``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.compat.answers import Answer, false_body
from dialbase.compat.auth import RATE_LIMITED, Credentials, lower_keys
from dialbase.compat.tokens import INVALID_LOGIN, LIMIT_REACHED, USERNAME_NULL, GenerateToken
from dialbase.errors import DATABASE_DOWN
from dialbase.services import services_of

router = APIRouter(tags=["compatibility"])

PATH = "/ca_apis/CAToken/generateToken"
NOT_JSON = "The request body must be a JSON object."
TEXT_KEYS = ("apikey", "username")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.answer = Answer(false_body(message), status)


async def _body(request: Request, limit: int) -> bytes:
    """The body, or 413 once it passes ``limit`` bytes (the rest is not read)."""
    too_large = BadRequest(413, f"The request body is larger than {limit} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _values(request: Request) -> dict[str, Any]:
    raw = await _body(request, services_of(request).settings.max_body_bytes)
    try:
        payload: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(400, NOT_JSON) from None
    if not isinstance(payload, dict):
        raise BadRequest(400, NOT_JSON)
    values = lower_keys(payload)
    for key in TEXT_KEYS:
        value = values.get(key)
        if isinstance(value, str) and "\x00" in value:  # PostgreSQL text refuses NUL
            raise BadRequest(400, f"The value of {key!r} contains a NUL character (U+0000).")
    return values


def _response(answer: Answer) -> Response:
    return Response(
        orjson.dumps(answer.body),
        status_code=answer.status,
        headers=answer.headers,
        media_type="application/json",
    )


def _examples(*bodies: dict[str, Any]) -> dict[str, Any]:
    return {f"example{n}": {"value": body} for n, body in enumerate(bodies, 1)}


def _error(description: str, *messages: str) -> dict[str, Any]:
    bodies = [false_body(message) for message in messages]
    return {
        "description": description,
        "content": {"application/json": {"examples": _examples(*bodies)}},
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": 'The token, or a refusal of checks 1 to 4 (docs/api.md, "Tokens")',
        "content": {
            "application/json": {
                "examples": _examples(
                    {"token": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhY21lIn0.c2ln", "message": ""},
                    false_body("Api Key Should Not be Null or Empty."),
                    USERNAME_NULL,
                    INVALID_LOGIN,
                    false_body("Invalid action."),
                )
            }
        },
    },
    400: _error("The body is not a JSON object, or a value holds a NUL character", NOT_JSON),
    413: _error("The body is over the size limit", "The request body is larger than 65536 bytes."),
    429: _error(
        "10 tokens of the account in the last hour (the message says when the next may be"
        " generated), or over a per-minute budget; see `Retry-After`",
        LIMIT_REACHED.format(limit=10, at="2026-11-28 10:59:03"),
        RATE_LIMITED.format(12),
    ),
    503: _error("The database is unavailable; no token was made", DATABASE_DOWN),
}


@router.post(
    PATH,
    summary="A bearer token (compatible with CloudAgent's generateToken API)",
    description="For TOKEN_AUTH accounts. The token is valid for an hour; generating one"
    " makes every earlier token of the account invalid at once. At most 10 an hour."
    ' See docs/api.md, "Tokens", for the checks in order and every answer.',
    operation_id="generateToken",
    response_class=Response,
    responses=RESPONSES,
    openapi_extra={
        "parameters": [
            {
                "name": "apiKey",
                "in": "header",
                "required": False,
                "description": "The account's API key; else `apiKey` or `api_key` in the body.",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "userName": {"type": "string"},
                            "apiKey": {"type": "string"},
                        },
                        "additionalProperties": True,
                    }
                }
            },
        },
    },
)
async def generate_token(request: Request) -> Response:
    services = services_of(request)
    try:
        values = await _values(request)
    except BadRequest as exc:
        return _response(exc.answer)
    client = request.client
    address = client.host if client else "unknown"
    credentials = Credentials.from_headers(request.headers)
    service = GenerateToken(services.auth, services.sessionmaker)
    return _response(await service.generate(values, credentials, address))
