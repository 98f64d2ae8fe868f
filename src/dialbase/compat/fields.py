"""Reading an AddCampaignData body: documented keys (any letter case) and extra columns.

Pure functions, no I/O: each returns the parsed value or ``None`` for "invalid", so that
the checks in ``compat.service`` stay in the contract's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson

# Lower-cased body key -> canonical field. ``apikey`` and ``api_key`` are one field.
DOCUMENTED = {
    "apikey": "apikey",
    "api_key": "apikey",
    "username": "username",
    "campaignname": "campaignname",
    "phonenumber": "phonenumber",
    "name": "name",
    "action": "action",
    "checkduplicate": "checkduplicate",
    "priority": "priority",
    "expirydate": "expirydate",
    "agentid": "agentid",
    "skill": "skill",
}

PHONE = re.compile(r"\+?[0-9]{3,16}")
PRIORITY = re.compile(r"[0-9]{1,2}")
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DATE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
END_OF_DAY = time(23, 59, 59)
LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)
MAX_DEPTH = 32  # deepest nesting of arrays and objects in a value (400 beyond)


class FieldLimitError(ValueError):
    """The body breaks a documented size limit (answered with HTTP 413)."""


class FieldValueError(ValueError):
    """A documented field holds text no database can store (answered with HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_extra_columns: int = 50
    max_key_chars: int = 64
    max_value_chars: int = 1024


@dataclass(slots=True)
class Body:
    fields: dict[str, Any]
    extra: dict[str, str]


def split_body(
    payload: dict[str, Any], limits: Limits, documented: dict[str, str] = DOCUMENTED
) -> Body:
    """Separate documented keys (first spelling wins) from extra columns (stored as text).

    ``documented`` maps a lower-cased key to its field (the older add endpoint has its own
    names)."""
    fields: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for key, value in payload.items():
        if isinstance(value, list | dict) and _too_deep(value):
            raise FieldValueError(f"The value of {key!r} is nested deeper than {MAX_DEPTH} levels.")
        canonical = documented.get(key.lower())
        if canonical is not None:
            if isinstance(value, str) and "\x00" in value:  # PostgreSQL text refuses NUL
                raise FieldValueError(f"The value of {key!r} contains a NUL character (U+0000).")
            fields.setdefault(canonical, value)
            if isinstance(value, str | list | dict) and (
                len(as_column_text(value)) > limits.max_value_chars
            ):
                raise FieldLimitError(
                    f"The value of {key!r} is longer than {limits.max_value_chars} characters."
                )
            continue
        if len(key) > limits.max_key_chars:
            raise FieldLimitError(
                f"An extra column name is longer than {limits.max_key_chars} characters."
            )
        text = as_column_text(value)
        if len(text) > limits.max_value_chars:
            raise FieldLimitError(
                f"The value of extra column {key!r} is longer than"
                f" {limits.max_value_chars} characters."
            )
        extra[key] = text
    if len(extra) > limits.max_extra_columns:
        raise FieldLimitError(
            f"Too many extra columns: {len(extra)} sent, at most"
            f" {limits.max_extra_columns} are accepted."
        )
    return Body(fields, extra)


def _too_deep(value: list[Any] | dict[str, Any]) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than ``MAX_DEPTH``."""
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, list | dict)
        ]
        if not level:
            return False
    return True


def as_column_text(value: Any) -> str:
    """An extra column's value as text: strings as sent, null as empty, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def as_text(value: Any) -> str | None:
    """A documented string field: strings and integers are read as text, the rest is not."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def is_blank(value: Any) -> bool:
    text = as_text(value)
    return text is None or not text.strip()


def phone_number(value: Any) -> str | None:
    text = as_text(value)
    if text is None:
        return None
    text = text.strip()
    return text if PHONE.fullmatch(text) else None


def priority(value: Any) -> int | None:
    text = as_text(value)
    if text is None:
        return None
    text = text.strip()
    return int(text) if PRIORITY.fullmatch(text) else None


def expiry(value: Any, zone: ZoneInfo) -> datetime | None:
    """The instant (UTC) of an expiry date read in the account's zone; a date alone ends
    its day. A date so late that it has no UTC instant (9999-12-31 west of UTC) is kept as
    the latest instant there is; one so early (0001-01-01 east of UTC), as the earliest."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if match := DATE_TIME.fullmatch(text):
            y, mo, d, h, mi, s = (int(g) for g in match.groups())
            local = datetime(y, mo, d, h, mi, s, tzinfo=zone)
        elif match := DATE.fullmatch(text):
            y, mo, d = (int(g) for g in match.groups())
            local = datetime.combine(date(y, mo, d), END_OF_DAY, tzinfo=zone)
        else:
            return None
    except ValueError:  # not a real date (month 13, February 30, hour 24...)
        return None
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return LATEST if local.year == datetime.max.year else EARLIEST


def in_zone(instant: datetime, zone: ZoneInfo) -> datetime:
    """An instant in a time zone, or in UTC when the zone's clock would pass year 9999."""
    try:
        return instant.astimezone(zone)
    except OverflowError:
        return instant


def check_duplicate(value: Any) -> bool:
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() == "true"


def action(fields: dict[str, Any]) -> str | None:
    """``"start"``, ``"stop"``, ``"invalid"`` for any other present value, ``None`` if absent."""
    if "action" not in fields:
        return None
    value = fields["action"]
    text = value.strip().lower() if isinstance(value, str) else ""
    return text if text in ("start", "stop") else "invalid"


def optional_text(value: Any) -> str | None:
    """Name, agent and skill as stored: trimmed text, ``None`` when absent or blank."""
    text = as_text(value)
    if text is None:
        return None
    return text.strip() or None
