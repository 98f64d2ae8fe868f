"""Shared (Redis) counters use a moving window: no 60 seconds hold more than the limit."""

from __future__ import annotations

import time

from dialbase.ratelimit import Limiter
from tests.conftest import REDIS_URL, RUN_ID, needs_redis


@needs_redis
async def test_no_sixty_seconds_hold_more_than_the_limit_across_a_minute_edge(monkeypatch):
    """Four requests just before a minute's edge, two just after: the two are refused.

    A counter per clock minute weighted by overlap (the in-process counters) would let
    them through: the previous minute weighs a little under 4, rounded down to 3.
    """
    clock = [1_800_000_059.9]  # 0.1 s before a whole minute
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limiter = Limiter(REDIS_URL, f"dialbase-test-{RUN_ID}-window", address_limit=100)
    before = [await limiter.hit_account(1, 4) for _ in range(4)]
    clock[0] += 0.6
    after = [await limiter.hit_account(1, 4) for _ in range(2)]
    assert before == [None] * 4
    assert all(isinstance(wait, int) and 1 <= wait <= 60 for wait in after)
    clock[0] += 60
    assert await limiter.hit_account(1, 4) is None  # the first four left the window
