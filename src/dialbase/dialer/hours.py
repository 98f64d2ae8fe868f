"""Calling hours: when a campaign may dial, read in each lead's own local time.

A campaign's hours are weekly windows, written ``"mon-fri 09:00-20:00, sat 10:00-16:00"``:
comma-separated items of days (``mon`` .. ``sun``, a day or a range such as ``fri-mon``)
and a time range. A window includes its start minute and excludes its end minute
(``09:00-20:00`` allows 09:00:00 up to 19:59:59); ``24:00`` may end a window. A lead is
dialable only while the instant is inside the hours in **every** one of its time zones
(a number whose zone is uncertain waits for the intersection). Local times come from
``zoneinfo``, so daylight-saving changes move the windows with the clock on the wall.

No I/O here: the dialer asks ``is_open`` (is a lead with these zones callable at this
instant?) and ``next_open`` (from when?).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ITEM = re.compile(
    r"(?P<first>[a-z]{3})(?:\s*-\s*(?P<last>[a-z]{3}))?\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
)
MINUTES_PER_DAY = 24 * 60
# The intersection of windows in several zones repeats weekly, shifted by daylight-saving
# changes; a search this long finds the next opening whenever one exists.
_SEARCH_DAYS = 15


class HoursError(ValueError):
    """Calling hours that cannot be read; the message says why, in words."""


@dataclass(frozen=True, slots=True)
class CallingHours:
    """Open minutes per weekday (0 = Monday): sorted, disjoint ``(start, end)`` ranges."""

    windows: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def text(self) -> str:
        """The canonical spelling (what ``campaign show`` prints and the database keeps)."""
        items = []
        day = 0
        while day < 7:  # runs of consecutive days with the same windows, Monday first
            last = day
            while last + 1 < 7 and self.windows[last + 1] == self.windows[day]:
                last += 1
            days = DAYS[day] if last == day else f"{DAYS[day]}-{DAYS[last]}"
            items += [f"{days} {_clock(start)}-{_clock(end)}" for start, end in self.windows[day]]
            day = last + 1
        return ", ".join(items)

    def open_at(self, zone: ZoneInfo, at: datetime) -> bool:
        local = at.astimezone(zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.windows[local.weekday()])

    def is_open(self, zones: Sequence[ZoneInfo], at: datetime) -> bool:
        """Whether ``at`` is inside the hours in every zone."""
        return all(self.open_at(zone, at) for zone in zones)

    def next_open(self, zones: Sequence[ZoneInfo], at: datetime) -> datetime | None:
        """The first instant at or after ``at`` inside the hours in every zone (None if
        there is none within two weeks: the windows never overlap)."""
        if self.is_open(zones, at):
            return at
        # The intersection opens when the last of the zones opens: at a window start in
        # one of them. Try those instants in order.
        for candidate in sorted(self._starts(zones, at)):
            if self.is_open(zones, candidate):
                return candidate
        return None

    def _starts(self, zones: Sequence[ZoneInfo], at: datetime) -> set[datetime]:
        starts = set()
        for zone in zones:
            local_day = at.astimezone(zone).date()
            for offset in range(_SEARCH_DAYS):
                day = local_day + timedelta(days=offset)
                for start, _ in self.windows[day.weekday()]:
                    wall = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(
                        minutes=start
                    )
                    # A wall time skipped by a daylight-saving change: the window opens at
                    # the first minute that exists after it.
                    instant = _existing(wall).astimezone(UTC)
                    if instant > at:
                        starts.add(instant)
        return starts


def _existing(wall: datetime) -> datetime:
    """``wall`` if that local time exists, else the instant the clocks jump over it."""
    zone = wall.tzinfo
    assert isinstance(zone, ZoneInfo)
    round_trip = wall.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) == wall.replace(tzinfo=None):
        return wall
    # In a gap: the two readings of the wall time lie on either side of the jump.
    early = min(wall.replace(fold=0).astimezone(UTC), wall.replace(fold=1).astimezone(UTC))
    naive = wall.replace(tzinfo=None)
    while early.astimezone(zone).replace(tzinfo=None) < naive:
        early += timedelta(minutes=1)
    return early


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute(text: str, item: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise HoursError(f"{text!r} in {item!r} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def _day(name: str, item: str) -> int:
    try:
        return DAYS.index(name)
    except ValueError:
        raise HoursError(f"{name!r} in {item!r} is not a day: use {', '.join(DAYS)}") from None


@lru_cache(maxsize=256)
def parse(text: str) -> CallingHours | None:
    """Calling hours from their written form; None for ``""`` (no hours: dial any time)."""
    if not text.strip():
        return None
    per_day: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for raw in text.lower().split(","):
        item = raw.strip()
        match = _ITEM.fullmatch(item)
        if match is None:
            raise HoursError(
                f"cannot read {raw.strip()!r}: write days and a time range,"
                ' like "mon-fri 09:00-20:00, sat 10:00-16:00"'
            )
        first = _day(match["first"], item)
        last = _day(match["last"], item) if match["last"] else first
        start, end = _minute(match["start"], item), _minute(match["end"], item)
        if start >= end:
            raise HoursError(f"in {item!r} the window must start before it ends")
        day = first
        while True:
            per_day[day].append((start, end))
            if day == last:
                break
            day = (day + 1) % 7
    return CallingHours(tuple(_merged(ranges) for ranges in per_day))


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Overlapping or touching ranges joined, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


@lru_cache(maxsize=4096)
def zones_of(key: str) -> tuple[ZoneInfo, ...]:
    """The zones of a lead's zone key (``phones.zone_key``)."""
    return tuple(ZoneInfo(name) for name in key.split(",") if name)


class OpenZones:
    """Which of a campaign's zone keys are inside its hours at a minute, remembered per
    minute (windows are whole minutes and every zone's offset is whole minutes)."""

    def __init__(self) -> None:
        self._minute: int | None = None
        self._open: dict[tuple[str, str], bool] = {}

    def select(self, hours: CallingHours | None, keys: Sequence[str], at: datetime) -> list[str]:
        if hours is None:
            return list(keys)
        minute = int(at.timestamp() // 60)
        if minute != self._minute:
            self._minute, self._open = minute, {}
        chosen = []
        text = hours.text  # built on each call: once per lease, not once per key
        for key in keys:
            state = self._open.get((text, key))
            if state is None:
                state = self._open[(text, key)] = hours.is_open(zones_of(key), at)
            if state:
                chosen.append(key)
        return chosen
