"""The one place where an error becomes an HTTP answer.

Every failure, whatever raised it, goes through ``error_of``: a ``DialbaseError`` is
answered as it says, a database outage (``errors.database_unavailable``) is a 503 with
the documented body, anything else is a bug: logged with its traceback, answered 500.
Then each API family has one body shape:

- the compatible endpoints (``/ca_apis/...``) answer ``{"status": "false", "message",
  "data": null}`` (``compat_answer``, used by the bare ASGI endpoint itself, and the
  framework handlers for anything else under that prefix);
- the web console (``/console``) answers an HTML page, or sends the browser to sign in
  (``console.views.error_page``);
- everything else (``/v1``, operations, unknown paths) answers RFC 9457 problem details
  (``problem``).

``install`` registers the handlers on the FastAPI application.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from http import HTTPStatus

import asyncpg
import orjson
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from dialbase.compat.answers import Answer, false_body
from dialbase.console.views import error_page
from dialbase.errors import (
    DatabaseUnavailable,
    DialbaseError,
    RateLimited,
    Unauthorized,
    database_unavailable,
    outages,
)

log = logging.getLogger("dialbase")

COMPAT_PREFIX = "/ca_apis/"
INTERNAL = "Internal error; nothing was stored. The error is logged on the server."
BAD_AUTH_HEADER = "the Authorization header is not HTTP Basic: base64 of 'userName:apiKey'"


class InternalError(DialbaseError):
    status = 500


class FrameworkError(DialbaseError):
    """An HTTP error the framework raised (unknown path, wrong method, bad header)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def error_of(exc: BaseException, *, log_bugs: bool = True) -> DialbaseError:
    """What any exception means for the caller (a bug is logged with its traceback)."""
    if isinstance(exc, DialbaseError):
        return exc
    if database_unavailable(exc):
        outages.failed(exc)
        return DatabaseUnavailable()
    if isinstance(exc, RequestValidationError):
        detail = "; ".join(f"{_location(e['loc'])}: {e['msg']}" for e in exc.errors())
        return FrameworkError(422, detail or "the request is not valid", None)
    if isinstance(exc, HTTPException):
        if exc.status_code == 401:
            return Unauthorized(BAD_AUTH_HEADER)
        return FrameworkError(exc.status_code, str(exc.detail), exc.headers)
    if log_bugs:
        log.error("unexpected error", exc_info=exc)
    return InternalError(INTERNAL)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def headers_of(error: DialbaseError) -> dict[str, str]:
    if isinstance(error, FrameworkError):
        return dict(error.headers)
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": 'Basic realm="dialbase"'}
    return {}


def compat_answer(exc: BaseException, *, log_bugs: bool = True) -> Answer:
    """The compatible endpoints' answer to a failure."""
    error = error_of(exc, log_bugs=log_bugs)
    return Answer(false_body(error.message), error.status, headers_of(error))


def problem(
    status: int, detail: str, headers: dict[str, str] | None = None, title: str | None = None
) -> Response:
    """An RFC 9457 problem details response (``type`` is always ``about:blank``)."""
    body = {
        "type": "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def response_of(path: str, exc: BaseException, *, log_bugs: bool = True) -> Response:
    """The answer to ``exc`` in the shape of the API family that ``path`` belongs to."""
    if path.startswith(COMPAT_PREFIX):
        answer = compat_answer(exc, log_bugs=log_bugs)
        return Response(
            orjson.dumps(answer.body),
            status_code=answer.status,
            headers=answer.headers,
            media_type="application/json",
        )
    error = error_of(exc, log_bugs=log_bugs)
    return problem(error.status, error.message, headers_of(error) or None, error.title)


CONSOLE_PREFIX = "/console"


def _in_console(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


async def _handle(request: Request, exc: Exception) -> Response:
    if _in_console(request.url.path):
        error = error_of(exc)
        return error_page(request, error, headers_of(error))
    return response_of(request.url.path, exc)


async def _handle_bug(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this answer, and the server logs it.
    if _in_console(request.url.path):
        error = error_of(exc, log_bugs=False)
        return error_page(request, error, headers_of(error))
    return response_of(request.url.path, exc, log_bugs=False)


# What the framework hands to ``_handle``: our own errors, its own HTTP and validation
# errors, and whatever the database drivers raise (``error_of`` tells an outage from a
# bug). Anything else reaches ``_handle_bug``.
HANDLED: tuple[type[Exception], ...] = (
    DialbaseError,
    RequestValidationError,
    HTTPException,
    sqlalchemy.exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    sqlite3.Error,
    OSError,
)


def install(app: FastAPI) -> None:
    for kind in HANDLED:
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(Exception, _handle_bug)
