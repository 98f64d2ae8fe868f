"""Domain errors, and the one place that maps them to responses.

Services raise these; routes never build error bodies themselves. The compatibility
endpoint answers in the hosted product's shape (``{"status", "message", "data"}``);
dialbase's own ``/v1`` API answers RFC 9457 problem details (the compatibility endpoint
catches its errors itself, see ``compat.routes``).
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("dialbase")


class DialbaseError(Exception):
    """A failure with a clear message for the caller. ``status`` is the HTTP status."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DialbaseError):
    status = 404
    title = "Not found"


class Conflict(DialbaseError):
    status = 409
    title = "Conflict"


class Invalid(DialbaseError):
    status = 422
    title = "Invalid input"


class Unauthorized(DialbaseError):
    status = 401
    title = "Unauthorized"


class RateLimited(DialbaseError):
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DialbaseError):
    status = 503
    title = "Service unavailable"


DATABASE_DOWN = "The database is unavailable; nothing was stored. Try again shortly."


def compat_error_body(message: str) -> dict[str, object]:
    """The body of our own HTTP-level errors on the compatibility endpoint."""
    return {"status": "false", "message": message, "data": None}


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


async def handle_dialbase_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DialbaseError)
    headers = {"WWW-Authenticate": 'Basic realm="dialbase"'} if exc.status == 401 else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(exc.status, exc.title, exc.message, headers)
