"""Time zones and calling hours for the lease benchmark (``--zones``, ``--calling-hours``).

``pick_zones(n)``: n real IANA zones spread over the world: the region/city names of
``zoneinfo.available_timezones()`` (Africa/..., America/..., ..., Pacific/...; no ``Etc/``,
``US/`` or other legacy top-level names, though some are links, e.g. America/Godthab),
sorted, every len/n-th one.

``half_open_hours(zones, at)``: daily calling hours (``mon-sun``) inside which about half
of the zones are at ``at``, chosen so that none of them crosses a window edge for as
long as possible. As time passes every zone's local time moves forward: a zone inside
leaves at the window's end, a zone outside enters at its start. So the window starts at
the local time of the first zone inside (the zone before it in local-time order enters
after the gap between the two) and ends at the local time of the first zone after it
(the last zone inside leaves after the gap between those two); the margin is the
smaller gap. Of the windows with a margin of at least ``min_margin`` minutes, the one
holding closest to half of the zones wins (then the larger margin).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

REGIONS = (
    "Africa",
    "America",
    "Antarctica",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
)
DAY = 24 * 60


def pick_zones(n: int) -> list[str]:
    names = sorted(z for z in available_timezones() if z.split("/", 1)[0] in REGIONS)
    if not 1 <= n <= len(names):
        raise ValueError(f"--zones takes 1 to {len(names)}")
    return [names[i * len(names) // n] for i in range(n)]


def local_minute(zone: str, at: datetime) -> int:
    local = at.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def window_text(start: int, end: int) -> str:
    """Every day from local minute ``start`` up to ``end`` (across midnight if end < start)."""
    if start < end:
        return f"mon-sun {_clock(start)}-{_clock(end)}"
    items = [f"mon-sun {_clock(start)}-24:00"]
    if end:
        items.insert(0, f"mon-sun 00:00-{_clock(end)}")
    return ", ".join(items)


def half_open_hours(
    zones: Sequence[str], at: datetime, min_margin: int = 30
) -> tuple[str, int, int]:
    """(hours text, zones inside them at ``at``, minutes until the first zone crosses)."""
    per_minute = Counter(local_minute(zone, at) for zone in zones)
    minutes = sorted(per_minute)
    n = len(minutes)
    if n < 2:
        raise ValueError("--calling-hours half needs zones at two local times at least")
    best = None
    for i in range(n):  # the window holds the local times minutes[i .. i + span - 1]
        inside = 0
        for span in range(1, n):
            inside += per_minute[minutes[(i + span - 1) % n]]
            start, end = minutes[i], minutes[(i + span) % n]
            gap_before = (start - minutes[i - 1]) % DAY
            gap_after = (end - minutes[(i + span - 1) % n]) % DAY
            margin = min(gap_before, gap_after)
            score = (margin < min_margin, abs(2 * inside - len(zones)), -margin)
            if best is None or score < best[0]:
                best = (score, window_text(start, end), inside, margin)
    assert best is not None
    return best[1], best[2], best[3]


def open_keys(hours: str, keys: Sequence[str], at: datetime) -> list[str]:
    """The zone keys inside ``hours`` at ``at``, as dialbase decides it (its own code)."""
    from dialbase.dialer.hours import parse, zones_of

    parsed = parse(hours)
    if parsed is None:
        return list(keys)
    return [key for key in keys if parsed.is_open(zones_of(key), at)]
