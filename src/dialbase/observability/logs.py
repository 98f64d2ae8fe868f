"""Log lines: the request each belongs to, the JSON format, and what never appears in them.

``DIALBASE_LOG_FORMAT`` picks the format of every line the server writes (uvicorn's own
included): ``text`` (the default, uvicorn's ``INFO:     message``) or ``json`` (one object
per line: ``time``, ``level``, ``logger``, ``message``, and ``request_id`` for a line
written while a request was being answered). The request log (``DIALBASE_ACCESS_LOG``,
``serve --access-log``; logger ``dialbase.access``) is dialbase's own, one line per answered
request with its id, account (user name, once authenticated), method, endpoint (the route
template, never the path or query string as sent: the older endpoint takes keys in both),
status and duration; uvicorn's access log, which prints raw paths, is never turned on.

Every message and traceback goes through ``scrub`` before it is written: API keys and
tokens after ``apiKey``/``api_key``/``token``/``secret``/``password`` or an
``Authorization`` header's scheme, anything shaped like a JWT, and phone numbers (a run
of 7 or more digits, with or without ``+``) but for their last four digits. Request
lines carry no request data but the account's user name.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from uvicorn.logging import DefaultFormatter

ACCESS_LOGGER = "dialbase.access"


@dataclass(slots=True)
class RequestInfo:
    """What the log knows of the request being answered."""

    request_id: str
    account: str | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("dialbase_request", default=None)


def begin(request_id: str) -> tuple[RequestInfo, Any]:
    info = RequestInfo(request_id)
    return info, _current.set(info)


def end(token: Any) -> None:
    _current.reset(token)


def note_account(username: str) -> None:
    """The request being answered is this account's (called where authentication succeeds)."""
    info = _current.get()
    if info is not None:
        info.account = username


def current_request_id() -> str | None:
    info = _current.get()
    return info.request_id if info is not None else None


# What never reaches a log line -------------------------------------------------------

_SECRETS = (
    # A JWT (bearer tokens from Generate Token), wherever it appears.
    (re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*"), "[token]"),
    # The value after a credential's name: apiKey=..., "api_key": "...", api_key/..., etc.
    (
        re.compile(
            r"""(?i)(\b(?:api_?key|token|secret|password)["']?\s*[:=/]\s*["']?)[^\s"'&,;/]+"""
        ),
        r"\1[redacted]",
    ),
    # An Authorization header's value, whatever its scheme.
    (
        re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*["']?(?:\w+\s+)?)[^\s"',;]+"""),
        r"\1[redacted]",
    ),
)
_PHONE = re.compile(r"\+?\d{3,}(?=\d{4}(?!\d))")


def _mask_phone(match: re.Match[str]) -> str:
    return "*" * len(match.group(0))


def scrub(text: str) -> str:
    """``text`` without credentials, and with phone numbers masked but for the last four
    digits (every run of 7 or more digits)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return _PHONE.sub(_mask_phone, text)


# Formats ------------------------------------------------------------------------------

ACCESS_FIELDS = ("account", "client", "method", "endpoint", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def json_line(logger: str, message: str, level: int = logging.INFO) -> str:
    """One line as the JSON format writes it, for what is printed before logging is set up."""
    record = logging.LogRecord(logger, level, __file__, 0, message, None, None)
    return JsonFormatter().format(record)


class TextFormatter(DefaultFormatter):
    """uvicorn's format (``INFO:     message``), scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def access_line(
    info: RequestInfo, client: str, method: str, endpoint: str, status: int, seconds: float
) -> None:
    """The request log's line for one answered request."""
    ms = round(seconds * 1000, 3)
    logging.getLogger(ACCESS_LOGGER).info(
        '%s "%s %s" %d %.1f ms id=%s account=%s',
        client,
        method,
        endpoint,
        status,
        ms,
        info.request_id,
        info.account or "-",
        extra={
            "request_id": info.request_id,
            "account": info.account,
            "client": client,
            "method": method,
            "endpoint": endpoint,
            "status": status,
            "duration_ms": ms,
        },
    )


def log_config(level: str, fmt: str, access_log: bool) -> dict[str, object]:
    """The server's logging setup: uvicorn's loggers and dialbase's, in one format."""
    formatter: dict[str, Any] = (
        {"()": "dialbase.observability.logs.JsonFormatter"}
        if fmt == "json"
        else {
            "()": "dialbase.observability.logs.TextFormatter",
            "fmt": "%(levelprefix)s %(message)s",
        }
    )
    handler = {
        "formatter": "default",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "dialbase": {"handlers": ["default"], "level": upper, "propagate": False},
            ACCESS_LOGGER: {"level": "INFO" if access_log else "WARNING"},
        },
    }
