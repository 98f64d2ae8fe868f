"""Rate limits: the ``limits`` library does the counting; this module only wires it.

With ``DIALBASE_REDIS_URL`` set, counters live in Redis, shared by every worker and host,
over a true moving window (``limits``' moving-window strategy keeps each counted
request's time in a Redis list trimmed to the limit): no 60 seconds ever hold more than
the limit. Without Redis, each process counts in memory with ``limits``' sliding-window
counter: O(1) per request (see ``SweptMemoryStorage``), exact within a clock minute, and
an approximation across the edge of two minutes (the previous minute's count is weighted
by how much of it the window still covers). The library's in-memory moving window is not
used: its clean-up task walks every key through a thread hop and stalls requests (see
docs/performance.md).

When Redis cannot be reached the limiter fails open onto in-process counters, logs a
warning (at most once a minute) and ``/readyz`` reports Redis as down: losing a lead is
worse for a contact centre than a minute of per-process rather than shared counting.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

log = logging.getLogger("dialbase.ratelimit")
SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    """The library's in-memory storage, sweeping expired keys at most once a second.

    The library starts its sweep over every key again after each counted request, which
    costs time in proportion to the number of accounts on every request. Reads already
    skip expired counters, so a slower sweep only bounds memory.
    """

    _last_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class Limiter:
    def __init__(self, redis_url: str | None, prefix: str, address_limit: int) -> None:
        self.memory: RateLimiter = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
        self.shared: RateLimiter | None = None
        self.storage: Storage | None = None
        if redis_url:
            self.storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
                wrap_exceptions=True,
                socket_timeout=1,
                socket_connect_timeout=1,
            )
            self.shared = MovingWindowRateLimiter(self.storage)
        self.address_item = RateLimitItemPerMinute(address_limit)
        self._items: dict[int, RateLimitItem] = {}
        self._warned_at = 0.0

    def _item(self, per_minute: int) -> RateLimitItem:
        item = self._items.get(per_minute)
        if item is None:
            item = self._items[per_minute] = RateLimitItemPerMinute(per_minute)
        return item

    async def hit_account(self, account_id: int, per_minute: int) -> int | None:
        """Count one request of an account; the Retry-After seconds when over its limit."""
        return await self._hit(self._item(per_minute), "account", str(account_id))

    async def hit_address(self, address: str) -> int | None:
        """Count one request that failed authentication, by client address."""
        return await self._hit(self.address_item, "address", address)

    async def _hit(self, item: RateLimitItem, *key: str) -> int | None:
        limiter = self.shared or self.memory
        try:
            if await limiter.hit(item, *key):
                return None
            stats = await limiter.get_window_stats(item, *key)
        except Exception as exc:  # Redis down: fail open onto in-process counters
            self._warn(exc)
            limiter = self.memory
            if await limiter.hit(item, *key):
                return None
            stats = await limiter.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("Redis unreachable, counting rate limits in this process only: %s", exc)

    async def ping(self) -> bool:
        return True if self.storage is None else bool(await self.storage.check())
