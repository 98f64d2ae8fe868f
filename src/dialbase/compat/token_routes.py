"""HTTP in, HTTP out for Generate Token (``POST /ca_apis/CAToken/generateToken``).

The body must be a JSON object (HTTP 400 otherwise, 413 over the size limit); its keys
match in any letter case (``auth.lower_keys``). The rules are in ``compat.tokens``;
failures (a database outage, a bug) become the family's ``{"status": "false", ...}``
answers through ``dialbase.responses``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from dialbase.compat import http
from dialbase.compat.answers import false_body
from dialbase.compat.auth import RATE_LIMITED
from dialbase.compat.routes import NOT_JSON
from dialbase.compat.tokens import INVALID_LOGIN, LIMIT_REACHED, USERNAME_NULL
from dialbase.errors import DATABASE_DOWN
from dialbase.services import services_of

router = APIRouter(tags=["compatibility"])

PATH = "/ca_apis/CAToken/generateToken"
TEXT_KEYS = ("apikey", "username")


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
        **http.json_request({"userName": {"type": "string"}, "apiKey": {"type": "string"}}),
    },
)
async def generate_token(request: Request) -> Response:
    generate = services_of(request).generate_token.generate
    return await http.serve(request, generate, text_keys=TEXT_KEYS)
