"""Phone numbers: the E.164 form a number is compared by, and the time zones it may be in.

A lead keeps its number as sent (exports and compatible answers show it unchanged) and
gains a comparison form: E.164 as the ``phonenumbers`` library formats it, parsed with
the account's default country (an ISO 3166 code, or none). A number the library cannot
parse (no ``+`` and no default country, say) is compared as sent. Duplicate checks and
do-not-call lists compare this form, so ``+919876543210``, ``09876543210`` and
``9876543210`` (default country IN) are one number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

_UNKNOWN_ZONE = "Etc/Unknown"


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def check_country(code: str) -> str:
    """An ISO 3166 alpha-2 code the library knows, upper-cased; ``ValueError`` if not."""
    cleaned = code.strip().upper()
    if cleaned not in _countries():
        raise ValueError(f"unknown country code {code!r}: use an ISO 3166 code such as IN or US")
    return cleaned


def _parse(number: str, country: str | None) -> phonenumbers.PhoneNumber | None:
    if country is None and not number.startswith("+"):
        # Without a country only the international form can be read; saying so here
        # spares the library's failed attempt (about 12 µs, a tenth of a request).
        return None
    try:
        return phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return None


def e164(number: str, country: str | None) -> str:
    """The comparison form of ``number``; the number as sent when it cannot be parsed."""
    parsed = _parse(number, country)
    if parsed is None:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalized(number: str, country: str | None) -> tuple[str, tuple[str, ...]]:
    """The comparison form and the candidate time zones of ``number`` (none when unknown)."""
    parsed = _parse(number, country)
    if parsed is None:
        return number, ()
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != _UNKNOWN_ZONE)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), zones


@lru_cache(maxsize=4096)
def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None (not a name, or not in the zone database)."""
    if not name or len(name) > 64 or name != name.strip() or name.startswith(("/", ".")):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_key(zones: Iterable[str]) -> str:
    """The zones of a lead as the queue keys them: sorted, distinct, comma-joined."""
    return ",".join(sorted(set(zones)))


def lead_zones(given: str | None, candidates: tuple[str, ...], account_zone: str) -> str:
    """A lead's time zones, decided once at insert: the IANA name it was added with
    (its ``timeZone`` field) if that is a zone; else the number's candidate zones; else
    the account's time zone."""
    if given is not None and zone_named(given.strip()) is not None:
        return given.strip()
    known = [zone for zone in candidates if zone_named(zone) is not None]
    return zone_key(known) if known else account_zone


def given_zone(extra: Mapping[str, object]) -> str | None:
    """A lead's ``timeZone`` extra column (any letter case), if it has one as text."""
    for key, value in extra.items():
        if key.lower() == "timezone" and isinstance(value, str):
            return value
    return None
